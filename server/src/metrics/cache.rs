//! Cache metrics of one node, registered into the node's registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

pub struct CacheMetrics {
    pub hits: Counter,
    pub misses: Counter,
    pub evictions: Counter,
    pub invalidations_sent: Counter,
    pub invalidations_received: Counter,
    /// Coherence messages from other nodes served here (directory requests,
    /// invalidations, downgrades): a local hit must not cause any.
    pub remote_requests: Counter,
    pub lines: Family<StateLabels, Gauge>,
    pub invalidation_seconds: Histogram,
}

impl Default for CacheMetrics {
    fn default() -> Self {
        CacheMetrics {
            hits: Counter::default(),
            misses: Counter::default(),
            evictions: Counter::default(),
            invalidations_sent: Counter::default(),
            invalidations_received: Counter::default(),
            remote_requests: Counter::default(),
            lines: Family::default(),
            // 50 µs … ~26 s.
            invalidation_seconds: Histogram::new(exponential_buckets(0.00005, 2.0, 20)),
        }
    }
}

impl CacheMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "cache_hits",
            "Cache reads served from a local line",
            self.hits.clone(),
        );
        r.register(
            "cache_misses",
            "Cache reads that asked the directory",
            self.misses.clone(),
        );
        r.register(
            "cache_evictions",
            "Lines evicted by the LRU",
            self.evictions.clone(),
        );
        r.register(
            "cache_invalidations_sent",
            "Invalidations the directory sent (as leader)",
            self.invalidations_sent.clone(),
        );
        r.register(
            "cache_invalidations_received",
            "Invalidations this node received as a holder",
            self.invalidations_received.clone(),
        );
        r.register(
            "cache_remote_requests",
            "Cache coherence messages received from other nodes",
            self.remote_requests.clone(),
        );
        r.register("cache_lines", "Lines held by state", self.lines.clone());
        r.register(
            "cache_invalidation_seconds",
            "Round trip of one invalidation or downgrade",
            self.invalidation_seconds.clone(),
        );
    }
}
