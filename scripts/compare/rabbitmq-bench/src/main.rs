//! RabbitMQ side of `scripts/compare/rabbitmq.sh`: the workload of
//! `dsync bench queue --clients 16 --topics 12 --batch 100 --payload-size 1024`
//! against quorum queues, with the same client shape (Rust, one connection
//! per worker, tokio).
//!
//! * T topics = T durable quorum queues `<prefix>-<t>`; `--setup` deletes
//!   and re-declares them so a round starts empty.
//! * Producer i publishes to queue i mod T: a batch of persistent messages,
//!   then waits for every publisher confirm of the batch before the next.
//! * Consumer i consumes queue i mod T with manual acks and a prefetch; one
//!   `multiple` ack per batch, and the partial batch is acked at the end.
//! * Worker w (producers first, then consumers) connects to node w mod N.
//!
//! Rates follow dsync's bench: each side's count divided by the time from
//! the common start until the last worker of that side finished. One JSON
//! object on stdout.

use futures_lite::stream::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

struct Args {
    uris: Vec<String>,
    producers: usize,
    consumers: usize,
    topics: usize,
    batch: usize,
    payload: usize,
    prefetch: u16,
    duration: Duration,
    prefix: String,
    setup: bool,
}

const USAGE: &str = "usage: rabbitmq-bench --uris amqp://h:p[,amqp://h:p...] [--producers 8] \
[--consumers 8] [--topics 12] [--batch 100] [--payload-size 1024] [--prefetch 100] \
[--duration 10] [--queue-prefix dsync-bench] [--setup]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        uris: Vec::new(),
        producers: 8,
        consumers: 8,
        topics: 12,
        batch: 100,
        payload: 1024,
        prefetch: 100,
        duration: Duration::from_secs(10),
        prefix: "dsync-bench".into(),
        setup: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--setup" {
            a.setup = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let value = it.next().ok_or(format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| -> Result<usize, String> {
            match v.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{flag}: not a positive number: {v}")),
            }
        };
        match flag.as_str() {
            "--uris" => a.uris = value.split(',').map(str::to_owned).collect(),
            "--producers" => a.producers = num(&value)?,
            "--consumers" => a.consumers = num(&value)?,
            "--topics" => a.topics = num(&value)?,
            "--batch" => a.batch = num(&value)?,
            "--payload-size" => a.payload = num(&value)?,
            "--prefetch" => {
                a.prefetch = u16::try_from(num(&value)?)
                    .map_err(|_| format!("--prefetch: at most 65535: {value}"))?
            }
            "--duration" => a.duration = Duration::from_secs(num(&value)? as u64),
            "--queue-prefix" => a.prefix = value,
            _ => return Err(format!("unknown argument: {flag}\n{USAGE}")),
        }
    }
    if a.uris.is_empty() || a.uris.iter().any(String::is_empty) {
        return Err(format!("--uris is required\n{USAGE}"));
    }
    Ok(a)
}

async fn connect(uri: &str) -> Result<Connection, String> {
    // lapin's own executor would add threads beside tokio's; run it on tokio.
    let props = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    Connection::connect(uri, props)
        .await
        .map_err(|e| format!("connect {uri}: {e}"))
}

fn queue_name(a: &Args, t: usize) -> String {
    format!("{}-{t}", a.prefix)
}

async fn setup(a: &Args) -> Result<(), String> {
    let conn = connect(&a.uris[0]).await?;
    let ch = conn.create_channel().await.map_err(|e| e.to_string())?;
    let mut qargs = FieldTable::default();
    qargs.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    for t in 0..a.topics {
        let name = queue_name(a, t);
        ch.queue_delete(&name, QueueDeleteOptions::default())
            .await
            .map_err(|e| format!("delete {name}: {e}"))?;
        let opts = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare(&name, opts, qargs.clone())
            .await
            .map_err(|e| format!("declare {name}: {e}"))?;
    }
    conn.close(200, "setup done").await.ok();
    Ok(())
}

#[derive(Default)]
struct Outcome {
    msgs: u64,
    nacked: u64,
    latencies_ms: Vec<f64>,
    finished: Duration,
}

async fn producer(
    a: Arc<Args>,
    conn: Connection,
    t: usize,
    go: Arc<Barrier>,
    start: Arc<std::sync::OnceLock<Instant>>,
) -> Result<Outcome, String> {
    let ch = conn.create_channel().await.map_err(|e| e.to_string())?;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let queue = queue_name(&a, t);
    let payload = vec![b'x'; a.payload];
    let props = BasicProperties::default().with_delivery_mode(2);
    go.wait().await;
    let t0 = *start.get_or_init(Instant::now);
    let mut out = Outcome::default();
    while t0.elapsed() < a.duration {
        let b0 = Instant::now();
        let mut confirms = Vec::with_capacity(a.batch);
        for _ in 0..a.batch {
            let c = ch
                .basic_publish(
                    "",
                    &queue,
                    BasicPublishOptions::default(),
                    &payload,
                    props.clone(),
                )
                .await
                .map_err(|e| format!("publish: {e}"))?;
            confirms.push(c);
        }
        for c in confirms {
            match c.await.map_err(|e| format!("confirm: {e}"))? {
                Confirmation::Ack(_) => out.msgs += 1,
                _ => out.nacked += 1,
            }
        }
        out.latencies_ms.push(b0.elapsed().as_secs_f64() * 1e3);
    }
    out.finished = t0.elapsed();
    conn.close(200, "done").await.ok();
    Ok(out)
}

