//! `dsync bench cache`: local hit reads on every node (or on the leader), or
//! writes that must invalidate a given number of sharers first.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use dsync_api::{Client, ClientConfig};
use hdrhistogram::Histogram;
use serde_json::Value;

use super::via::{bench_timeouts, Targets, ViaArgs};
use super::{closed_loop, print_report, summarize, Counters, LoadArgs};
use crate::context::{GlobalArgs, RequestError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheMode {
    /// GETs of keys the node asked holds: served from its lines, no hop to
    /// another node. Every node reads each key once (untimed) first.
    Hits,
    /// Each write first makes --sharers nodes hold the key in S (untimed),
    /// then times the write: invalidations plus the Raft commit.
    Writes,
}

#[derive(Debug, clap::Args)]
pub struct CacheBenchArgs {
    #[command(flatten)]
    pub load: LoadArgs,

    /// Which node each client reads from (`hits`) or writes through (`writes`).
    #[command(flatten)]
    pub via: ViaArgs,

    /// What to measure.
    #[arg(long, value_enum, default_value_t = CacheMode::Hits)]
    pub mode: CacheMode,

    /// Keys read in `hits` mode (each client also gets its own key in `writes` mode).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub keys: u32,

    /// Size of each value, in bytes.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(0..=1024 * 1024), value_name = "BYTES")]
    pub value_size: u32,

    /// Writes mode: how many nodes hold the key in S before each write.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub sharers: u32,
}

fn node_client(addr: &str, global: &GlobalArgs) -> anyhow::Result<Client> {
    let mut c = ClientConfig::new(vec![addr.to_string()]);
    c.token = global.token.clone();
    bench_timeouts(&mut c);
    Client::new(c).map_err(|e| RequestError(e).into())
}

pub async fn run(global: &GlobalArgs, args: CacheBenchArgs) -> anyhow::Result<i32> {
    let addrs = global.endpoints()?;
    let targets = Targets::new(global, args.via.via, args.load.clients, bench_timeouts).await?;
    let value = Value::String("x".repeat(args.value_size as usize));
    let mut report = match args.mode {
        CacheMode::Hits => hits(&args, &targets, value).await?,
        CacheMode::Writes => writes(global, &args, &addrs, &targets, value).await?,
    };
    report.via = Some(targets.via.name().to_string());
    print_report(global.output, &report)
}

async fn hits(
    args: &CacheBenchArgs,
    targets: &Targets,
    value: Value,
) -> anyhow::Result<super::Report> {
    eprintln!(
        "bench cache hits: {} clients for {} s over {} keys, {}",
        args.load.clients, args.load.duration, args.keys, targets.described
    );
    let first = &targets.all()[0];
    for k in 0..args.keys {
        first
            .cache_put(&key(k), value.clone())
            .await
            .map_err(RequestError)
            .context("warming the cache")?;
    }
    // The writer holds the keys in M; every other node takes its copy now,
    // so the timed reads are hits from the first one on.
    for client in &targets.all()[1..] {
        for k in 0..args.keys {
            client
                .cache_get(&key(k))
                .await
                .map_err(RequestError)
                .context("warming the cache")?;
        }
    }
    let keys = args.keys;
    let misses = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let m = misses.clone();
    let clients: Vec<Client> = (0..args.load.clients)
        .map(|c| targets.client(c).clone())
        .collect();
    let report = closed_loop("cache-hits", &args.load, move |c, n| {
        let (client, m) = (clients[c as usize].clone(), m.clone());
        async move {
            let item = client
                .cache_get(&key(((c as u64 * 7919 + n) % keys as u64) as u32))
                .await
                .map_err(|e| RequestError(e).to_string())?;
            if !item.hit {
                m.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, String>(())
        }
    })
    .await?;
    eprintln!(
        "{} of {} reads were misses (lease renewals happen in the background)",
        misses.load(Ordering::Relaxed),
        report.ops
    );
    Ok(report)
}

async fn writes(
    global: &GlobalArgs,
    args: &CacheBenchArgs,
    addrs: &[String],
    targets: &Targets,
    value: Value,
) -> anyhow::Result<super::Report> {
    if args.sharers as usize > addrs.len() {
        bail!(
            "--sharers {} needs as many nodes; {} known",
            args.sharers,
            addrs.len()
        );
    }
    let clients: Vec<Client> = addrs
        .iter()
        .map(|a| node_client(a, global))
        .collect::<anyhow::Result<_>>()?;
    eprintln!(
        "bench cache writes: {} clients for {} s, {} sharers per write over {} nodes, writes {}",
        args.load.clients,
        args.load.duration,
        args.sharers,
        addrs.len(),
        targets.described
    );
    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.load.duration);
    let sharers = args.sharers as usize;
    let mut tasks = Vec::new();
    for c in 0..args.load.clients {
        let (clients, counters, value) = (clients.clone(), counters.clone(), value.clone());
        let writer = targets.client(c).clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let k = format!("bench/cache/w{c}");
            writer
                .cache_put(&k, value.clone())
                .await
                .map_err(RequestError)?;
            while Instant::now() < deadline {
                for s in 0..sharers {
                    let _ = clients[(c as usize + s) % clients.len()]
                        .cache_get(&k)
                        .await;
                }
                let began = Instant::now();
                match writer.cache_put(&k, value.clone()).await {
                    Ok(_) => {
                        hist.saturating_record(began.elapsed().as_micros().max(1) as u64);
                        counters.ops.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => counters.failed(RequestError(e).to_string()),
                }
            }
            anyhow::Ok(hist)
        }));
    }
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for t in tasks {
        total
            .add(&t.await??)
            .map_err(|e| anyhow::anyhow!("cannot merge latencies: {e}"))?;
    }
    Ok(summarize(
        "cache-writes",
        args.load.clients,
        start.elapsed(),
        &counters,
        &total,
    ))
}

fn key(k: u32) -> String {
    format!("bench/cache/{k}")
}
