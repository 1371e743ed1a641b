//! Read-only queries shared by `update` (selection bounds) and drawing.

use std::collections::BTreeSet;

use dsync_api::locks::LockInfo;
use dsync_api::shards::ReplicaMove;
use dsync_api::types::{NodeStatus, Role};

use super::{App, CacheCell, EventRow, NodeRow, TopicRow};
use crate::model::{CachePoll, LineState};

impl App {
    /// The leader as the reachable nodes report it; a deposed leader that
    /// has not noticed yet loses to the one with the higher term.
    pub fn leader(&self) -> Option<&NodeStatus> {
        self.nodes
            .iter()
            .filter_map(|n| n.status.as_ref())
            .filter(|s| s.role == Role::Leader)
            .max_by_key(|s| s.term)
    }

    pub fn matches(&self, text: &str) -> bool {
        self.filter.is_empty() || text.to_lowercase().contains(&self.filter.to_lowercase())
    }

    pub fn visible_nodes(&self) -> Vec<&NodeRow> {
        self.nodes
            .iter()
            .filter(|n| {
                let id = n
                    .status
                    .as_ref()
                    .map(|s| s.id.to_string())
                    .unwrap_or_default();
                self.matches(&format!("{} {id}", n.endpoint))
            })
            .collect()
    }

    pub fn visible_locks(&self) -> Vec<&LockInfo> {
        self.locks
            .iter()
            .filter(|l| {
                self.matches(&l.name)
                    || l.holders.iter().any(|h| self.matches(&h.owner))
                    || l.waiters.iter().any(|w| self.matches(&w.owner))
            })
            .collect()
    }

    pub fn visible_topics(&self) -> Vec<&TopicRow> {
        self.topics
            .iter()
            .filter(|t| self.matches(&t.stats.topic))
            .collect()
    }

    pub fn visible_events(&self) -> Vec<&EventRow> {
        self.events
            .iter()
            .filter(|e| self.matches(&format!("{} {}", e.kind, e.text)))
            .collect()
    }

    /// Whether any node answered `/v1/cache/lines` with lines (possibly none).
    pub fn cache_available(&self) -> bool {
        self.cache.iter().any(|c| matches!(c, CachePoll::Lines(_)))
    }

    /// Keys held anywhere, sorted, filtered.
    pub fn cache_keys(&self) -> Vec<String> {
        let keys: BTreeSet<&str> = self
            .cache
            .iter()
            .filter_map(|c| match c {
                CachePoll::Lines(l) => Some(l.lines.iter().map(|x| x.key.as_str())),
                _ => None,
            })
            .flatten()
            .collect();
        keys.into_iter()
            .filter(|k| self.matches(k))
            .map(str::to_string)
            .collect()
    }

    /// The state of `key` on the node at position `node`.
    pub fn cache_cell(&self, node: usize, key: &str) -> CacheCell {
        match self.cache.get(node) {
            Some(CachePoll::Lines(l)) => CacheCell::State(
                l.lines
                    .iter()
                    .find(|x| x.key == key)
                    .map_or(LineState::I, |x| x.state),
            ),
            _ => CacheCell::Unknown,
        }
    }

    /// The replica move under way, if a shard job is running one.
    pub fn current_move(&self) -> Option<&ReplicaMove> {
        self.shard_job.as_ref()?.current().map(|(_, m)| m)
    }
}
