//! `dsync queue consume`: receive messages, print them, optionally ack them.

use std::io::Write;
use std::time::{Duration, Instant};

use dsync_api::queue::{ConsumeRequest, ConsumeResponse, ReceiptsRequest, MAX_BATCH, MAX_WAIT_MS};
use dsync_api::Client;

use super::{payload_cell, settle, settle_summary, Settle};
use crate::commands::lock::default_owner;
use crate::commands::EXIT_OK;
use crate::context::{GlobalArgs, RequestExt};
use crate::duration::{format_ms, millis, parse_duration};
use crate::output::{Output, Table};
use crate::progress::Progress;

#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    /// Topic to receive from.
    pub topic: String,

    /// Name of this consumer, shown in the server's view of in-flight
    /// messages. Default: <hostname>-<pid> of this dsync process.
    #[arg(long, value_name = "CONSUMER")]
    pub consumer: Option<String>,

    /// Receive at most this many messages.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_BATCH as i64), value_name = "N")]
    pub max: u32,

    /// If no message is ready, wait this long for one; 0 returns at once
    /// (500ms, 30s, 2m, or milliseconds).
    #[arg(long, value_parser = parse_duration, default_value = "0", value_name = "DURATION")]
    pub wait: Duration,

    /// How long the received messages stay invisible to other consumers
    /// (default: the topic's visibility; 500ms, 30s, 2m, or milliseconds).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub visibility: Option<Duration>,

    /// Ack the received messages once they are printed.
    #[arg(long)]
    pub ack: bool,
}

pub async fn run(global: &GlobalArgs, args: ConsumeArgs) -> anyhow::Result<i32> {
    let client = global.client()?;
    let req = ConsumeRequest {
        consumer: args.consumer.clone().unwrap_or_else(default_owner),
        max: args.max as usize,
        visibility_ms: args.visibility.map(millis),
        wait_ms: 0,
    };
    let resp = receive(&client, &args.topic, &req, args.wait).await?;
    let out = global.output;
    if resp.messages.is_empty() && out == Output::Table {
        eprintln!("no messages");
        return Ok(EXIT_OK);
    }
    out.print(&resp, || messages_table(&resp))?;
    if args.ack && !resp.messages.is_empty() {
        // What was printed must be out before it is given up.
        std::io::stdout().flush()?;
        let receipts: Vec<String> = resp.messages.iter().map(|m| m.receipt.clone()).collect();
        let template = ReceiptsRequest {
            receipts: Vec::new(),
            delay_ms: None,
            visibility_ms: None,
        };
        let acked = settle(&client, &args.topic, Settle::Ack, &receipts, &template).await?;
        if out == Output::Table {
            eprint!(
                "{}",
                settle_summary(Settle::Ack, acked.count, receipts.len())
            );
        }
    }
    Ok(EXIT_OK)
}

/// Tries once; if nothing is ready and `wait` allows, long-polls until a
/// message arrives or `wait` runs out. Waits longer than the server's
/// per-request maximum are made of several polls.
async fn receive(
    client: &Client,
    topic: &str,
    req: &ConsumeRequest,
    wait: Duration,
) -> anyhow::Result<ConsumeResponse> {
    let deadline = Instant::now() + wait;
    let first = client.queue_consume(topic, req).await.api()?;
    if !first.messages.is_empty() || wait.is_zero() {
        return Ok(first);
    }
    let mut progress = Progress::new();
    progress.step(format!(
        "waiting up to {} for messages on {topic}",
        format_ms(millis(wait))
    ));
    loop {
        let left = millis(deadline.saturating_duration_since(Instant::now()));
        if left == 0 {
            return Ok(first);
        }
        let poll = ConsumeRequest {
            wait_ms: left.min(MAX_WAIT_MS),
            ..req.clone()
        };
        let resp = client.queue_consume(topic, &poll).await.api()?;
        if !resp.messages.is_empty() || left <= MAX_WAIT_MS {
            return Ok(resp);
        }
    }
}

fn messages_table(resp: &ConsumeResponse) -> String {
    let mut t = Table::new(["ID", "ATTEMPT", "RECEIPT", "PAYLOAD"]);
    for m in &resp.messages {
        t.row([
            m.id.to_string(),
            m.attempt.to_string(),
            m.receipt.clone(),
            payload_cell(&m.payload),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::Parser;
    use dsync_api::queue::Delivered;
    use serde_json::json;

    fn parse(args: &[&str]) -> ConsumeArgs {
        let cli = Cli::try_parse_from(["dsync", "queue", "consume"].iter().chain(args)).unwrap();
        match cli.cmd {
            crate::Command::Queue(super::super::QueueCommand::Consume(a)) => a,
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn defaults_take_one_message_without_waiting() {
        let a = parse(&["jobs"]);
        assert_eq!(a.topic, "jobs");
        assert_eq!((a.max, a.wait, a.visibility), (1, Duration::ZERO, None));
        assert!(!a.ack && a.consumer.is_none());
        let a = parse(&[
            "jobs",
            "--max",
            "1000",
            "--wait",
            "2m",
            "--visibility",
            "45s",
            "--ack",
            "--consumer",
            "w1",
        ]);
        assert_eq!(a.max, 1000);
        assert_eq!(a.wait, Duration::from_secs(120));
        assert_eq!(a.visibility, Some(Duration::from_secs(45)));
        assert!(a.ack);
        assert_eq!(a.consumer.as_deref(), Some("w1"));
        assert!(Cli::try_parse_from(["dsync", "queue", "consume", "t", "--max", "0"]).is_err());
        assert!(Cli::try_parse_from(["dsync", "queue", "consume", "t", "--max", "1001"]).is_err());
    }

    #[test]
    fn the_table_shows_receipts_and_compact_payloads() {
        let resp = ConsumeResponse {
            messages: vec![
                Delivered {
                    id: 7,
                    payload: json!({"a": 1}),
                    attempt: 1,
                    receipt: "7.1.c3f0".into(),
                    enqueued_at_ms: 0,
                },
                Delivered {
                    id: 12,
                    payload: json!("hi there"),
                    attempt: 3,
                    receipt: "12.3.9a".into(),
                    enqueued_at_ms: 0,
                },
            ],
        };
        assert_eq!(
            messages_table(&resp),
            "ID  ATTEMPT  RECEIPT   PAYLOAD\n\
             7   1        7.1.c3f0  {\"a\":1}\n\
             12  3        12.3.9a   \"hi there\"\n"
        );
    }
}
