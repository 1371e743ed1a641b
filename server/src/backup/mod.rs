//! Backup files: a consistent snapshot of the replicated state with a
//! readable header, and the rewrite that seeds a new cluster from one.
//!
//! Layout: the line `DSYNC-BACKUP <format>`, one line of JSON
//! ([`BackupHeader`]), then the body: a state-machine snapshot exactly as
//! nodes store it (`raft/snapshot.rs`, itself crc-checked). The header's
//! SHA-256 covers the body; its index, term and cluster id are checked
//! against the body, so a damaged file is refused before anything uses it.
//!
//! A cluster with queue groups writes format 2: the same header with a
//! `groups` list, and after the control group's body each queue group's
//! snapshot in that order, each with its own length, SHA-256, index and
//! term. A release that knows only format 1 refuses it by its first line.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::raft::snapshot::SnapshotFile;

mod salvage;
mod seed;
pub use salvage::{salvage, Salvaged};
pub use seed::{seed_for_new_cluster, seed_groups, SeededGroup};

pub const BACKUP_FORMAT: u32 = 1;
/// Format 1 plus the queue groups' snapshots.
pub const BACKUP_FORMAT_GROUPS: u32 = 2;
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
    /// The queue groups' snapshots that follow the body (format 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupPart>,
}

/// One queue group's snapshot in a format 2 backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupPart {
    pub id: u64,
    pub index: u64,
    pub term: u64,
    pub body_bytes: u64,
    pub body_sha256: String,
}

/// A verified backup: the control group's snapshot and each queue group's.
#[derive(Debug, Clone)]
pub struct Backup {
    pub header: BackupHeader,
    pub control: SnapshotFile,
    pub groups: Vec<(u64, SnapshotFile)>,
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

fn index_term(snap: &SnapshotFile) -> (u64, u64) {
    let last = snap.meta.last_log_id;
    (
        last.map_or(0, |l| l.index),
        last.map_or(0, |l| l.leader_id.term),
    )
}

/// Encodes `snapshot` as a backup file.
pub fn encode(snapshot: &SnapshotFile, created_at_ms: u64) -> Result<Vec<u8>, Error> {
    encode_with_groups(snapshot, &[], created_at_ms)
}

/// Encodes the control group's snapshot and the queue groups' (format 2
/// if there are any).
pub fn encode_with_groups(
    snapshot: &SnapshotFile,
    groups: &[(u64, SnapshotFile)],
    created_at_ms: u64,
) -> Result<Vec<u8>, Error> {
    let body = snapshot.encode()?;
    let (index, term) = index_term(snapshot);
    let mut parts = Vec::with_capacity(groups.len());
    let mut bodies = Vec::with_capacity(groups.len());
    for (id, snap) in groups {
        let b = snap.encode()?;
        let (index, term) = index_term(snap);
        parts.push(GroupPart {
            id: *id,
            index,
            term,
            body_bytes: b.len() as u64,
            body_sha256: sha256_hex(&b),
        });
        bodies.push(b);
    }
    let format = if groups.is_empty() {
        BACKUP_FORMAT
    } else {
        BACKUP_FORMAT_GROUPS
    };
    let header = BackupHeader {
        format,
        dsync_version: crate::version().to_string(),
        cluster_id: snapshot.data.cluster_id.clone(),
        index,
        term,
        created_at_ms,
        body_bytes: body.len() as u64,
        body_sha256: sha256_hex(&body),
        groups: parts,
    };
    let json = serde_json::to_string(&header)
        .map_err(|e| Error::Internal(format!("encode backup header: {e}")))?;
    let total = body.len() + bodies.iter().map(Vec::len).sum::<usize>();
    let mut out = Vec::with_capacity(total + json.len() + 32);
    out.extend_from_slice(format!("{MAGIC} {format}\n{json}\n").as_bytes());
    out.extend_from_slice(&body);
    for b in bodies {
        out.extend_from_slice(&b);
    }
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
    let known = [BACKUP_FORMAT, BACKUP_FORMAT_GROUPS];
    if !known.iter().any(|f| f.to_string() == format) {
        return Err(corrupt(
            origin,
            format!("backup format {format:?} is not supported (expected 1 or 2)"),
        ));
    }
    let (json, body_at) = line(next)?;
    let header: BackupHeader = serde_json::from_slice(json)
        .map_err(|e| corrupt(origin, format!("backup header is not valid: {e}")))?;
    if header.format.to_string() != format || header.groups.is_empty() != (header.format == 1) {
        return Err(corrupt(
            origin,
            "backup header does not match its format line",
        ));
    }
    Ok((header, body_at))
}

/// Verifies the whole file and decodes the control group's snapshot.
pub fn decode(bytes: &[u8], origin: &str) -> Result<(BackupHeader, SnapshotFile), Error> {
    let b = decode_all(bytes, origin)?;
    Ok((b.header, b.control))
}

/// Checks one part of the body against what the header says of it.
fn verify_part(
    part: &[u8],
    (bytes, sha, index, term): (u64, &str, u64, u64),
    what: &str,
    origin: &str,
) -> Result<SnapshotFile, Error> {
    let sum = sha256_hex(part);
    if sum != sha {
        return Err(corrupt(
            origin,
            format!("SHA-256 mismatch in {what}: it hashes to {sum}, header says {sha}"),
        ));
    }
    debug_assert_eq!(part.len() as u64, bytes);
    let snap = SnapshotFile::decode(part, origin)?;
    if index_term(&snap) != (index, term) {
        return Err(corrupt(
            origin,
            format!("header does not match the snapshot it carries for {what} (index or term)"),
        ));
    }
    Ok(snap)
}

/// Verifies the whole file and decodes every snapshot in it.
pub fn decode_all(bytes: &[u8], origin: &str) -> Result<Backup, Error> {
    let (header, body_at) = read_header(bytes, origin)?;
    let body = &bytes[body_at..];
    let want = header.body_bytes + header.groups.iter().map(|g| g.body_bytes).sum::<u64>();
    if body.len() as u64 != want {
        return Err(corrupt(
            origin,
            format!(
                "backup is truncated or padded: body has {} bytes, header says {want}",
                body.len(),
            ),
        ));
    }
    let (own, mut rest) = body.split_at(header.body_bytes as usize);
    let control = verify_part(
        own,
        (
            header.body_bytes,
            &header.body_sha256,
            header.index,
            header.term,
        ),
        "the control group",
        origin,
    )?;
    if control.data.cluster_id != header.cluster_id {
        return Err(corrupt(
            origin,
            "header does not match the snapshot it carries (cluster id)",
        ));
    }
    let mut groups = Vec::with_capacity(header.groups.len());
    for g in &header.groups {
        let (part, next) = rest.split_at(g.body_bytes as usize);
        rest = next;
        let what = format!("queue group {}", g.id);
        let snap = verify_part(
            part,
            (g.body_bytes, &g.body_sha256, g.index, g.term),
            &what,
            origin,
        )?;
        groups.push((g.id, snap));
    }
    Ok(Backup {
        header,
        control,
        groups,
    })
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

/// [`summarize`] over the control group and every queue group.
pub fn summarize_all(b: &Backup) -> BackupSummary {
    let mut sum = summarize(&b.control);
    for (_, g) in &b.groups {
        let s = summarize(g);
        sum.topics += s.topics;
        sum.messages_ready += s.messages_ready;
        sum.messages_in_flight += s.messages_in_flight;
        sum.messages_dead_lettered += s.messages_dead_lettered;
    }
    sum
}

/// A random cluster id (128 bits, hex).
pub fn new_cluster_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests;
