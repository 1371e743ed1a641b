//! The deterministic replicated state: everything a Raft entry can change.
//!
//! Entries carry a batch of [`Command`]s plus the leader's clock at proposal
//! time, so applying the same log on any node gives the same state and the
//! same results. All group-specific state lives in [`StateData`] so that one
//! process could later host several groups.

mod apply;
pub mod command;
pub mod dedup;
pub mod handoff;
pub mod jobs;
pub mod kv;
pub mod locks;
mod outcome;
pub mod proposal;
pub mod queue;
pub mod reshard;
#[cfg(test)]
mod tests;

use dsync_api::events::Event;
use serde::{Deserialize, Serialize};

pub use command::{
    Command, Handoff, KvDelete, KvPut, LockAcquire, LockCancel, LockExtendLeases, LockForceRelease,
    LockKeepalive, LockRelease, Once, QueueAck, QueueConfigure, QueueConsume, QueueEnqueue,
    QueueExtend, QueueNack, QueueRedrive, SetClusterId, SetShards, ShardJob,
};
pub use outcome::{CmdError, CmdOutput, CmdValue};
pub use proposal::{Proposal, Unexpected};

/// Application data of one Raft entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Leader wall clock (ms since the Unix epoch) when the batch was proposed;
    /// the only clock the state machine may read.
    pub now_ms: u64,
    pub cmds: Vec<Command>,
}

/// Results of one entry, one per command, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response(pub Vec<CmdOutput>);

/// Everything the replicated log decides, plus the events of the last
/// entries applied (`outbox`, local to this node, never snapshotted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateData {
    /// Advanced by every applied command. KV versions (and fencing tokens)
    /// are revisions: unique and strictly increasing even when many commands
    /// share one Raft entry.
    pub revision: u64,
    /// Leader clock of the last applied entry.
    pub now_ms: u64,
    pub kv: kv::KvTable,
    pub locks: locks::LockTable,
    pub queues: queue::QueueTable,
    /// Events of the entries applied since the state machine last drained
    /// it (`/v1/events`); not part of the replicated state or snapshots.
    #[serde(skip)]
    pub outbox: Vec<Event>,
    /// Set once by the first leader of a new cluster (see `SetClusterId`).
    pub cluster_id: Option<String>,
    /// Answers of recent deduplicated writes. A format 2 snapshot is this
    /// encoding without it and the fields after it (`raft::snapshot`).
    pub recent: dedup::Recent,
    /// The queue groups (control group only; see `SetShards`). A format 3
    /// snapshot is this encoding without it and the fields after it.
    pub shards: dsync_api::shards::ShardMap,
    /// Rebalances and reshards of the shard map (control group only; see
    /// `ShardJob`). A format 4 snapshot is this encoding without it and
    /// the fields after it.
    pub jobs: jobs::ShardJobs,
    /// Topics moving in or out of this queue group (see `Handoff`). Last
    /// field: a format 5 snapshot is this encoding without it (and with
    /// jobs that had no topics).
    pub handoff: handoff::Handoff,
}
