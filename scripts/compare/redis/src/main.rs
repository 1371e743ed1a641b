//! Closed-loop GETs on Redis shaped like `dsync bench cache --mode hits`:
//! the keys are written once, then each of N clients (its own connection)
//! reads them in turn, waiting for each answer before it sends the next
//! request, for a fixed time; one line of results at the end.
//!
//!   redis-compare CLIENTS SECONDS ADDR [KEYS] [VALUE_BYTES]
//!
//! KEYS (default 100) and VALUE_BYTES (default 128) match the dsync
//! bench's defaults; client c reads key (c * 7919 + n) mod KEYS on its
//! n-th request, as the dsync bench does.

use std::time::{Duration, Instant};

use redis::AsyncCommands;

fn usage() -> ! {
    eprintln!("usage: redis-compare CLIENTS SECONDS ADDR [KEYS] [VALUE_BYTES]");
    std::process::exit(2)
}

fn key(k: u64) -> String {
    format!("bench/cache/{k}")
}

fn number(arg: Option<&String>, default: u64) -> u64 {
    match arg {
        None => default,
        Some(v) => v.parse().unwrap_or_else(|_| usage()),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 || args.len() > 5 {
        usage()
    }
    let clients: u64 = args[0].parse().unwrap_or_else(|_| usage());
    let secs: u64 = args[1].parse().unwrap_or_else(|_| usage());
    let keys = number(args.get(3), 100).max(1);
    let value = vec![b'x'; number(args.get(4), 128) as usize];
    let url = format!("redis://{}/", args[2]);
    let redis = redis::Client::open(url.as_str()).unwrap_or_else(|e| {
        eprintln!("bad address {}: {e}", args[2]);
        std::process::exit(2)
    });
    let mut warm = redis
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis");
    for k in 0..keys {
        let () = warm.set(key(k), &value).await.expect("SET");
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let redis = redis.clone();
        tasks.push(tokio::spawn(async move {
            // One connection per client, one request in flight on it.
            let mut conn = redis
                .get_multiplexed_async_connection()
                .await
                .expect("connect to redis");
            let mut latencies = Vec::new();
            let (mut n, mut misses) = (0u64, 0u64);
            while Instant::now() < deadline {
                let t = Instant::now();
                let got: Option<Vec<u8>> = conn.get(key((c * 7919 + n) % keys)).await.expect("GET");
                latencies.push(t.elapsed());
                misses += u64::from(got.is_none());
                n += 1;
            }
            (latencies, misses)
        }));
    }
    let (mut all, mut misses) = (Vec::new(), 0);
    for t in tasks {
        let (l, m) = t.await.expect("client task");
        all.extend(l);
        misses += m;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    let q = |q: f64| {
        let i = ((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1));
        all.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "redis get clients={clients} ops={} ops/s={:.0} p50={:.3}ms p99={:.3}ms misses={misses}",
        all.len(),
        all.len() as f64 / elapsed,
        q(0.5),
        q(0.99)
    );
}
