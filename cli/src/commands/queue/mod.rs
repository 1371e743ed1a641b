//! `dsync queue`: the replicated at-least-once message queue: push
//! messages, receive and settle them, inspect topics and their dead letters.

pub mod ack;
pub mod config;
pub mod consume;
pub mod extend;
pub mod nack;
pub mod push;
pub mod redrive;
pub mod stats;

use clap::Subcommand;
use dsync_api::queue::{ReceiptsRequest, ReceiptsResponse, MAX_BATCH};
use dsync_api::Client;
use serde_json::Value;

use crate::context::{GlobalArgs, RequestExt};

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Enqueue one message, or one message per line of stdin, and print the ids.
    ///
    /// PAYLOAD is sent as JSON if it parses as JSON, else as a JSON string
    /// (`5` is a number, `hello` a string, `'"5"'` the string "5"). With `-`,
    /// or with no PAYLOAD while stdin is not a terminal, every non-empty line
    /// of stdin becomes one message, parsed the same way, pushed in order in
    /// batches of --batch. Topics come into being on their first push.
    Push(push::PushArgs),
    /// Receive messages and print them with the receipts that settle them.
    ///
    /// Received messages stay invisible to other consumers for --visibility;
    /// settle each with `dsync queue ack` (done), `nack` (retry) or `extend`
    /// (more time) using its RECEIPT, else it is delivered again after the
    /// visibility timeout, with ATTEMPT one higher. Past the topic's
    /// max_attempts it moves to TOPIC.dlq. With --ack, what was received is
    /// acked right after it is printed (at-most-once from then on).
    Consume(consume::ConsumeArgs),
    /// Settle messages as done: they are removed from the topic.
    ///
    /// Fails with stale_receipt (exit 1) when a receipt belongs to an
    /// earlier delivery, e.g. because the visibility timeout passed and the
    /// message was delivered again.
    Ack(ack::AckArgs),
    /// Give messages back for redelivery, now or after --delay.
    ///
    /// Each nack counts as an attempt: past the topic's max_attempts the
    /// message moves to TOPIC.dlq.
    Nack(nack::NackArgs),
    /// Keep received messages invisible for longer (from now).
    Extend(extend::ExtendArgs),
    /// Show the depth and counters of one topic, or of every topic.
    Stats(stats::StatsArgs),
    /// Move the dead letters of TOPIC (in TOPIC.dlq) back into TOPIC.
    ///
    /// They are delivered again as new attempts starting from 1.
    Redrive(redrive::RedriveArgs),
    /// Change a topic's settings and print its stats with the result.
    ///
    /// Only the settings given change. Without any, the current settings are
    /// shown and nothing changes.
    Config(config::ConfigArgs),
}

pub async fn run(global: &GlobalArgs, cmd: QueueCommand) -> anyhow::Result<i32> {
    match cmd {
        QueueCommand::Push(args) => push::run(global, args).await,
        QueueCommand::Consume(args) => consume::run(global, args).await,
        QueueCommand::Ack(args) => ack::run(global, args).await,
        QueueCommand::Nack(args) => nack::run(global, args).await,
        QueueCommand::Extend(args) => extend::run(global, args).await,
        QueueCommand::Stats(args) => stats::run(global, args).await,
        QueueCommand::Redrive(args) => redrive::run(global, args).await,
        QueueCommand::Config(args) => config::run(global, args).await,
    }
}

/// JSON if the text parses as JSON, otherwise the text as a JSON string,
/// like `dsync kv put`: `5` is a number, `hello` a string.
pub fn parse_payload(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// A payload on one line of a table.
pub fn payload_cell(payload: &Value) -> String {
    serde_json::to_string(payload).unwrap_or_else(|_| payload.to_string())
}

/// `ack`, `nack` or `extend`, with its past tense for summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Ack,
    Nack,
    Extend,
}

impl Settle {
    pub fn verb(self) -> &'static str {
        match self {
            Settle::Ack => "ack",
            Settle::Nack => "nack",
            Settle::Extend => "extend",
        }
    }

    fn past(self) -> &'static str {
        match self {
            Settle::Ack => "acked",
            Settle::Nack => "nacked",
            Settle::Extend => "extended",
        }
    }
}

/// Sends `receipts` for `settle` in calls of at most [`MAX_BATCH`], with
/// `delay_ms`/`visibility_ms` from `template`; the counts add up.
pub async fn settle(
    client: &Client,
    topic: &str,
    settle: Settle,
    receipts: &[String],
    template: &ReceiptsRequest,
) -> anyhow::Result<ReceiptsResponse> {
    let mut count = 0;
    for chunk in receipts.chunks(MAX_BATCH) {
        let req = ReceiptsRequest {
            receipts: chunk.to_vec(),
            ..template.clone()
        };
        count += client
            .queue_receipts(topic, settle.verb(), &req)
            .await
            .api()?
            .count;
    }
    Ok(ReceiptsResponse { count })
}

/// `acked 3 messages`, and how many receipts took no effect if any.
pub fn settle_summary(settle: Settle, count: usize, sent: usize) -> String {
    let mut line = format!("{} {count} {}", settle.past(), plural(count, "message"));
    if count < sent {
        let missed = sent - count;
        line.push_str(&format!(
            " ({missed} {} took no effect)",
            plural(missed, "receipt")
        ));
    }
    line.push('\n');
    line
}

/// Settles receipts given on the command line and prints the outcome.
pub async fn settle_and_print(
    global: &GlobalArgs,
    topic: &str,
    which: Settle,
    receipts: &[String],
    template: ReceiptsRequest,
) -> anyhow::Result<i32> {
    let client = global.client()?;
    let resp = settle(&client, topic, which, receipts, &template).await?;
    global
        .output
        .print(&resp, || settle_summary(which, resp.count, receipts.len()))?;
    Ok(crate::commands::EXIT_OK)
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payloads_are_json_when_they_parse_else_strings() {
        assert_eq!(parse_payload("5"), json!(5));
        assert_eq!(parse_payload(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(parse_payload(r#""5""#), json!("5"));
        assert_eq!(parse_payload("hello world"), json!("hello world"));
        assert_eq!(parse_payload("{broken"), json!("{broken"));
        assert_eq!(parse_payload("-"), json!("-"));
        assert_eq!(parse_payload(" [1, 2] "), json!([1, 2]));
    }

    #[test]
    fn payload_cells_are_compact_json_on_one_line() {
        assert_eq!(payload_cell(&json!({"a": [1, 2]})), r#"{"a":[1,2]}"#);
        assert_eq!(payload_cell(&json!("two\nlines")), r#""two\nlines""#);
    }

    #[test]
    fn summaries_count_what_took_effect() {
        assert_eq!(settle_summary(Settle::Ack, 3, 3), "acked 3 messages\n");
        assert_eq!(settle_summary(Settle::Nack, 1, 1), "nacked 1 message\n");
        assert_eq!(
            settle_summary(Settle::Extend, 1, 3),
            "extended 1 message (2 receipts took no effect)\n"
        );
        assert_eq!(Settle::Extend.verb(), "extend");
    }
}
