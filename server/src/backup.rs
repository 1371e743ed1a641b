//! Backup files: a consistent snapshot of the replicated state with a
//! readable header, and the rewrite that seeds a new cluster from one.
//!
//! Layout: the line `DSYNC-BACKUP <format>`, one line of JSON
//! ([`BackupHeader`]), then the body: a state-machine snapshot exactly as
//! nodes store it (`raft/snapshot.rs`, itself crc-checked). The header's
//! SHA-256 covers the body; its index, term and cluster id are checked
//! against the body, so a damaged file is refused before anything uses it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use openraft::{BasicNode, CommittedLeaderId, LogId, Membership, StoredMembership};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::raft::snapshot::SnapshotFile;
use crate::raft::SnapshotMeta;

pub const BACKUP_FORMAT: u32 = 1;
const MAGIC: &str = "DSYNC-BACKUP";
/// A header line longer than this is not ours (bounds what `inspect` reads).
const MAX_HEADER: usize = 64 * 1024;

/// What a backup says about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackupHeader {
    pub format: u32,
    /// Version of the dsync node that produced it.
    pub dsync_version: String,
    pub cluster_id: Option<String>,
    /// Raft index and term of the last entry the snapshot includes.
    pub index: u64,
    pub term: u64,
    pub created_at_ms: u64,
    pub body_bytes: u64,
    /// Hex SHA-256 of the body.
    pub body_sha256: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn corrupt(origin: &str, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        path: origin.to_string(),
        detail: detail.into(),
    }
}

/// Encodes `snapshot` as a backup file.
pub fn encode(snapshot: &SnapshotFile, created_at_ms: u64) -> Result<Vec<u8>, Error> {
    let body = snapshot.encode()?;
    let last = snapshot.meta.last_log_id;
    let header = BackupHeader {
        format: BACKUP_FORMAT,
        dsync_version: crate::version().to_string(),
        cluster_id: snapshot.data.cluster_id.clone(),
        index: last.map_or(0, |l| l.index),
        term: last.map_or(0, |l| l.leader_id.term),
        created_at_ms,
        body_bytes: body.len() as u64,
        body_sha256: sha256_hex(&body),
    };
    let json = serde_json::to_string(&header)
        .map_err(|e| Error::Internal(format!("encode backup header: {e}")))?;
    let mut out = Vec::with_capacity(body.len() + json.len() + 32);
    out.extend_from_slice(format!("{MAGIC} {BACKUP_FORMAT}\n{json}\n").as_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads only the header (no verification of the body).
pub fn read_header(bytes: &[u8], origin: &str) -> Result<(BackupHeader, usize), Error> {
    let line = |from: usize| -> Result<(&[u8], usize), Error> {
        let window = &bytes[from..bytes.len().min(from + MAX_HEADER)];
        let end = window
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| corrupt(origin, "not a dsync backup (no header line)"))?;
        Ok((&window[..end], from + end + 1))
    };
    let (magic, next) = line(0)?;
    let magic = std::str::from_utf8(magic).unwrap_or("");
    let format = magic
        .strip_prefix(MAGIC)
        .map(str::trim)
        .ok_or_else(|| corrupt(origin, "not a dsync backup (bad magic)"))?;
    if format != BACKUP_FORMAT.to_string() {
        return Err(corrupt(
            origin,
            format!("backup format {format:?} is not supported (expected {BACKUP_FORMAT})"),
        ));
    }
    let (json, body_at) = line(next)?;
    let header: BackupHeader = serde_json::from_slice(json)
        .map_err(|e| corrupt(origin, format!("backup header is not valid: {e}")))?;
    Ok((header, body_at))
}

/// Verifies the whole file and decodes its snapshot.
pub fn decode(bytes: &[u8], origin: &str) -> Result<(BackupHeader, SnapshotFile), Error> {
    let (header, body_at) = read_header(bytes, origin)?;
    let body = &bytes[body_at..];
    if body.len() as u64 != header.body_bytes {
        return Err(corrupt(
            origin,
            format!(
                "backup is truncated or padded: body has {} bytes, header says {}",
                body.len(),
                header.body_bytes
            ),
        ));
    }
    let sum = sha256_hex(body);
    if sum != header.body_sha256 {
        return Err(corrupt(
            origin,
            format!(
                "SHA-256 mismatch: body hashes to {sum}, header says {}",
                header.body_sha256
            ),
        ));
    }
    let snap = SnapshotFile::decode(body, origin)?;
    let last = snap.meta.last_log_id;
    let (index, term) = (
        last.map_or(0, |l| l.index),
        last.map_or(0, |l| l.leader_id.term),
    );
    if (index, term) != (header.index, header.term) || snap.data.cluster_id != header.cluster_id {
        return Err(corrupt(
            origin,
            "header does not match the snapshot it carries (index, term or cluster id)",
        ));
    }
    Ok((header, snap))
}

/// The snapshot a node of a new cluster starts from: the backup's state
/// under a new membership (`members`: id → address, all voters) and a new
/// cluster id. Its log id keeps the index (so revisions and fencing tokens
/// continue upward) but takes term 0: the new cluster's first election is
/// term 1, and a leader's term must not be below the last log entry's.
pub fn seed_for_new_cluster(
    mut snap: SnapshotFile,
    members: &BTreeMap<u64, String>,
    cluster_id: String,
) -> SnapshotFile {
    let index = snap.meta.last_log_id.map_or(0, |l| l.index);
    let log_id = LogId::new(CommittedLeaderId::new(0, 0), index);
    let voters: BTreeSet<u64> = members.keys().copied().collect();
    let nodes: BTreeMap<u64, BasicNode> = members
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr.clone())))
        .collect();
    let membership = Membership::new(vec![voters], nodes);
    snap.meta = SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: StoredMembership::new(Some(log_id), membership),
        snapshot_id: format!("restored-{index}"),
    };
    snap.data.cluster_id = Some(cluster_id);
    snap
}

