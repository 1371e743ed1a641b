//! Client workloads for fault runs: each records every operation in a
//! history the checkers read. Clients spread over the nodes and keep going
//! through faults; errors are recorded, never fatal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dsync_api::locks::{AcquireRequest, LockMode};
use dsync_api::queue::{ConsumeRequest, NewMessage, ReceiptsRequest};
use dsync_api::types::Consistency;
use dsync_api::{Client, ClientConfig};
use serde_json::json;

use crate::checkers::{LockOp, QueueOp};
use crate::history::{outcome_of, History, Outcome};
use crate::Cluster;

pub const LOCK: &str = "chaos-lock";
pub const FENCED_KEY: &str = "chaos-fenced";
const LOCK_TTL_MS: u64 = 3000;

/// A client per process, preferring node `process % n` first, with short
/// retries so that faults show up in the history instead of being hidden.
pub fn client(cluster: &Cluster, process: usize) -> Client {
    let mut endpoints = cluster.endpoints();
    let n = endpoints.len();
    endpoints.rotate_left(process % n);
    let mut cfg = ClientConfig::new(endpoints);
    cfg.request_timeout = Duration::from_secs(5);
    cfg.retry_for = Duration::from_secs(3);
    Client::new(cfg).expect("client")
}

/// Exclusive lock cycles: acquire, a write fenced by the token, release.
pub async fn lock_worker(
    cluster: Arc<Cluster>,
    process: usize,
    history: Arc<History<LockOp>>,
    stop: Arc<AtomicBool>,
) {
    let client = client(&cluster, process);
    let owner = format!("p{process}");
    while !stop.load(Ordering::Relaxed) {
        let t = history.now_us();
        let req = AcquireRequest {
            owner: owner.clone(),
            mode: LockMode::Exclusive,
            ttl_ms: LOCK_TTL_MS,
            wait_ms: 2000,
        };
        let token = match client.lock_acquire(LOCK, &req).await {
            Ok(grant) => {
                history.record(process, t, Outcome::Ok, acquire(&owner, Some(grant.token)));
                grant.token
            }
            Err(e) => {
                history.record(process, t, outcome_of(&e), acquire(&owner, None));
                continue;
            }
        };
        let t = history.now_us();
        let write = client
            .kv_put_fenced(
                FENCED_KEY,
                json!({"owner": owner, "token": token}),
                None,
                LOCK,
                token,
            )
            .await;
        let (outcome, version) = match &write {
            Ok(r) => (Outcome::Ok, Some(r.version)),
            Err(e) => (outcome_of(e), None),
        };
        history.record(
            process,
            t,
            outcome,
            LockOp::FencedWrite {
                owner: owner.clone(),
                token,
                version,
            },
        );
        let t = history.now_us();
        let outcome = match client.lock_release(LOCK, &owner, token).await {
            Ok(_) => Outcome::Ok,
            Err(e) => outcome_of(&e),
        };
        history.record(
            process,
            t,
            outcome,
            LockOp::Release {
                owner: owner.clone(),
                token,
            },
        );
    }
}

fn acquire(owner: &str, token: Option<u64>) -> LockOp {
    LockOp::Acquire {
        owner: owner.to_string(),
        ttl_ms: LOCK_TTL_MS,
        token,
    }
}

pub const TOPIC: &str = "chaos-queue";

/// Enqueues unique payloads one at a time.
pub async fn producer(
    cluster: Arc<Cluster>,
    process: usize,
    history: Arc<History<QueueOp>>,
    stop: Arc<AtomicBool>,
) {
    let client = client(&cluster, process);
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let payload = format!("p{process}-{i}");
        i += 1;
        let t = history.now_us();
        let msg = NewMessage {
            payload: json!(payload),
            delay_ms: None,
            dedup_id: None,
        };
        let outcome = match client.queue_push(TOPIC, vec![msg]).await {
            Ok(_) => Outcome::Ok,
            Err(e) => outcome_of(&e),
        };
        history.record(process, t, outcome, QueueOp::Enqueue { payload });
    }
}

/// Consumes and acks until `stop`; with `drain`, until a long poll comes
/// back empty (after the faults, to collect everything left).
pub async fn consumer(
    cluster: Arc<Cluster>,
    process: usize,
    history: Arc<History<QueueOp>>,
    stop: Arc<AtomicBool>,
    drain: bool,
) {
    let client = client(&cluster, process);
    loop {
        if !drain && stop.load(Ordering::Relaxed) {
            return;
        }
        let t = history.now_us();
        let req = ConsumeRequest {
            consumer: format!("c{process}"),
            max: 16,
            visibility_ms: Some(2000),
            wait_ms: if drain { 3000 } else { 500 },
        };
        let batch = match client.queue_consume(TOPIC, &req).await {
            Ok(b) => b,
            Err(e) => {
                history.record(
                    process,
                    t,
                    outcome_of(&e),
                    QueueOp::Deliver { payloads: vec![] },
                );
                continue;
            }
        };
        if drain && batch.messages.is_empty() {
            return;
        }
        let payloads = batch
            .messages
            .iter()
            .map(|m| m.payload.as_str().unwrap_or_default().to_string())
            .collect();
        history.record(process, t, Outcome::Ok, QueueOp::Deliver { payloads });
        let ack = ReceiptsRequest {
            receipts: batch.messages.iter().map(|m| m.receipt.clone()).collect(),
            delay_ms: None,
            visibility_ms: None,
        };
        // A lost ack only means a redelivery (a counted duplicate).
        let _ = client.queue_receipts(TOPIC, "ack", &ack).await;
    }
}

/// The leader's view of the fenced key after the run (for the report).
pub async fn fenced_value(cluster: &Cluster) -> Option<serde_json::Value> {
    let c = cluster.client();
    c.kv_get(FENCED_KEY, Consistency::Linearizable)
        .await
        .ok()
        .map(|i| i.value)
}
