//! `dsync bench queue`: producers push batches while consumers receive and
//! ack them; the end-to-end rate is acked messages per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dsync_api::queue::{
    ConsumeRequest, NewMessage, ReceiptsRequest, HARD_MAX_MESSAGE_BYTES, MAX_BATCH,
};
use dsync_api::Client;
use serde::Serialize;
use serde_json::Value;

use super::{drive, per_sec, round3, summarize, Counters, Report};
use crate::commands::EXIT_OK;
use crate::context::{GlobalArgs, RequestError};
use crate::output::{Output, Table};

/// How long one consume waits for messages before it returns empty.
const POLL_WAIT_MS: u64 = 1_000;

#[derive(Debug, clap::Args)]
pub struct QueueBenchArgs {
    /// Concurrent clients, each keeping one request in flight: half push,
    /// the other half consume and ack.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub clients: u32,

    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400), value_name = "SECONDS")]
    pub duration: u64,

    /// Size of each message: a JSON string of this many bytes.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(0..=HARD_MAX_MESSAGE_BYTES - 2), value_name = "BYTES")]
    pub payload_size: u64,

    /// Messages per push, and the most received per consume.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=MAX_BATCH as i64), value_name = "N")]
    pub batch: u32,

    /// Topic to use. Messages already in it are consumed (and counted) too.
    #[arg(long, default_value = "bench")]
    pub topic: String,

    /// Spread the load over this many topics, `<topic>-0` .. `<topic>-<N-1>`
    /// (producer and consumer i use topic i mod N), so a cluster with queue
    /// groups serves them from several leaders. 1: the one topic `--topic`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000), value_name = "N")]
    pub topics: u32,

    #[command(flatten)]
    pub via: super::via::ViaArgs,
}

/// The topics of a run: `--topic` alone, or `--topics` of them.
fn topic_names(args: &QueueBenchArgs) -> Vec<String> {
    if args.topics <= 1 {
        return vec![args.topic.clone()];
    }
    (0..args.topics)
        .map(|i| format!("{}-{i}", args.topic))
        .collect()
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QueueReport {
    pub bench: String,
    pub topic: String,
    /// How many topics the load was spread over.
    pub topics: u32,
    /// Which nodes the clients used (`--via`).
    pub via: String,
    pub clients: u32,
    pub producers: u32,
    pub consumers: u32,
    pub batch: u32,
    pub payload_size: u64,
    pub duration_s: f64,
    /// Messages the producers pushed.
    pub enqueued: u64,
    /// Messages the consumers received and acked.
    pub acked: u64,
    pub enqueued_per_sec: f64,
    /// End to end: acked messages per second.
    pub messages_per_sec: f64,
    /// Consumes that returned no message within the poll wait.
    pub empty_polls: u64,
    /// Messages left in the topic (ready, in flight or delayed) at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u64>,
    /// Push calls: one per batch.
    pub push: Report,
    /// Consume calls that received messages, each with its ack.
    pub consume_ack: Report,
}

pub async fn run(global: &GlobalArgs, args: QueueBenchArgs) -> anyhow::Result<i32> {
    // Short retries as in the other benches; consumes add their poll wait.
    let targets = super::via::Targets::new(global, args.via.via, args.clients, |c| {
        c.retry_for = Duration::from_secs(2);
        c.request_timeout = Duration::from_secs(5);
    })
    .await?;
    let client = targets.client(0).clone();
    let (producers, consumers) = roles(args.clients);
    let names = Arc::new(topic_names(&args));
    if let Some(waiting) = backlog(&client, &names).await.filter(|&n| n > 0) {
        eprintln!("note: the topics already hold {waiting} messages; consumers take them too");
    }
    eprintln!(
        "bench queue: {producers} producers and {consumers} consumers for {} s, batches of {}, \
         {}-byte messages, {} topic(s) {}, {}",
        args.duration,
        args.batch,
        args.payload_size,
        names.len(),
        args.topic,
        targets.described
    );
    let pushed = Arc::new(Counters::default());
    let acked = Arc::new(Counters::default());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.duration);
    let ticker = tokio::spawn(report_progress(pushed.clone(), acked.clone(), start));
    let batch = args.batch as usize;
    let push_op = {
        let (targets, names) = (targets.clone(), names.clone());
        let payload = Value::String("x".repeat(args.payload_size as usize));
        move |p: u32, _: u64| {
            let client = targets.client(p).clone();
            let topic = names[p as usize % names.len()].clone();
            let messages = vec![
                NewMessage {
                    payload: payload.clone(),
                    delay_ms: None,
                    dedup_id: None,
                };
                batch
            ];
            async move {
                let resp = client.queue_push(&topic, messages).await.map_err(wording)?;
                Ok::<_, String>(resp.ids.len() as u64)
            }
        }
    };
    let consume_op = {
        let (targets, names) = (targets.clone(), names.clone());
        // Consumers start on the node after the one their producer uses,
        // so both sides spread over the nodes.
        move |c: u32, _: u64| {
            let topic = names[c as usize % names.len()].clone();
            consume_and_ack(targets.client(c + 1).clone(), topic, c, batch)
        }
    };
    // Each side's rate is over its own run: a consumer's last poll may
    // outlast the deadline by up to the poll wait.
    let ((push_hist, push_time), (cycle_hist, cycle_time)) = tokio::join!(
        timed(start, drive(producers, deadline, pushed.clone(), push_op)),
        timed(start, drive(consumers, deadline, acked.clone(), consume_op)),
    );
    ticker.abort();
    let secs = start.elapsed().as_secs_f64();
    let (enqueued, done) = (pushed.get(&pushed.items), acked.get(&acked.items));
    let report = QueueReport {
        bench: "queue".into(),
        topic: args.topic.clone(),
        topics: args.topics,
        via: args.via.via.name().to_string(),
        clients: args.clients,
        producers,
        consumers,
        batch: args.batch,
        payload_size: args.payload_size,
        duration_s: round3(secs),
        enqueued,
        acked: done,
        enqueued_per_sec: per_sec(enqueued, push_time.as_secs_f64()),
        messages_per_sec: per_sec(done, cycle_time.as_secs_f64()),
        empty_polls: acked.get(&acked.idle),
        backlog: backlog(&client, &names).await,
        push: summarize("queue push", producers, push_time, &pushed, &push_hist?),
        consume_ack: summarize(
            "queue consume+ack",
            consumers,
            cycle_time,
            &acked,
            &cycle_hist?,
        ),
    };
    print_queue_report(global.output, &report)
}

