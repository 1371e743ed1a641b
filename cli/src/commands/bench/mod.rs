//! `dsync bench`: closed-loop load. The driver here (clients, deadline,
//! latency histogram, report) is shared; each bench only supplies one
//! operation.

pub mod cache;
pub mod failover;
pub mod kv;
pub mod lock;
pub mod queue;
pub mod via;

use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Subcommand;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::context::GlobalArgs;
use crate::output::{Output, Table};

/// Highest latency the histogram tracks exactly: one minute, in microseconds.
const MAX_LATENCY_US: u64 = 60_000_000;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Write distinct keys as fast as the cluster commits them.
    Kv(kv::KvBenchArgs),
    /// Lock acquire+release cycles: distinct names, or one contended lock.
    Lock(lock::LockBenchArgs),
    /// Kill -9 the leader of the local cluster under writes, N times: time to the first acknowledged write.
    Failover(failover::FailoverBenchArgs),
    /// Producers push batches while consumers receive and ack them: messages/s end to end.
    Queue(queue::QueueBenchArgs),
    /// Cache hit GETs served from each node's copies, or writes that invalidate --sharers copies.
    Cache(cache::CacheBenchArgs),
}

pub async fn run(global: &GlobalArgs, cmd: BenchCommand) -> anyhow::Result<i32> {
    match cmd {
        BenchCommand::Kv(args) => kv::run(global, args).await,
        BenchCommand::Lock(args) => lock::run(global, args).await,
        BenchCommand::Queue(args) => queue::run(global, args).await,
        BenchCommand::Failover(args) => failover::run(global, args).await,
        BenchCommand::Cache(args) => cache::run(global, args).await,
    }
}

/// Load shape common to every bench.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Concurrent clients, each keeping one request in flight.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,

    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400), value_name = "SECONDS")]
    pub duration: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub bench: String,
    /// `--via` of the benches that have it: which nodes the clients used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    pub clients: u32,
    pub duration_s: f64,
    /// Successful operations.
    pub ops: u64,
    pub errors: u64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// The most recent failure, to tell what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Counters shared by the tasks of one load: successful calls, the items
