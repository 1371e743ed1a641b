//! The commands a Raft entry carries: every mutation of the replicated state.

pub mod cluster;
pub mod kv;
pub mod locks;
pub mod queue;

use serde::{Deserialize, Serialize};

pub use cluster::{Handoff, Once, SetClusterId, SetShards, ShardJob};
pub use kv::{KvDelete, KvPut};
pub use locks::{
    LockAcquire, LockCancel, LockExtendLeases, LockForceRelease, LockKeepalive, LockRelease,
};
pub use queue::{
    QueueAck, QueueConfigure, QueueConsume, QueueEnqueue, QueueExtend, QueueNack, QueueRedrive,
};

/// One mutation of the replicated state, as the log carries it. Each
/// variant holds its domain's command (`kv`, `locks`, `queue`, `cluster`).
/// The variants' order is the log format (bincode tags, held by the tests):
/// a new command goes last, and none is ever removed or moved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    KvPut(KvPut),
    KvDelete(KvDelete),
    LockAcquire(LockAcquire),
    LockRelease(LockRelease),
    LockKeepalive(LockKeepalive),
    LockCancel(LockCancel),
    /// Expire what is due at the entry's leader clock (locks and queues).
    Tick,
    LockExtendLeases(LockExtendLeases),
    QueueEnqueue(QueueEnqueue),
    QueueConsume(QueueConsume),
    QueueAck(QueueAck),
    QueueNack(QueueNack),
    QueueExtend(QueueExtend),
    QueueRedrive(QueueRedrive),
    QueueConfigure(QueueConfigure),
    LockForceRelease(LockForceRelease),
    SetClusterId(SetClusterId),
    Once(Once),
    SetShards(SetShards),
    ShardJob(ShardJob),
    Handoff(Handoff),
}

impl Command {
    /// The KV key this command writes or deletes, if it is a KV write
    /// (inside `Once` too): cached copies of it must be invalidated first.
    pub fn kv_key(&self) -> Option<&str> {
        match self {
            Command::KvPut(KvPut { key, .. }) | Command::KvDelete(KvDelete { key, .. }) => {
                Some(key)
            }
            Command::Once(Once { cmd, .. }) => cmd.kv_key(),
            _ => None,
        }
    }

    /// The topic of a queue command (inside `Once` too).
    pub fn queue_topic(&self) -> Option<&str> {
        match self {
            Command::QueueEnqueue(QueueEnqueue { topic, .. })
            | Command::QueueConsume(QueueConsume { topic, .. })
            | Command::QueueAck(QueueAck { topic, .. })
            | Command::QueueNack(QueueNack { topic, .. })
            | Command::QueueExtend(QueueExtend { topic, .. })
            | Command::QueueRedrive(QueueRedrive { topic })
            | Command::QueueConfigure(QueueConfigure { topic, .. }) => Some(topic),
            Command::Once(Once { cmd, .. }) => cmd.queue_topic(),
            // Listed one by one, not `_`: a new command must say whether it
            // is a queue command, or the control group's refusal of moved
            // topics would not see it.
            Command::KvPut(KvPut { .. })
            | Command::KvDelete(KvDelete { .. })
            | Command::LockAcquire(LockAcquire { .. })
            | Command::LockRelease(LockRelease { .. })
            | Command::LockKeepalive(LockKeepalive { .. })
            | Command::LockCancel(LockCancel { .. })
            | Command::Tick
            | Command::LockExtendLeases(LockExtendLeases { .. })
            | Command::LockForceRelease(LockForceRelease { .. })
            | Command::SetClusterId(SetClusterId { .. })
            | Command::SetShards(SetShards { .. })
            | Command::ShardJob(ShardJob { .. })
            | Command::Handoff(Handoff { .. }) => None,
        }
    }

    /// Rough size in bytes, used to bound a batch.
    pub fn size_hint(&self) -> usize {
        match self {
            Command::KvPut(KvPut { key, value, .. }) => key.len() + value.len() + 16,
            Command::KvDelete(KvDelete { key, .. }) => key.len() + 16,
            Command::LockAcquire(LockAcquire { name, owner, .. })
            | Command::LockRelease(LockRelease { name, owner, .. })
            | Command::LockKeepalive(LockKeepalive { name, owner, .. })
            | Command::LockCancel(LockCancel { name, owner, .. }) => name.len() + owner.len() + 32,
            Command::Tick | Command::LockExtendLeases(LockExtendLeases { .. }) => 16,
            Command::QueueEnqueue(QueueEnqueue { topic, msgs }) => {
                topic.len() + msgs.iter().map(|m| m.payload.len() + 32).sum::<usize>()
            }
            Command::QueueAck(QueueAck { topic, receipts })
            | Command::QueueNack(QueueNack {
                topic, receipts, ..
            })
            | Command::QueueExtend(QueueExtend {
                topic, receipts, ..
            }) => topic.len() + receipts.iter().map(|r| r.len() + 8).sum::<usize>(),
            Command::QueueConsume(QueueConsume { topic, .. })
            | Command::QueueRedrive(QueueRedrive { topic })
            | Command::QueueConfigure(QueueConfigure { topic, .. }) => topic.len() + 32,
            Command::LockForceRelease(LockForceRelease { name }) => name.len() + 16,
            Command::SetClusterId(SetClusterId { id }) => id.len() + 16,
            Command::Once(Once { cmd, .. }) => cmd.size_hint() + 16,
            Command::ShardJob(ShardJob { step }) => step.size_hint(),
            Command::Handoff(Handoff { step }) => step.size_hint(),
            Command::SetShards(SetShards { map }) => {
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
mod tests;