/// `side`'s outcome and when it ended, counted from `start`.
async fn timed<T>(start: Instant, side: impl std::future::Future<Output = T>) -> (T, Duration) {
    let out = side.await;
    (out, start.elapsed())
}

/// Producers and consumers; an odd client goes to the consumers.
fn roles(clients: u32) -> (u32, u32) {
    let producers = (clients / 2).max(1);
    (producers, clients.saturating_sub(producers).max(1))
}

/// One consumer cycle: receive up to `max`, then ack them all in one call.
/// Answers how many were acked; 0 for an empty poll.
async fn consume_and_ack(client: Client, topic: String, c: u32, max: usize) -> Result<u64, String> {
    let req = ConsumeRequest {
        consumer: format!("bench-{c}"),
        max,
        visibility_ms: None,
        wait_ms: POLL_WAIT_MS,
    };
    let got = client.queue_consume(&topic, &req).await.map_err(wording)?;
    if got.messages.is_empty() {
        return Ok(0);
    }
    let receipts: Vec<String> = got.messages.into_iter().map(|m| m.receipt).collect();
    let received = receipts.len();
    let req = ReceiptsRequest {
        receipts,
        delay_ms: None,
        visibility_ms: None,
    };
    let resp = client
        .queue_receipts(&topic, "ack", &req)
        .await
        .map_err(wording)?;
    if resp.count == 0 {
        return Err(format!("received {received} messages, none was acked"));
    }
    Ok(resp.count as u64)
}

fn wording(e: dsync_api::client::ClientError) -> String {
    RequestError(e).to_string()
}

/// Messages not yet acked in `topics`, if they can be read (a topic not
/// created yet holds none).
async fn backlog(client: &Client, topics: &[String]) -> Option<u64> {
    let mut sum = 0;
    let mut any = false;
    for t in topics {
        if let Ok(s) = client.queue_stats(t).await {
            sum += s.ready + s.in_flight + s.delayed;
            any = true;
        }
    }
    any.then_some(sum)
}

async fn report_progress(pushed: Arc<Counters>, acked: Arc<Counters>, start: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        eprintln!(
            "bench queue: {:>3}s  enqueued={}  acked={}  errors={}",
            start.elapsed().as_secs(),
            pushed.get(&pushed.items),
            acked.get(&acked.items),
            pushed.get(&pushed.errors) + acked.get(&acked.errors)
        );
    }
}