async fn consumer(
    a: Arc<Args>,
    conn: Connection,
    t: usize,
    tag: String,
    go: Arc<Barrier>,
    start: Arc<std::sync::OnceLock<Instant>>,
) -> Result<Outcome, String> {
    let ch = conn.create_channel().await.map_err(|e| e.to_string())?;
    ch.basic_qos(a.prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = ch
        .basic_consume(
            &queue_name(&a, t),
            &tag,
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("consume: {e}"))?;
    go.wait().await;
    let t0 = *start.get_or_init(Instant::now);
    let deadline = tokio::time::Instant::from_std(t0 + a.duration);
    let mut out = Outcome::default();
    let mut held = 0usize;
    let mut first: Option<Instant> = None;
    let ack = BasicAckOptions { multiple: true };
    let mut last = None;
    loop {
        let next = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => break,
            Ok(None) => return Err("consumer stream closed by the broker".into()),
            Ok(Some(d)) => d.map_err(|e| format!("delivery: {e}"))?,
        };
        first.get_or_insert_with(Instant::now);
        held += 1;
        last = Some(next);
        if held == a.batch {
            let d = last.take().expect("held a delivery");
            d.acker.ack(ack).await.map_err(|e| format!("ack: {e}"))?;
            out.msgs += held as u64;
            held = 0;
            let b0 = first.take().expect("batch started");
            out.latencies_ms.push(b0.elapsed().as_secs_f64() * 1e3);
        }
    }
    if let Some(d) = last {
        d.acker.ack(ack).await.map_err(|e| format!("ack: {e}"))?;
        out.msgs += held as u64;
    }
    out.finished = t0.elapsed();
    conn.close(200, "done").await.ok();
    Ok(out)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// CPU seconds this process has used, from /proc (Linux only; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after ')'.
    (ticks(11) + ticks(12)) / 100.0
}

struct Side {
    msgs: u64,
    nacked: u64,
    rate: f64,
    p50: f64,
    p99: f64,
}

fn summarize(outs: &[Outcome]) -> Side {
    let msgs = outs.iter().map(|o| o.msgs).sum::<u64>();
    let nacked = outs.iter().map(|o| o.nacked).sum::<u64>();
    let span = outs.iter().map(|o| o.finished).max().unwrap_or_default();
    let mut lat: Vec<f64> = outs.iter().flat_map(|o| o.latencies_ms.clone()).collect();
    lat.sort_by(f64::total_cmp);
    Side {
        msgs,
        nacked,
        rate: msgs as f64 / span.as_secs_f64().max(1e-9),
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
    }
}

async fn run(a: Args) -> Result<String, String> {
    if a.setup {
        setup(&a).await?;
    }
    let a = Arc::new(a);
    let go = Arc::new(Barrier::new(a.producers + a.consumers));
    let start = Arc::new(std::sync::OnceLock::new());
    // Connect everyone first, so connection set-up is not timed.
    let mut conns = Vec::new();
    for w in 0..a.producers + a.consumers {
        conns.push(connect(&a.uris[w % a.uris.len()]).await?);
    }
    let cpu0 = cpu_seconds();
    let wall0 = Instant::now();
    let mut prods = Vec::new();
    let mut cons = Vec::new();
    for (w, conn) in conns.into_iter().enumerate() {
        let (a, go, start) = (a.clone(), go.clone(), start.clone());
        if w < a.producers {
            prods.push(tokio::spawn(producer(
                a.clone(),
                conn,
                w % a.topics,
                go,
                start,
            )));
        } else {
            let i = w - a.producers;
            let tag = format!("bench-consumer-{i}");
            cons.push(tokio::spawn(consumer(
                a.clone(),
                conn,
                i % a.topics,
                tag,
                go,
                start,
            )));
        }
    }
    let mut p = Vec::new();
    for h in prods {
        p.push(h.await.map_err(|e| e.to_string())??);
    }
    let mut c = Vec::new();
    for h in cons {
        c.push(h.await.map_err(|e| e.to_string())??);
    }
    let cpu = (cpu_seconds() - cpu0) / wall0.elapsed().as_secs_f64();
    let (p, c) = (summarize(&p), summarize(&c));
    Ok(format!(
        concat!(
            "{{\"system\":\"rabbitmq\",\"nodes\":{},\"producers\":{},\"consumers\":{},",
            "\"topics\":{},\"batch\":{},\"payload_size\":{},\"prefetch\":{},\"duration_s\":{},",
            "\"confirmed\":{},\"nacked\":{},\"confirmed_per_sec\":{:.1},",
            "\"publish_batch_p50_ms\":{:.2},\"publish_batch_p99_ms\":{:.2},",
            "\"acked\":{},\"acked_per_sec\":{:.1},",
            "\"consume_batch_p50_ms\":{:.2},\"consume_batch_p99_ms\":{:.2},",
            "\"backlog\":{},\"client_cpu_cores\":{:.2}}}"
        ),
        a.uris.len(),
        a.producers,
        a.consumers,
        a.topics,
        a.batch,
        a.payload,
        a.prefetch,
        a.duration.as_secs(),
        p.msgs,
        p.nacked,
        p.rate,
        p.p50,
        p.p99,
        c.msgs,
        c.rate,
        c.p50,
        c.p99,
        p.msgs.saturating_sub(c.msgs),
        cpu,
    ))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rabbitmq-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
