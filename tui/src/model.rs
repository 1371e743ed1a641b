//! What the data-fetch tasks bring back. Wire types are `dsync-api`'s.

use dsync_api::cache::CacheLines;
pub use dsync_api::cache::LineState;
use dsync_api::locks::{LockGraph, LockInfo};
use dsync_api::queue::TopicStats;
use dsync_api::shards::{ShardJob, ShardsStatus};
use dsync_api::types::NodeStatus;

/// The cache lines a node reported, or why there are none.
#[derive(Debug, Clone, PartialEq)]
pub enum CachePoll {
    Lines(CacheLines),
    /// The route answered 404: this cluster's build has no cache.
    NotAvailable,
    Failed(String),
}

/// The shard jobs (`GET /v1/shards/jobs`), or why there are none.
#[derive(Debug, Clone, PartialEq)]
pub enum JobsPoll {
    Jobs(Vec<ShardJob>),
    /// The route answered 404: a server from before replica moves.
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
    pub shards: Result<ShardsStatus, String>,
    pub jobs: JobsPoll,
}
