//! openraft glue: type configuration, storage and peer network.

pub mod breakers;
mod legacy;
pub mod log_store;
pub mod log_writer;
pub(crate) mod migrate;
pub mod network;
mod record;
mod segments;
pub mod snapshot;
mod snapshot_v5;
pub mod state_machine;
pub mod wakeups;

use std::io::Cursor;

use crate::state::{Request, Response};

openraft::declare_raft_types!(
    /// dsync's Raft type configuration.
    pub TypeConfig:
        // Shared, so the copies openraft makes of an entry (log tail,
        // each replication stream, apply) don't copy every payload.
        // Serialized exactly like a plain Request.
        D = std::sync::Arc<Request>,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type NodeId = u64;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;

pub type RaftMetrics = openraft::RaftMetrics<NodeId, openraft::BasicNode>;

/// A member's Raft state as the API names it.
pub fn role_of(state: openraft::ServerState) -> dsync_api::types::Role {
    use dsync_api::types::Role;
    use openraft::ServerState;
    match state {
        ServerState::Leader => Role::Leader,
        ServerState::Follower => Role::Follower,
        ServerState::Candidate => Role::Candidate,
        ServerState::Learner => Role::Learner,
        ServerState::Shutdown => Role::Shutdown,
    }
}

/// How far `id`'s log matches the leader's, as the leader's metrics `m`
/// know it (`None` on a follower, or before the first match).
pub fn matched_index(m: &RaftMetrics, id: u64) -> Option<u64> {
    m.replication
        .as_ref()
        .and_then(|r| r.get(&id))
        .and_then(|l| l.map(|l| l.index))
}

/// Whether `id` holds the leader's whole log.
pub fn caught_up(m: &RaftMetrics, id: u64) -> bool {
    m.replication
        .as_ref()
        .and_then(|r| r.get(&id))
        .is_some_and(|l| l.map(|l| l.index) >= m.last_log_index)
}

/// The voter other than `me` whose log matches the leader's furthest: the
/// target of a leadership hand-off.
pub fn most_caught_up(m: &RaftMetrics, me: u64) -> Option<u64> {
    m.membership_config
        .membership()
        .voter_ids()
        .filter(|id| *id != me)
        .max_by_key(|id| matched_index(m, *id))
}

/// Frames a payload as `crc32 (LE) ++ payload`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks and strips the frame of [`frame`].
pub fn unframe(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() < 4 {
        return None;
    }
    let (crc, payload) = bytes.split_at(4);
    let want = u32::from_le_bytes(crc.try_into().ok()?);
    (crc32fast::hash(payload) == want).then_some(payload)
}

pub(crate) fn io_err<E: std::fmt::Display>(
    subject: openraft::ErrorSubject<NodeId>,
    verb: openraft::ErrorVerb,
    e: E,
) -> StorageError {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::error(e.to_string())).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_detect_flipped_bits() {
        let f = frame(b"hello");
        assert_eq!(unframe(&f), Some(&b"hello"[..]));
        let mut bad = f.clone();
        bad[6] ^= 0x01;
        assert_eq!(unframe(&bad), None);
        assert_eq!(unframe(&f[..3]), None);
    }
}
