//! Prometheus metrics of one node (`GET /metrics`).

pub mod cache;
pub mod groups;

use std::borrow::Cow;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
    /// The Raft group holding the topic (0: the control group).
    pub group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// The peer's node id.
    pub peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Borrowed, like `route` where it can be, so a request allocates no label.
    pub method: &'static str,
    pub route: Cow<'static, str>,
    pub status: u16,
}

pub(crate) type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub(crate) fn latency_histogram() -> Histogram {
    // 50 µs … ~26 s.
    Histogram::new(exponential_buckets(0.00005, 2.0, 20))
}

pub struct Metrics {
    registry: Registry,
    pub term: Gauge,
    pub is_leader: Gauge,
    pub leader_changes: Counter,
    pub commit_index: Gauge,
    pub applied_index: Gauge,
    pub last_log_index: Gauge,
    pub apply_lag: Gauge,
    pub fsync_seconds: Histogram,
    pub batch_size: Histogram,
    /// Client writes per forward from this follower to the leader.
    pub forward_batch_size: Histogram,
    pub snapshots_built: Counter,
    pub snapshots_installed: Counter,
    pub forwarded: Counter,
    pub requests: HistogramFamily<RouteLabels>,
    pub locks_held: Gauge,
    pub locks_waiting: Gauge,
    pub dedup_answers: Gauge,
    pub dedup_repeats: Gauge,
    pub locks_expired: Gauge,
    pub locks_deadlocks: Gauge,
    pub lock_wait_seconds: Histogram,
    pub queue_ready: Gauge,
    pub queue_in_flight: Gauge,
    pub queue_dead_lettered: Gauge,
    /// Per topic, refreshed from the replicated state at scrape time.
    pub topic: TopicGauges,
    pub cache: cache::CacheMetrics,
    /// Per queue group hosted here.
    pub groups: groups::GroupGauges,
    /// Per peer, refreshed from the breakers at scrape time.
    pub peer_breaker_state: Family<PeerLabels, Gauge>,
    /// The peers `peer_breaker_state` has a series for.
    peer_breaker_ids: std::sync::Mutex<Vec<u64>>,
}

/// Per-topic queue gauges. The `_total` ones are replicated running totals:
/// use `rate()` on them for enqueue, ack and redelivery rates.
#[derive(Default)]
pub struct TopicGauges {
    pub ready: Family<TopicLabels, Gauge>,
    pub in_flight: Family<TopicLabels, Gauge>,
    pub delayed: Family<TopicLabels, Gauge>,
    pub dead_lettered: Family<TopicLabels, Gauge>,
    pub enqueued: Family<TopicLabels, Gauge>,
    pub acked: Family<TopicLabels, Gauge>,
    pub redelivered: Family<TopicLabels, Gauge>,
    pub oldest_age_seconds: Family<TopicLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// The series set at the last refresh, so those of a topic deleted or
    /// a group moved away are dropped rather than frozen.
    shown: std::sync::Mutex<std::collections::HashSet<TopicLabels>>,
}

impl TopicGauges {
    fn remove(&self, l: &TopicLabels) {
        self.ready.remove(l);
        self.in_flight.remove(l);
        self.delayed.remove(l);
        self.dead_lettered.remove(l);
        self.enqueued.remove(l);
        self.acked.remove(l);
        self.redelivered.remove(l);
        self.oldest_age_seconds.remove(l);
    }
}