/// What an offline salvage found in a stopped node's data folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Salvaged {
    /// Index of the snapshot the state started from (0 = none).
    pub snapshot_index: u64,
    /// Last index this node recorded as committed. It is persisted lazily,
    /// so it may trail the real commit point a little.
    pub committed_index: u64,
    /// Last index in the log: everything up to here is in the state.
    pub last_index: u64,
}

/// Rebuilds the replicated state from a stopped node's data folder: its
/// snapshot plus every entry of its log after it — for disaster recovery
/// when no quorum is left to serve a backup. Entries past the commit point
/// (`last_index > committed_index`) may never have been acknowledged to a
/// client; no acknowledged write this node holds is left out.
pub async fn salvage(data_dir: &Path) -> Result<(SnapshotFile, Salvaged), Error> {
    use openraft::storage::RaftLogStorage;
    use openraft::{EntryPayload, RaftLogReader};

    let (mut snap, snapshot_index) = match crate::raft::snapshot::load(data_dir)? {
        Some((file, _)) => {
            let index = file.meta.last_log_id.map_or(0, |l| l.index);
            (file, index)
        }
        None => (
            SnapshotFile {
                meta: SnapshotMeta::default(),
                data: crate::state::StateData::default(),
            },
            0,
        ),
    };
    let log_path = crate::raft::log_store::log_dir(data_dir);
    let old_log = log_path.with_extension("redb");
    let has_old_log = old_log.exists() && !crate::raft::migrate::is_tombstone(&old_log);
    if !log_path.exists() && !has_old_log {
        return Err(Error::Storage(format!(
            "{} has no Raft log: is it a dsync data folder?",
            data_dir.display()
        )));
    }
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let mut log = crate::raft::log_store::LogStore::open(&log_path, metrics).map_err(|e| {
        Error::Storage(format!("{e} (a running node holds its log: stop it first)"))
    })?;
    let storage = |e: crate::raft::StorageError| Error::Storage(e.to_string());
    let committed = log.read_committed().await.map_err(storage)?;
    let start = snap.meta.last_log_id.map_or(0, |l| l.index + 1);
    let entries = log.try_get_log_entries(start..).await.map_err(storage)?;
    let mut membership = snap.meta.last_membership.clone();
    let mut last = snap.meta.last_log_id;
    for entry in entries {
        match entry.payload {
            EntryPayload::Blank => {}
            EntryPayload::Normal(req) => {
                snap.data.apply(std::sync::Arc::unwrap_or_clone(req));
            }
            EntryPayload::Membership(m) => {
                membership = StoredMembership::new(Some(entry.log_id), m);
            }
        }
        last = Some(entry.log_id);
    }
    let last_index = last.map_or(0, |l| l.index);
    snap.meta = SnapshotMeta {
        last_log_id: last,
        last_membership: membership,
        snapshot_id: format!("salvaged-{last_index}"),
    };
    let found = Salvaged {
        snapshot_index,
        committed_index: committed.map_or(0, |l| l.index),
        last_index,
    };
    Ok((snap, found))
}

