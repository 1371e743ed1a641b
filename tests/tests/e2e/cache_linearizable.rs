//! Issue 5, acceptance 3: six clients read and write a few keys through
//! every node's cache while a follower is SIGSTOPped and the leader is
//! killed; the recorded history must be linearizable. Issue 20, item 4:
//! writes and deletes through `/v1/kv` of the same keys (plain,
//! compare-and-set and fenced, through every node) are part of that
//! history, so a cache hit must never return a value a KV write replaced,
//! and a refused conditional write must change nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dsync_api::client::ClientError;
use dsync_api::locks::{AcquireRequest, LockMode};
use dsync_api::types::{Consistency, KvPutResponse};
use dsync_api::{Client, ClientConfig, ErrorCode};
use dsync_tests::linearizability::{check, Kind, Op};
use dsync_tests::Cluster;
use nix::sys::signal::Signal;
use serde_json::json;

const KEYS: [&str; 3] = ["x", "y", "z"];
const CLIENTS: u64 = 6;

struct Recorder {
    start: Instant,
    ops: Mutex<Vec<Op>>,
}

impl Recorder {
    fn micros(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
}

/// What a client remembers between operations: the last version it saw of
/// each key (for its compare-and-set writes) and its lock token (for its
/// fenced writes).
#[derive(Default)]
struct Seen {
    versions: HashMap<String, u64>,
    token: Option<u64>,
}

/// The token of this client's own lock, acquired on first use; the lease
/// outlives the test, so the token stays the lock's current grant.
async fn fence_token(client: &Client, id: u64, seen: &mut Seen) -> Option<u64> {
    if seen.token.is_none() {
        let req = AcquireRequest {
            owner: format!("client-{id}"),
            mode: LockMode::Exclusive,
            ttl_ms: 300_000,
            wait_ms: 0,
        };
        seen.token = client
            .lock_acquire(&fence_lock(id), &req)
            .await
            .ok()
            .map(|r| r.token);
    }
    seen.token
}

fn fence_lock(id: u64) -> String {
    format!("fence-{id}")
}

/// A refused conditional write (409 `conflict`, 412 `stale_token`) changed
/// nothing; any other failure may still have committed.
fn refused<T>(res: &Result<T, ClientError>) -> bool {
    matches!(res, Err(ClientError::Api { error, .. })
        if matches!(error.code, ErrorCode::Conflict | ErrorCode::StaleToken))
}

/// One client bound to one node: random reads and writes of unique values.
/// `kv_reads`: whether reads also go to `/v1/kv` (write-back writes are not
/// in the KV until flushed, so not with write-back).
async fn worker(
    client: Client,
    id: u64,
    kv_reads: bool,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) -> (u64, u64) {
    let (mut hits, mut done) = (0, 0);
    let mut n = 0u64;
    let mut seen = Seen::default();
    let mut rng = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while !stop.load(Ordering::Relaxed) {
        // xorshift: deterministic per client, no extra dependency.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let key = KEYS[(rng % KEYS.len() as u64) as usize].to_string();
        // Of every sixteen operations: four cache writes; through /v1/kv
        // one plain write, one compare-and-set write (on the version this
        // client last saw), one fenced write and one delete (plain or
        // compare-and-set); seven cache reads and one KV read (or an
        // eighth cache read).
        let op = match (rng >> 8) % 16 {
            15 if !kv_reads => 14,
            op => op,
        };
        let last = seen.versions.get(&key).copied();
        let call = rec.micros();
        let mut note = String::new();
        let kind_ret = match op {
            0..=7 => {
                n += 1;
                let value = format!("c{id}-{n}");
                let kv = |r: KvPutResponse| (format!("v{}", r.version), Some(r.version));
                let (res, via) = match op {
                    0..=3 => (
                        client
                            .cache_put(&key, json!(value))
                            .await
                            .map(|r| (format!("{:?} {:?}", r.state, r.version), r.version)),
                        "cache",
                    ),
                    4 => (client.kv_put(&key, json!(value), None).await.map(kv), "kv"),
                    5 => (
                        client
                            .kv_put(&key, json!(value), Some(last.unwrap_or(0)))
                            .await
                            .map(kv),
                        "kv cas",
                    ),
                    6 => match fence_token(&client, id, &mut seen).await {
                        Some(token) => (
                            client
                                .kv_put_fenced(&key, json!(value), None, &fence_lock(id), token)
                                .await
                                .map(kv),
                            "kv fenced",
                        ),
                        None => continue,
                    },
                    _ => {
                        let cas = (rng >> 16) & 1 == 0;
                        (
                            client
                                .kv_delete(&key, last.filter(|_| cas))
                                .await
                                .map(|r| (format!("deleted={}", r.deleted), None)),
                            if cas { "kv cas delete" } else { "kv delete" },
                        )
                    }
                };
                if refused(&res) {
                    continue;
                }
                if let Ok((r, version)) = &res {
                    note = format!("client {id}: {via} {r}");
                    match version {
                        Some(v) => seen.versions.insert(key.clone(), *v),
                        None => seen.versions.remove(&key),
                    };
                }
                let written = (op != 7).then(|| json!(value).to_string());
                // Any other failure may still have committed: the outcome is unknown.
                let ret = res.is_ok().then(|| rec.micros());
                Some((Kind::Write(written), ret))
            }
            8..=14 => match client.cache_get(&key).await {
                Ok(item) => {
                    hits += u64::from(item.hit);
                    note = format!(
                        "client {id}: {:?} v{} hit={}",
                        item.state, item.version, item.hit
                    );
                    seen.versions.insert(key.clone(), item.version);
                    Some((Kind::Read(Some(item.value.to_string())), Some(rec.micros())))
                }
                Err(ClientError::Api { error, .. }) if error.code == ErrorCode::NotFound => {
                    seen.versions.remove(&key);
                    Some((Kind::Read(None), Some(rec.micros())))
                }
                // A failed read says nothing.
                Err(_) => None,
            },
            _ => match client.kv_get(&key, Consistency::Linearizable).await {
                Ok(item) => {
                    note = format!("client {id}: kv v{}", item.version);
                    seen.versions.insert(key.clone(), item.version);
                    Some((Kind::Read(Some(item.value.to_string())), Some(rec.micros())))
                }
                Err(ClientError::Api { error, .. }) if error.code == ErrorCode::NotFound => {
                    seen.versions.remove(&key);
                    Some((Kind::Read(None), Some(rec.micros())))
                }
                Err(_) => None,
            },
        };
        if let Some((kind, ret)) = kind_ret {
            done += u64::from(ret.is_some());
            rec.ops.lock().unwrap().push(Op {
                key,
                kind,
                call,
                ret,
                note,
            });
        }
    }
    (hits, done)
}

/// Workers: (local hits, completed operations) each.
type Workers = Vec<tokio::task::JoinHandle<(u64, u64)>>;

/// Six clients, two per node, recording into one history.
fn start_clients(cluster: &Cluster, kv_reads: bool) -> (Arc<Recorder>, Arc<AtomicBool>, Workers) {
    let rec = Arc::new(Recorder {
        start: Instant::now(),
        ops: Mutex::new(Vec::new()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for id in 0..CLIENTS {
        let node = id % 3 + 1;
        let mut cfg = ClientConfig::new(vec![cluster.node(node).addr]);
        cfg.request_timeout = Duration::from_secs(3);
        cfg.retry_for = Duration::from_secs(2);
        let client = Client::new(cfg).expect("client");
        tasks.push(tokio::spawn(worker(
            client,
            id,
            kv_reads,
            rec.clone(),
            stop.clone(),
        )));
    }
    (rec, stop, tasks)
}

/// Stops the clients and checks their history.
async fn finish(rec: Arc<Recorder>, stop: Arc<AtomicBool>, tasks: Workers) {
    stop.store(true, Ordering::Relaxed);
    let (mut hits, mut done) = (0, 0);
    for t in tasks {
        let (h, d) = t.await.expect("worker");
        hits += h;
        done += d;
    }
    let ops = rec.ops.lock().unwrap().clone();
    let writes = ops
        .iter()
        .filter(|o| matches!(o.kind, Kind::Write(_)) && o.ret.is_some())
        .count();
    // Compare-and-set and fenced writes that took effect.
    let conditional = ops
        .iter()
        .filter(|o| {
            o.ret.is_some()
                && [": kv cas", ": kv fenced"]
                    .iter()
                    .any(|v| o.note.contains(v))
        })
        .count();
    eprintln!(
        "{} operations recorded, {done} completed ({writes} writes, {conditional} conditional), {hits} local hits",
        ops.len()
    );
    assert!(writes >= 20, "too few writes completed to mean anything");
    assert!(conditional >= 5, "too few conditional writes took effect");
    assert!(hits >= 20, "too few local hits to mean anything");
    if let Err(v) = check(&ops) {
        let mut ops = v.ops.clone();
        ops.sort_by_key(|o| o.call);
        let lines: Vec<String> = ops
            .iter()
            .map(|o| format!("{} {:?} {:?} {}", o.call, o.ret, o.kind, o.note))
            .collect();
        panic!(
            "history of key {:?} is not linearizable:\n{}",
            v.key,
            lines.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cache_history_through_faults_is_linearizable() {
    let cluster = Cluster::up(3, &[("DSYNC_CACHE_LEASE_MS", "1000")]);
    let leader = cluster.wait_leader(3).await;
    let follower = (1..=3).find(|&n| n != leader).unwrap();
    let (rec, stop, tasks) = start_clients(&cluster, true);

    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.signal(follower, Signal::SIGSTOP);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.signal(follower, Signal::SIGCONT);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.kill9(leader);
    tokio::time::sleep(Duration::from_secs(8)).await;
    finish(rec, stop, tasks).await;
}

/// Write-back without faults: buffered writes, flushes on remote reads,
/// invalidations and the timer must still give a linearizable history
/// (with faults, write-back loses unflushed writes by design).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_back_history_without_faults_is_linearizable() {
    let cluster = Cluster::up(
        3,
        &[
            ("DSYNC_CACHE_LEASE_MS", "1000"),
            ("DSYNC_CACHE_WRITE_POLICY", "write-back"),
            ("DSYNC_CACHE_CAPACITY_ENTRIES", "2"),
        ],
    );
    cluster.wait_leader(3).await;
    let (rec, stop, tasks) = start_clients(&cluster, false);
    tokio::time::sleep(Duration::from_secs(8)).await;
    finish(rec, stop, tasks).await;
}
