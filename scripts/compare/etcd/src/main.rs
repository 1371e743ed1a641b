//! Closed-loop load on etcd v3 shaped like `dsync bench`: each of N clients
//! (its own gRPC connection) waits for an answer before it sends the next
//! request, for a fixed time; one line of results at the end.
//!
//!   etcd-compare put|lock|dist|get CLIENTS SECONDS ENDPOINT[,ENDPOINT...]
//!
//! Client c connects to the (c mod N)-th endpoint only, as `dsync bench
//! --via any` binds its clients; a member that is not the leader forwards
//! the request to it. One endpoint, the leader's, is `--via leader`.
//!
//! - `put`: puts of 128-byte values to distinct keys (`bench kv`);
//! - `lock`: lock + unlock of one name through etcd's lock service, with one
//!   lease per client (`bench lock --names contended`);
//! - `dist`: the same on a distinct name per cycle (`bench lock`);
//! - `get`: linearizable gets (etcd's default) of 100 keys written first,
//!   client c reading key (c * 7919 + n) mod 100 (`bench kv --read
//!   linearizable`).

use std::time::{Duration, Instant};

use etcd_client::{Client, LockOptions};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Put,
    Lock,
    Dist,
    Get,
}

/// Keys written before a `get` run.
const READ_KEYS: u64 = 100;

fn usage() -> ! {
    eprintln!("usage: etcd-compare put|lock|dist|get CLIENTS SECONDS ENDPOINT[,ENDPOINT...]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, clients, secs, endpoints] = args.as_slice() else {
        usage()
    };
    let mode = match mode.as_str() {
        "put" => Mode::Put,
        "lock" => Mode::Lock,
        "dist" => Mode::Dist,
        "get" => Mode::Get,
        _ => usage(),
    };
    let clients: usize = clients.parse().unwrap_or_else(|_| usage());
    let secs: u64 = secs.parse().unwrap_or_else(|_| usage());
    let endpoints: Vec<String> = endpoints.split(',').map(str::to_string).collect();
    if mode == Mode::Get {
        let mut cl = Client::connect([endpoints[0].clone()], None)
            .await
            .expect("connect to etcd");
        for k in 0..READ_KEYS {
            cl.put(format!("bench/read/{k}"), vec![b'x'; 128], None)
                .await
                .expect("put");
        }
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let endpoint = endpoints[c % endpoints.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut cl = Client::connect([endpoint], None)
                .await
                .expect("connect to etcd");
            let lease = match mode {
                Mode::Put | Mode::Get => 0,
                _ => cl.lease_grant(60, None).await.expect("lease").id(),
            };
            let value = vec![b'x'; 128];
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let name = match mode {
                    Mode::Put => {
                        cl.put(format!("bench/{c}/{n}"), value.clone(), None)
                            .await
                            .expect("put");
                        None
                    }
                    Mode::Get => {
                        let key = format!("bench/read/{}", (c as u64 * 7919 + n) % READ_KEYS);
                        let got = cl.get(key, None).await.expect("get");
                        assert_eq!(got.kvs().len(), 1, "a written key was missing");
                        None
                    }
                    Mode::Lock => Some("contended".to_string()),
                    Mode::Dist => Some(format!("bench-lock/{c}/{n}")),
                };
                if let Some(name) = name {
                    let opts = LockOptions::new().with_lease(lease);
                    let held = cl.lock(name, Some(opts)).await.expect("lock");
                    cl.unlock(held.key().to_vec()).await.expect("unlock");
                }
                latencies.push(t.elapsed());
                n += 1;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    let q = |q: f64| {
        let i = ((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1));
        all.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let name = match mode {
        Mode::Put => "put",
        Mode::Lock => "lock-contended",
        Mode::Dist => "lock-distinct",
        Mode::Get => "get",
    };
    println!(
        "etcd  {name:15} clients={clients} ops={} ops/s={:.0} p50={:.2}ms p99={:.2}ms",
        all.len(),
        all.len() as f64 / elapsed,
        q(0.5),
        q(0.99)
    );
}