/// What a backup holds, in counts (for `dsync backup inspect`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackupSummary {
    pub kv_keys: usize,
    pub locks_held: usize,
    pub locks_waiting: usize,
    pub topics: usize,
    pub messages_ready: usize,
    pub messages_in_flight: usize,
    pub messages_dead_lettered: usize,
    /// The state's revision: the next KV version / fencing token is above it.
    pub revision: u64,
}

pub fn summarize(snap: &SnapshotFile) -> BackupSummary {
    let d = &snap.data;
    let (locks_held, locks_waiting) = d.locks.counts();
    let (ready, in_flight, dead) = d.queues.totals();
    BackupSummary {
        kv_keys: d.kv.list("", usize::MAX).0.len(),
        locks_held,
        locks_waiting,
        topics: d.queues.all_stats(d.now_ms, usize::MAX).len(),
        messages_ready: ready,
        messages_in_flight: in_flight,
        messages_dead_lettered: dead,
        revision: d.revision,
    }
}

/// A random cluster id (128 bits, hex).
pub fn new_cluster_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Command, Request, StateData};

    fn sample() -> SnapshotFile {
        let mut data = StateData::default();
        data.apply(Request {
            now_ms: 1,
            cmds: vec![
                Command::SetClusterId { id: "c1".into() },
                Command::KvPut {
                    key: "k".into(),
                    value: "1".into(),
                    if_version: None,
                    fence: None,
                },
            ],
        });
        let log_id = LogId::new(CommittedLeaderId::new(3, 1), 42);
        SnapshotFile {
            meta: SnapshotMeta {
                last_log_id: Some(log_id),
                last_membership: StoredMembership::default(),
                snapshot_id: "3-42".into(),
            },
            data,
        }
    }

    #[test]
    fn round_trips_and_describes_itself() {
        let bytes = encode(&sample(), 7).unwrap();
        let (h, snap) = decode(&bytes, "b").unwrap();
        assert_eq!((h.index, h.term, h.created_at_ms), (42, 3, 7));
        assert_eq!(h.cluster_id.as_deref(), Some("c1"));
        assert_eq!(snap.data, sample().data);
        assert!(bytes.starts_with(b"DSYNC-BACKUP 1\n{"));
    }

    #[test]
    fn every_flipped_body_byte_and_truncation_is_refused() {
        let bytes = encode(&sample(), 7).unwrap();
        let (_, body_at) = read_header(&bytes, "b").unwrap();
        for i in body_at..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            let err = decode(&bad, "b").unwrap_err().to_string();
            assert!(err.contains("SHA-256 mismatch"), "byte {i}: {err}");
        }
        assert!(decode(&bytes[..bytes.len() - 1], "b").is_err());
        assert!(decode(b"hello\n", "b").is_err());
        assert!(decode(b"", "b").is_err());
    }

    #[test]
    fn a_header_that_lies_about_the_body_is_refused() {
        let mut bad = encode(&sample(), 7).unwrap();
        let at = bad.windows(10).position(|w| w == b"\"index\":42").unwrap();
        bad[at + 9] = b'3';
        let err = decode(&bad, "b").unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
    }

    #[test]
    fn seeding_keeps_the_state_and_index_under_a_new_membership() {
        let members = BTreeMap::from([(1, "a:1".to_string()), (2, "a:2".to_string())]);
        let seeded = seed_for_new_cluster(sample(), &members, "new".into());
        let last = seeded.meta.last_log_id.unwrap();
        assert_eq!((last.index, last.leader_id.term), (42, 0));
        let voters: Vec<u64> = seeded
            .meta
            .last_membership
            .membership()
            .voter_ids()
            .collect();
        assert_eq!(voters, vec![1, 2]);
        assert_eq!(seeded.data.cluster_id.as_deref(), Some("new"));
        assert_eq!(seeded.data.kv, sample().data.kv);
    }
}