/// they handled, calls that found nothing to do, and failures.
#[derive(Default)]
pub struct Counters {
    pub ops: AtomicU64,
    pub items: AtomicU64,
    pub idle: AtomicU64,
    pub errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Counters {
    fn failed(&self, error: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
    }

    pub fn get(&self, counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The most recent failure, to tell what went wrong.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Runs `op(client, n)` from `load.clients` tasks, each starting its next
/// call when the previous one returns, until `load.duration` passes. Only
/// successful calls enter the latency histogram.
pub async fn closed_loop<F, Fut, E>(name: &str, load: &LoadArgs, op: F) -> anyhow::Result<Report>
where
    F: Fn(u32, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display,
{
    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(load.duration);
    let ticker = tokio::spawn(report_progress(name.to_string(), counters.clone(), start));
    let hist = drive(
        load.clients,
        deadline,
        counters.clone(),
        move |client, n| {
            let call = op(client, n);
            async move { call.await.map(|()| 1) }
        },
    )
    .await;
    ticker.abort();
    Ok(summarize(
        name,
        load.clients,
        start.elapsed(),
        &counters,
        &hist?,
    ))
}

/// The driver under [`closed_loop`]: `clients` tasks call `op(client, n)`
/// back to back until `deadline`. `op` answers how many items it handled;
/// a call that handled none (an empty poll) counts as idle and stays out
/// of `ops` and of the histogram of latencies it returns.
pub async fn drive<F, Fut, E>(
    clients: u32,
    deadline: Instant,
    counters: Arc<Counters>,
    op: F,
) -> anyhow::Result<Histogram<u64>>
where
    F: Fn(u32, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64, E>> + Send + 'static,
    E: Display,
{
    let op = Arc::new(op);
    let mut tasks = Vec::with_capacity(clients as usize);
    for client in 0..clients {
        let (op, counters) = (op.clone(), counters.clone());
        // One histogram per task: recording stays lock-free, merged at the end.
        let mut hist = new_histogram()?;
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let began = Instant::now();
                match op(client, n).await {
                    Ok(0) => {
                        counters.idle.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(items) => {
                        hist.saturating_record(began.elapsed().as_micros().max(1) as u64);
                        counters.ops.fetch_add(1, Ordering::Relaxed);
                        counters.items.fetch_add(items, Ordering::Relaxed);
                    }
                    Err(e) => counters.failed(e.to_string()),
                }
                n += 1;
            }
            hist
        }));
    }
    let mut total = new_histogram()?;
    for task in tasks {
        let hist = task.await?;
        total
            .add(&hist)
            .map_err(|e| anyhow::anyhow!("cannot merge latencies: {e}"))?;
    }
    Ok(total)
}

/// The report of one load from its counters and latencies.
pub fn summarize(
    name: &str,
    clients: u32,
    elapsed: Duration,
    counters: &Counters,
    hist: &Histogram<u64>,
) -> Report {
    let elapsed = elapsed.as_secs_f64();
    let ops = counters.get(&counters.ops);
    let ms = |us: u64| us as f64 / 1000.0;
    Report {
        bench: name.to_string(),
        via: None,
        clients,
        duration_s: round3(elapsed),
        ops,
        errors: counters.get(&counters.errors),
        ops_per_sec: per_sec(ops, elapsed),
        p50_ms: ms(hist.value_at_quantile(0.5)),
        p99_ms: ms(hist.value_at_quantile(0.99)),
        p999_ms: ms(hist.value_at_quantile(0.999)),
        max_ms: ms(hist.max()),
        last_error: counters.last_error(),
    }
}

/// `count` per second over `elapsed_s`, rounded to thousandths.
pub fn per_sec(count: u64, elapsed_s: f64) -> f64 {
    round3(if elapsed_s > 0.0 {
        count as f64 / elapsed_s
    } else {
        0.0
    })
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .map_err(|e| anyhow::anyhow!("cannot create a histogram: {e}"))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

async fn report_progress(name: String, counters: Arc<Counters>, start: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        eprintln!(
            "bench {name}: {:>3}s  ops={}  errors={}",
            start.elapsed().as_secs(),
            counters.get(&counters.ops),
            counters.get(&counters.errors)
        );
    }
}

/// Prints the report; fails when nothing succeeded, so scripts notice.
pub fn print_report(output: Output, report: &Report) -> anyhow::Result<i32> {
    output.print(report, || {
        let mut headers = vec!["BENCH"];
        let mut row = vec![report.bench.clone()];
        if let Some(via) = &report.via {
            headers.push("VIA");
            row.push(via.clone());
        }
        headers.extend([
            "CLIENTS", "OPS", "ERRORS", "OPS/S", "P50_MS", "P99_MS", "P999_MS", "MAX_MS",
        ]);
        row.extend([
            report.clients.to_string(),
            report.ops.to_string(),
            report.errors.to_string(),
            format!("{:.1}", report.ops_per_sec),
            format!("{:.3}", report.p50_ms),
            format!("{:.3}", report.p99_ms),
            format!("{:.3}", report.p999_ms),
            format!("{:.3}", report.max_ms),
        ]);
        let mut t = Table::new(headers);
        t.row(row);
        t.render()
    })?;
    if let Some(e) = &report.last_error {
        if output == Output::Table {
            eprintln!("last error: {e}");
        }
    }
    if report.ops == 0 && report.errors > 0 {
        anyhow::bail!(
            "every operation failed; last error: {}",
            report.last_error.as_deref().unwrap_or("unknown")
        );
    }
    Ok(crate::commands::EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_driver_counts_successes_and_errors_apart() {
        let load = LoadArgs {
            clients: 4,
            duration: 1,
        };
        let report = closed_loop("test", &load, |client, n| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            if client == 0 && n % 2 == 1 {
                Err("odd")
            } else {
                Ok(())
            }
        })
        .await
        .unwrap();
        assert!(report.ops > 100, "{report:?}");
        assert!(report.errors > 10, "{report:?}");
        assert_eq!(report.last_error.as_deref(), Some("odd"));
        assert!(report.p50_ms >= 2.0 && report.p50_ms < 100.0, "{report:?}");
        assert!(report.max_ms >= report.p999_ms && report.p999_ms >= report.p99_ms);
        assert!(report.duration_s >= 1.0);
    }

    #[tokio::test]
    async fn empty_calls_are_idle_and_items_add_up() {
        let counters = Arc::new(Counters::default());
        let deadline = Instant::now() + Duration::from_millis(300);
        let hist = drive(2, deadline, counters.clone(), |_, n| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, String>(n % 2 * 10)
        })
        .await
        .unwrap();
        let (ops, idle) = (counters.get(&counters.ops), counters.get(&counters.idle));
        assert!(ops > 10 && idle > 10, "ops={ops} idle={idle}");
        assert_eq!(counters.get(&counters.items), ops * 10);
        assert_eq!(hist.len(), ops);
        assert_eq!(counters.last_error(), None);
    }

    #[test]
    fn a_run_with_only_errors_fails() {
        let report = Report {
            bench: "kv".into(),
            via: None,
            clients: 1,
            duration_s: 1.0,
            ops: 0,
            errors: 3,
            ops_per_sec: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            p999_ms: 0.0,
            max_ms: 0.0,
            last_error: Some("unavailable: refused".into()),
        };
        let err = print_report(Output::Json, &report).unwrap_err().to_string();
        assert!(err.contains("unavailable: refused"), "{err}");
    }
}