/// Registers each `name => metric, help;` (the registry holds a clone:
/// every metric is a handle on shared counts).
macro_rules! register {
    ($registry:ident, $($name:literal => $metric:expr, $help:literal;)+) => {
        $($registry.register($name, $help, $metric.clone());)+
    };
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("dsync");
        let m = Metrics {
            term: Gauge::default(),
            is_leader: Gauge::default(),
            leader_changes: Counter::default(),
            commit_index: Gauge::default(),
            applied_index: Gauge::default(),
            last_log_index: Gauge::default(),
            apply_lag: Gauge::default(),
            fsync_seconds: latency_histogram(),
            batch_size: groups::batch_histogram(),
            forward_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            snapshots_built: Counter::default(),
            snapshots_installed: Counter::default(),
            forwarded: Counter::default(),
            requests: Family::new_with_constructor(latency_histogram),
            locks_held: Gauge::default(),
            locks_waiting: Gauge::default(),
            dedup_answers: Gauge::default(),
            dedup_repeats: Gauge::default(),
            locks_expired: Gauge::default(),
            locks_deadlocks: Gauge::default(),
            lock_wait_seconds: latency_histogram(),
            queue_ready: Gauge::default(),
            queue_in_flight: Gauge::default(),
            queue_dead_lettered: Gauge::default(),
            topic: TopicGauges::default(),
            cache: Default::default(),
            groups: Default::default(),
            peer_breaker_state: Family::default(),
            peer_breaker_ids: Default::default(),
            registry: Registry::default(),
        };
        register! { registry,
            "raft_term" => m.term, "Current Raft term";
            "raft_is_leader" => m.is_leader, "1 if this node is the leader";
            "raft_leader_changes" => m.leader_changes, "Leader changes seen by this node";
            "raft_commit_index" => m.commit_index, "Highest log index known committed";
            "raft_applied_index" => m.applied_index, "Highest log index applied to the state machine";
            "raft_last_log_index" => m.last_log_index, "Highest log index stored";
            "raft_apply_lag" => m.apply_lag, "Committed entries not yet applied";
            "log_fsync_seconds" => m.fsync_seconds, "Duration of one durable log write group (segment writes and their fdatasync)";
            "proposal_batch_commands" => m.batch_size, "Commands per proposed Raft entry";
            "forward_batch_commands" => m.forward_batch_size, "Client writes per request this follower forwarded to the leader";
            "snapshots_built" => m.snapshots_built, "Snapshots built by this node";
            "snapshots_installed" => m.snapshots_installed, "Snapshots received from a leader and installed";
            "forwarded_requests" => m.forwarded, "Client requests this node forwarded to the leader";
            "http_request_duration_seconds" => m.requests, "HTTP request latency by route";
            "dedup_answers" => m.dedup_answers, "Answers of deduplicated writes kept for resends (x-dsync-request-id)";
            "dedup_repeats" => m.dedup_repeats, "Resent writes answered from those instead of applied again";
            "locks_held" => m.locks_held, "Lock grants currently held";
            "locks_waiting" => m.locks_waiting, "Lock requests waiting in queues";
            "locks_expired" => m.locks_expired, "Leases expired since the cluster began (replicated count)";
            "locks_deadlocks" => m.locks_deadlocks, "Requests refused because they would deadlock (replicated count)";
            "lock_wait_seconds" => m.lock_wait_seconds, "Time acquire requests served by this node spent queued before their grant";
            "queue_ready" => m.queue_ready, "Messages ready across all topics";
            "queue_in_flight" => m.queue_in_flight, "Messages delivered and not yet acked";
            "queue_dead_lettered" => m.queue_dead_lettered, "Messages in dead-letter topics";
            "topic_ready" => m.topic.ready, "Ready messages per topic";
            "topic_in_flight" => m.topic.in_flight, "Delivered, unacked messages per topic";
            "topic_delayed" => m.topic.delayed, "Delayed messages per topic";
            "topic_dead_lettered" => m.topic.dead_lettered, "Messages in the topic's dead-letter queue";
            "topic_enqueued" => m.topic.enqueued, "Messages ever enqueued (replicated total; use rate())";
            "topic_acked" => m.topic.acked, "Messages ever acked (replicated total; use rate())";
            "topic_redelivered" => m.topic.redelivered, "Deliveries that expired and were redelivered (replicated total)";
            "topic_oldest_age_seconds" => m.topic.oldest_age_seconds, "Age of the oldest unacked message";
            "peer_breaker_state" => m.peer_breaker_state, "Circuit breaker of this node's calls to a peer: 0 closed, 1 half-open, 2 open";
        }
        m.cache.register(&mut registry);
        m.groups.register(&mut registry);
        Metrics { registry, ..m }
    }

    /// Sets the per-topic gauges from the current queue stats, each with
    /// the group that holds it; drops the series of the topics gone since.
    pub fn refresh_topics(&self, stats: &[(u64, dsync_api::queue::TopicStats)]) {
        let t = &self.topic;
        let mut now = std::collections::HashSet::with_capacity(stats.len());
        for (group, s) in stats {
            let l = TopicLabels {
                topic: s.topic.clone(),
                group: group.to_string(),
            };
            t.ready.get_or_create(&l).set(s.ready as i64);
            t.in_flight.get_or_create(&l).set(s.in_flight as i64);
            t.delayed.get_or_create(&l).set(s.delayed as i64);
            t.dead_lettered
                .get_or_create(&l)
                .set(s.dead_lettered as i64);
            t.enqueued.get_or_create(&l).set(s.enqueued_total as i64);
            t.acked.get_or_create(&l).set(s.acked_total as i64);
            t.redelivered
                .get_or_create(&l)
                .set(s.redelivered_total as i64);
            t.oldest_age_seconds
                .get_or_create(&l)
                .set(s.oldest_age_ms as f64 / 1000.0);
            now.insert(l);
        }
        let mut shown = t.shown.lock().unwrap_or_else(|p| p.into_inner());
        for gone in shown.difference(&now) {
            t.remove(gone);
        }
        *shown = now;
    }

    /// Sets the per-peer breaker gauges; drops the series of former peers.
    pub fn refresh_peer_breakers(&self, peers: &[dsync_api::types::PeerStatus]) {
        let mut ids = self
            .peer_breaker_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let label = |id: u64| PeerLabels {
            peer: id.to_string(),
        };
        for gone in ids.iter().filter(|id| !peers.iter().any(|p| p.id == **id)) {
            self.peer_breaker_state.remove(&label(*gone));
        }
        for p in peers {
            self.peer_breaker_state
                .get_or_create(&label(p.id))
                .set(p.breaker.gauge());
        }
        *ids = peers.iter().map(|p| p.id).collect();
    }

    /// The registry rendered in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests;
