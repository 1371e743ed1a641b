//! The commands a Raft entry carries: every mutation of the replicated state.

use dsync_api::locks::LockMode;
use serde::{Deserialize, Serialize};

use super::queue;

/// One mutation of the replicated state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// `value` is JSON text, kept as text so the log stays compact binary.
    KvPut {
        key: String,
        value: String,
        if_version: Option<u64>,
        /// `(lock, token)`: apply only if `token` is a current grant of `lock`.
        fence: Option<(String, u64)>,
    },
    KvDelete {
        key: String,
        if_version: Option<u64>,
    },
    LockAcquire {
        name: String,
        owner: String,
        mode: LockMode,
        ttl_ms: u64,
        wait_ms: u64,
    },
    LockRelease {
        name: String,
        owner: String,
        token: u64,
    },
    LockKeepalive {
        name: String,
        owner: String,
        token: u64,
        ttl_ms: Option<u64>,
    },
    /// The client of a queued request went away (or gave up).
    LockCancel {
        name: String,
        owner: String,
        since_seq: u64,
    },
    /// Expire what is due at the entry's leader clock (locks and queues).
    Tick,
    /// A new leader's grace: extend every lease.
    LockExtendLeases {
        by_ms: u64,
    },
    QueueEnqueue {
        topic: String,
        msgs: Vec<queue::Incoming>,
    },
    QueueConsume {
        topic: String,
        consumer: String,
        max: usize,
        visibility_ms: Option<u64>,
    },
    QueueAck {
        topic: String,
        receipts: Vec<String>,
    },
    QueueNack {
        topic: String,
        receipts: Vec<String>,
        delay_ms: u64,
    },
    QueueExtend {
        topic: String,
        receipts: Vec<String>,
        visibility_ms: u64,
    },
    QueueRedrive {
        topic: String,
    },
    /// Plain fields: bincode cannot carry the wire type's skipped options.
    QueueConfigure {
        topic: String,
        max_attempts: Option<u32>,
        visibility_ms: Option<u64>,
        max_message_bytes: Option<u64>,
        retention_ms: Option<u64>,
    },
    /// Admin override: drop every holder of the lock, whatever its token.
    LockForceRelease {
        name: String,
    },
    /// Names the cluster once: the first id applied wins, later ones are
    /// ignored, so every node and every backup agrees on it.
    SetClusterId {
        id: String,
    },
    /// `cmd`, applied at most once per `key` (see `state::dedup`). Last, so
    /// every older variant keeps its bincode tag.
    Once {
        key: u128,
        cmd: Box<Command>,
    },
    /// The first shard map of the cluster (`POST /v1/shards`): refused once
    /// there are queue groups, or while the control group holds topics
    /// (they would be stranded: their messages stay here, their routes go
    /// to a queue group). Last, so every older variant keeps its tag.
    SetShards {
        map: dsync_api::shards::ShardMap,
    },
    /// A step of a rebalance of the shard map (`state::jobs`). Last, so
    /// every older variant keeps its tag.
    ShardJob {
        step: super::jobs::JobStep,
    },
    /// A step of a reshard in a queue group (`state::handoff`). Last, so
    /// every older variant keeps its tag.
    Handoff {
        step: super::handoff::HandoffStep,
    },
}

impl Command {
    /// The KV key this command writes or deletes, if it is a KV write
    /// (inside `Once` too): cached copies of it must be invalidated first.
    pub fn kv_key(&self) -> Option<&str> {
        match self {
            Command::KvPut { key, .. } | Command::KvDelete { key, .. } => Some(key),
            Command::Once { cmd, .. } => cmd.kv_key(),
            _ => None,
        }
    }

    /// The topic of a queue command (inside `Once` too).
    pub fn queue_topic(&self) -> Option<&str> {
        match self {
            Command::QueueEnqueue { topic, .. }
            | Command::QueueConsume { topic, .. }
            | Command::QueueAck { topic, .. }
            | Command::QueueNack { topic, .. }
            | Command::QueueExtend { topic, .. }
            | Command::QueueRedrive { topic }
            | Command::QueueConfigure { topic, .. } => Some(topic),
            Command::Once { cmd, .. } => cmd.queue_topic(),
            // Listed one by one, not `_`: a new command must say whether it
            // is a queue command, or the control group's refusal of moved
            // topics would not see it.
            Command::KvPut { .. }
            | Command::KvDelete { .. }
            | Command::LockAcquire { .. }
            | Command::LockRelease { .. }
            | Command::LockKeepalive { .. }
            | Command::LockCancel { .. }
            | Command::Tick
            | Command::LockExtendLeases { .. }
            | Command::LockForceRelease { .. }
            | Command::SetClusterId { .. }
            | Command::SetShards { .. }
            | Command::ShardJob { .. }
            | Command::Handoff { .. } => None,
        }
    }

    /// Rough size in bytes, used to bound a batch.
    pub fn size_hint(&self) -> usize {
        match self {
            Command::KvPut { key, value, .. } => key.len() + value.len() + 16,
            Command::KvDelete { key, .. } => key.len() + 16,
            Command::LockAcquire { name, owner, .. }
            | Command::LockRelease { name, owner, .. }
            | Command::LockKeepalive { name, owner, .. }
            | Command::LockCancel { name, owner, .. } => name.len() + owner.len() + 32,
            Command::Tick | Command::LockExtendLeases { .. } => 16,
            Command::QueueEnqueue { topic, msgs } => {
                topic.len() + msgs.iter().map(|m| m.payload.len() + 32).sum::<usize>()
            }
            Command::QueueAck { topic, receipts }
            | Command::QueueNack {
                topic, receipts, ..
            }
            | Command::QueueExtend {
                topic, receipts, ..
            } => topic.len() + receipts.iter().map(|r| r.len() + 8).sum::<usize>(),
            Command::QueueConsume { topic, .. }
            | Command::QueueRedrive { topic }
            | Command::QueueConfigure { topic, .. } => topic.len() + 32,
            Command::LockForceRelease { name } => name.len() + 16,
            Command::SetClusterId { id } => id.len() + 16,
            Command::Once { cmd, .. } => cmd.size_hint() + 16,
            Command::ShardJob { step } => step.size_hint(),
            Command::Handoff { step } => step.size_hint(),
            Command::SetShards { map } => {
                64 + map
                    .groups
                    .iter()
                    .map(|g| 16 + 8 * g.replicas.len())
                    .sum::<usize>()
            }
        }
    }
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
