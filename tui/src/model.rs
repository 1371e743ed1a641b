//! What the data-fetch tasks bring back, and the dashboard's own view of
//! the cache (whose wire type lives with the cache feature).

use dsync_api::locks::{LockGraph, LockInfo};
use dsync_api::queue::TopicStats;
use dsync_api::types::NodeStatus;
use serde::Deserialize;

/// `GET /v1/cache/lines` of one node.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CacheLines {
    pub node: u64,
    pub lines: Vec<CacheLine>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CacheLine {
    pub key: String,
    pub state: LineState,
    #[serde(default)]
    pub version: u64,
    #[serde(default)]
    pub lease_remaining_ms: u64,
}

/// MESI state of a line; a node without the line is `Invalid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum LineState {
    #[serde(rename = "M")]
    Modified,
    #[serde(rename = "E")]
    Exclusive,
    #[serde(rename = "S")]
    Shared,
    #[serde(rename = "I")]
    Invalid,
}

impl LineState {
    pub fn letter(self) -> &'static str {
        match self {
            LineState::Modified => "M",
            LineState::Exclusive => "E",
            LineState::Shared => "S",
            LineState::Invalid => "I",
        }
    }
}

/// The cache lines a node reported, or why there are none.
#[derive(Debug, Clone, PartialEq)]
pub enum CachePoll {
    Lines(CacheLines),
    /// The route answered 404: this cluster's build has no cache.
    NotAvailable,
    Failed(String),
}

/// One poll of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodePoll {
    pub endpoint: String,
    pub status: Result<NodeStatus, String>,
    /// `GET /health` answered ok.
    pub healthy: bool,
    pub cache: CachePoll,
}

/// One poll of the whole cluster. Cluster-wide reads go through the
/// leader; each may fail on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Poll {
    /// Local wall clock of the poll (ms since the Unix epoch), for rates.
    pub at_ms: u64,
    pub nodes: Vec<NodePoll>,
    pub locks: Result<Vec<LockInfo>, String>,
    pub graph: Result<LockGraph, String>,
    pub queues: Result<Vec<TopicStats>, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_lines_decode_from_the_documented_shape() {
        let v: CacheLines = serde_json::from_str(
            r#"{"node":2,"lines":[{"key":"k","state":"M","version":7,"lease_remaining_ms":900}]}"#,
        )
        .unwrap();
        assert_eq!(v.node, 2);
        assert_eq!(v.lines[0].state, LineState::Modified);
        assert_eq!(v.lines[0].version, 7);
    }
}
