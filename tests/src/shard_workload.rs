//! Many topics at once, as the queue-group tests drive them: one producer
//! and one consumer per topic, each on a client of its own (so through a
//! node of the caller's choosing), recording into a [`History`] that
//! [`check_queue`] reads. With a single consumer per topic the first
//! deliveries of a topic show its FIFO order.
//!
//! Payloads are `"<topic>/<seq>"`, and so are the dedup ids: a producer
//! resends a batch until it is acknowledged, and the dedup window keeps a
//! resent batch from being enqueued twice.
//!
//! Also the views the tests judge groups by: a node's own `GET /v1/shards`
//! and the leaders the groups report themselves.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dsync_api::queue::{ConsumeRequest, NewMessage, ReceiptsRequest, TopicStats};
use dsync_api::shards::{ShardMap, ShardsStatus};
use dsync_api::{routes, Client};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::checkers::{check_queue, QueueOp, QueueReport};
use crate::history::{outcome_of, History, Outcome};
use crate::{wait_until, Cluster};

/// How long a producer keeps resending one batch before the test fails.
const RESEND_FOR: Duration = Duration::from_secs(90);

pub struct Plan {
    pub topics: Vec<String>,
    /// Messages per topic, sequence numbers 0..messages.
    pub messages: u64,
    /// Messages per publish.
    pub batch: u64,
    /// Visibility timeout of each consume: how soon a delivery whose ack
    /// was lost (or whose group changed leader) is delivered again.
    pub visibility_ms: u64,
}

pub struct Run {
    pub history: Arc<History<QueueOp>>,
    /// Messages acknowledged to the producers so far.
    pub published: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    producers: Vec<JoinHandle<()>>,
    consumers: Vec<JoinHandle<()>>,
    topics: Vec<String>,
}

/// Starts topic `i`'s producer on `producer_for(i)` and its consumer on
/// `consumer_for(i)`. History process `2i` is the producer, `2i + 1` the
/// consumer.
pub fn start(
    plan: &Plan,
    producer_for: impl Fn(usize) -> Client,
    consumer_for: impl Fn(usize) -> Client,
) -> Run {
    let history = Arc::new(History::new());
    let published = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut producers = Vec::new();
    let mut consumers = Vec::new();
    for (i, topic) in plan.topics.iter().enumerate() {
        producers.push(tokio::spawn(produce(
            producer_for(i),
            2 * i,
            topic.clone(),
            (plan.messages, plan.batch),
            history.clone(),
            published.clone(),
        )));
        consumers.push(tokio::spawn(consume(
            consumer_for(i),
            2 * i + 1,
            topic.clone(),
            plan.visibility_ms,
            history.clone(),
            stop.clone(),
        )));
    }
    Run {
        history,
        published,
        stop,
        producers,
        consumers,
        topics: plan.topics.clone(),
    }
}

async fn produce(
    client: Client,
    process: usize,
    topic: String,
    (messages, batch): (u64, u64),
    history: Arc<History<QueueOp>>,
    published: Arc<AtomicU64>,
) {
    let mut start = 0;
    while start < messages {
        let end = (start + batch).min(messages);
        let payloads: Vec<String> = (start..end).map(|s| format!("{topic}/{s}")).collect();
        let msgs: Vec<NewMessage> = payloads
            .iter()
            .map(|p| NewMessage {
                payload: json!(p),
                delay_ms: None,
                dedup_id: Some(p.clone()),
            })
            .collect();
        let since = Instant::now();
        loop {
            let t = history.now_us();
            let result = client.queue_push(&topic, msgs.clone()).await;
            let outcome = match &result {
                Ok(_) => Outcome::Ok,
                Err(e) => outcome_of(e),
            };
            for p in &payloads {
                let op = QueueOp::Enqueue { payload: p.clone() };
                history.record(process, t, outcome, op);
            }
            match result {
                Ok(r) => {
                    assert_eq!(r.ids.len(), payloads.len(), "{topic}: one id per message");
                    break;
                }
                Err(e) => assert!(
                    since.elapsed() < RESEND_FOR,
                    "{topic}: the batch from seq {start} was not accepted within {RESEND_FOR:?}: {e}"
                ),
            }
        }
        published.fetch_add(end - start, Ordering::Relaxed);
        start = end;
    }
}