fn render(r: &QueueReport) -> String {
    let mut t = Table::new([
        "BENCH", "CLIENTS", "MESSAGES", "MSG/S", "CALLS", "ERRORS", "P50_MS", "P99_MS", "P999_MS",
        "MAX_MS",
    ]);
    for (part, messages, rate) in [
        (&r.push, r.enqueued, r.enqueued_per_sec),
        (&r.consume_ack, r.acked, r.messages_per_sec),
    ] {
        t.row([
            part.bench.clone(),
            part.clients.to_string(),
            messages.to_string(),
            format!("{rate:.1}"),
            part.ops.to_string(),
            part.errors.to_string(),
            format!("{:.3}", part.p50_ms),
            format!("{:.3}", part.p99_ms),
            format!("{:.3}", part.p999_ms),
            format!("{:.3}", part.max_ms),
        ]);
    }
    let mut out = t.render();
    out.push_str(&format!(
        "\nend to end: {:.1} messages/s acked ({:.1}/s enqueued) over {:.1} s",
        r.messages_per_sec, r.enqueued_per_sec, r.duration_s
    ));
    if let Some(left) = r.backlog {
        match r.topics {
            1 => out.push_str(&format!("; {left} left in {}", r.topic)),
            n => out.push_str(&format!("; {left} left in the {n} topics")),
        }
    }
    out.push('\n');
    out
}

/// Prints the report; fails when a side did nothing but fail, so scripts notice.
fn print_queue_report(output: Output, r: &QueueReport) -> anyhow::Result<i32> {
    output.print(r, || render(r))?;
    for part in [&r.push, &r.consume_ack] {
        if let (Some(e), Output::Table) = (&part.last_error, output) {
            eprintln!("last error ({}): {e}", part.bench);
        }
        if part.ops == 0 && part.errors > 0 {
            anyhow::bail!(
                "every {} call failed; last error: {}",
                part.bench,
                part.last_error.as_deref().unwrap_or("unknown")
            );
        }
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(bench: &str, ops: u64, errors: u64) -> Report {
        Report {
            bench: bench.into(),
            via: None,
            clients: 4,
            duration_s: 2.0,
            ops,
            errors,
            ops_per_sec: ops as f64 / 2.0,
            p50_ms: 1.5,
            p99_ms: 4.25,
            p999_ms: 9.0,
            max_ms: 12.0,
            last_error: (errors > 0).then(|| "unavailable: refused".to_string()),
        }
    }

    fn sample(consume_ops: u64, consume_errors: u64) -> QueueReport {
        QueueReport {
            bench: "queue".into(),
            topic: "bench".into(),
            topics: 1,
            via: "any".into(),
            clients: 8,
            producers: 4,
            consumers: 4,
            batch: 100,
            payload_size: 1024,
            duration_s: 2.0,
            enqueued: 20_000,
            acked: 19_900,
            enqueued_per_sec: 10_000.0,
            messages_per_sec: 9_950.0,
            empty_polls: 3,
            backlog: Some(100),
            push: part("queue push", 200, 0),
            consume_ack: part("queue consume+ack", consume_ops, consume_errors),
        }
    }

    #[test]
    fn half_the_clients_produce() {
        assert_eq!(roles(8), (4, 4));
        assert_eq!(roles(5), (2, 3));
        assert_eq!(roles(2), (1, 1));
    }

    #[test]
    fn the_table_has_a_row_per_side_and_the_end_to_end_rate() {
        assert_eq!(
            render(&sample(199, 0)),
            "BENCH              CLIENTS  MESSAGES  MSG/S    CALLS  ERRORS  P50_MS  P99_MS  P999_MS  MAX_MS\n\
             queue push         4        20000     10000.0  200    0       1.500   4.250   9.000    12.000\n\
             queue consume+ack  4        19900     9950.0   199    0       1.500   4.250   9.000    12.000\n\
             \nend to end: 9950.0 messages/s acked (10000.0/s enqueued) over 2.0 s; 100 left in bench\n"
        );
    }

    #[test]
    fn json_names_the_end_to_end_rate() {
        let json = serde_json::to_value(sample(199, 0)).unwrap();
        assert_eq!(json["messages_per_sec"], 9950.0);
        assert_eq!(json["consume_ack"]["ops"], 199);
        assert_eq!(json["push"]["p99_ms"], 4.25);
    }

    #[test]
    fn a_side_with_only_errors_fails_the_run() {
        let err = print_queue_report(Output::Json, &sample(0, 5)).unwrap_err();
        assert!(err.to_string().contains("queue consume+ack"), "{err}");
        assert!(print_queue_report(Output::Json, &sample(199, 5)).is_ok());
    }
}
