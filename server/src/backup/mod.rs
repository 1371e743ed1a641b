//! Backup files: a consistent snapshot of the replicated state with a
//! readable header, and the rewrite that seeds a new cluster from one.
//!
//! Layout: the line `DSYNC-BACKUP <format>`, one line of JSON
//! ([`BackupHeader`]), then the body: a state-machine snapshot exactly as
//! nodes store it (`raft/snapshot.rs`, itself crc-checked). The header's
//! SHA-256 covers the body; its index, term and cluster id are checked
//! against the body, so a damaged file is refused before anything uses it.

use std::collections::{BTreeMap, BTreeSet};

use openraft::{BasicNode, CommittedLeaderId, LogId, Membership, StoredMembership};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::raft::snapshot::SnapshotFile;
use crate::raft::SnapshotMeta;

mod salvage;
pub use salvage::{salvage, Salvaged};

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
mod tests;