async fn consume(
    client: Client,
    process: usize,
    topic: String,
    visibility_ms: u64,
    history: Arc<History<QueueOp>>,
    stop: Arc<AtomicBool>,
) {
    let req = ConsumeRequest {
        consumer: format!("c-{topic}"),
        max: 16,
        visibility_ms: Some(visibility_ms),
        wait_ms: 500,
    };
    while !stop.load(Ordering::Relaxed) {
        let t = history.now_us();
        let batch = match client.queue_consume(&topic, &req).await {
            Ok(b) => b,
            Err(e) => {
                let op = QueueOp::Deliver { payloads: vec![] };
                history.record(process, t, outcome_of(&e), op);
                continue;
            }
        };
        if batch.messages.is_empty() {
            continue;
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
        // A lost ack only means a redelivery, which the checks allow.
        let _ = client.queue_receipts(&topic, "ack", &ack).await;
    }
}

impl Run {
    /// Waits (up to a minute) until `n` messages have been acknowledged to
    /// the producers; returns how many were by then.
    pub async fn published_at_least(&self, n: u64) -> u64 {
        let published = self.published.clone();
        crate::wait_ok(Duration::from_secs(60), "messages published", || {
            let published = published.clone();
            async move {
                let got = published.load(Ordering::Relaxed);
                (got >= n)
                    .then_some(got)
                    .ok_or_else(|| format!("{got} of {n}"))
            }
        })
        .await
    }

    /// Waits for every producer to have its messages acknowledged.
    pub async fn producers_done(&mut self) {
        for p in self.producers.drain(..) {
            p.await.expect("producer");
        }
    }

    /// Waits (up to `limit`) until every acknowledged message has been
    /// delivered and each topic, read through `stats`, has nothing ready,
    /// delayed or in flight; then stops the consumers and returns the
    /// check of the whole history and each topic's final stats.
    pub async fn drain(
        mut self,
        stats: &Client,
        limit: Duration,
    ) -> (QueueReport, BTreeMap<String, TopicStats>) {
        self.producers_done().await;
        let history = self.history.clone();
        let topics = self.topics.clone();
        wait_until(
            limit,
            "every acknowledged message delivered and acked",
            || {
                let (history, topics) = (history.clone(), topics.clone());
                async move {
                    if !check_queue(&history.ops()).violations.is_empty() {
                        return None;
                    }
                    for t in &topics {
                        let s = stats.queue_stats(t).await.ok()?;
                        if s.ready + s.delayed + s.in_flight > 0 {
                            return None;
                        }
                    }
                    Some(())
                }
            },
        )
        .await;
        self.stop.store(true, Ordering::Relaxed);
        for c in self.consumers.drain(..) {
            c.await.expect("consumer");
        }
        let mut last = BTreeMap::new();
        for t in &self.topics {
            let s = stats.queue_stats(t).await.expect("final stats");
            last.insert(t.clone(), s);
        }
        (check_queue(&self.history.ops()), last)
    }
}

/// The sequence numbers of `topic` in the order they were first delivered
/// (redeliveries dropped); FIFO means 0, 1, 2, ...
pub fn first_deliveries(history: &History<QueueOp>, topic: &str) -> Vec<u64> {
    let prefix = format!("{topic}/");
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    for op in history.ops() {
        let QueueOp::Deliver { payloads } = &op.op else {
            continue;
        };
        for p in payloads {
            let Some(seq) = p.strip_prefix(&prefix).and_then(|s| s.parse().ok()) else {
                continue;
            };
            if seen.insert(seq) {
                order.push(seq);
            }
        }
    }
    order
}

/// Node `id`'s own `GET /v1/shards`, within 2 s (a dead node must not hold
/// a poll up).
pub async fn view(c: &Cluster, id: u64) -> Result<ShardsStatus, String> {
    let addr = c.node(id).addr;
    let client = c.client();
    let call = client.call_node::<ShardsStatus>(&addr, routes::SHARDS);
    match tokio::time::timeout(Duration::from_secs(2), call).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(format!("node {id}: {e}")),
        Err(_) => Err(format!("node {id}: no answer within 2 s")),
    }
}

/// Each group of `map` with the node among `ids` that reports itself its
/// leader (the higher term if two do); an error naming the groups without.
pub async fn leaders(
    c: &Cluster,
    map: &ShardMap,
    ids: &[u64],
) -> Result<BTreeMap<u64, u64>, String> {
    let mut best: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for &id in ids {
        let Ok(s) = view(c, id).await else { continue };
        if s.map.epoch < map.epoch {
            continue;
        }
        for g in s
            .groups
            .iter()
            .filter(|g| g.id != 0 && g.leader == Some(id))
        {
            let e = best.entry(g.id).or_insert((g.term, id));
            if g.term > e.0 {
                *e = (g.term, id);
            }
        }
    }
    let led: BTreeMap<u64, u64> = best.into_iter().map(|(g, (_, l))| (g, l)).collect();
    let missing: Vec<u64> = map
        .groups
        .iter()
        .map(|g| g.id)
        .filter(|g| !led.contains_key(g))
        .collect();
    if missing.is_empty() {
        Ok(led)
    } else {
        Err(format!(
            "no self-reported leader among {ids:?} for groups {missing:?}"
        ))
    }
}

/// The sequence numbers of `topic` delivered exactly once: FIFO is judged
/// on these (a redelivered message may come back after later ones).
pub fn delivered_once(history: &History<QueueOp>, topic: &str) -> std::collections::BTreeSet<u64> {
    let prefix = format!("{topic}/");
    let mut times: BTreeMap<u64, usize> = BTreeMap::new();
    for op in history.ops() {
        if let QueueOp::Deliver { payloads } = &op.op {
            for p in payloads {
                if let Some(seq) = p.strip_prefix(&prefix).and_then(|s| s.parse().ok()) {
                    *times.entry(seq).or_default() += 1;
                }
            }
        }
    }
    times
        .into_iter()
        .filter(|(_, n)| *n == 1)
        .map(|(s, _)| s)
        .collect()
}

/// The first node of `nodes` whose data folder disagrees with `map`: a
/// copy of a group the map does not place there (one that moved away and
/// was not deleted), or none of one it does.
pub fn misplaced(c: &Cluster, map: &ShardMap, nodes: &[u64]) -> Option<String> {
    for g in &map.groups {
        for &n in nodes {
            let dir = c.node(n).data_dir.join("groups").join(g.id.to_string());
            if dir.exists() != g.replicas.contains(&n) {
                return Some(format!(
                    "node {n}, group {}: data {} exists {}, replicas {:?}",
                    g.id,
                    dir.display(),
                    dir.exists(),
                    g.replicas
                ));
            }
        }
    }
    None
}
