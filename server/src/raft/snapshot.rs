//! The on-disk snapshot: `MAGIC ++ format u32 ++ len u64 ++ crc32 ++ payload`,
//! written to a temp file, fsynced and renamed over the old one so a crash
//! leaves either the old or the new snapshot, never half of one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use dsync_api::shards::ShardMap;
use serde::{Deserialize, Serialize};

use super::snapshot_v5::SnapshotV5;
use super::SnapshotMeta;
use crate::error::Error;
use crate::state::dedup::Recent;
use crate::state::handoff::Handoff;
use crate::state::jobs::ShardJobs;
use crate::state::StateData;

const MAGIC: &[u8; 8] = b"DSYNCSNP";
/// 2 added `StateData::cluster_id`, 3 `StateData::recent`, 4
/// `StateData::shards`, 5 `StateData::jobs`, 6 `StateData::handoff` and the
/// topic moves of a job; files of every earlier format still load.
const FORMAT: u32 = 6;
const HEADER: usize = 8 + 4 + 8 + 4;

/// What a snapshot holds: Raft metadata plus the whole replicated state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotFile {
    pub meta: SnapshotMeta,
    pub data: StateData,
}

impl SnapshotFile {
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let payload = bincode::serialize(self)
            .map_err(|e| Error::Internal(format!("encode snapshot: {e}")))?;
        let mut out = Vec::with_capacity(HEADER + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Decodes and verifies bytes from [`encode`](Self::encode); `origin`
    /// names the file or peer in the error.
    pub fn decode(bytes: &[u8], origin: &str) -> Result<SnapshotFile, Error> {
        let bad = |d: &str| Error::Corrupt {
            path: origin.to_string(),
            detail: d.to_string(),
        };
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return Err(bad("not a dsync snapshot (bad magic or truncated header)"));
        }
        let format = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if !(1..=FORMAT).contains(&format) {
            return Err(bad(&format!(
                "snapshot format {format} is not supported (expected {FORMAT})"
            )));
        }
        let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
        let payload = &bytes[HEADER..];
        if payload.len() != len {
            return Err(bad(&format!(
                "snapshot is truncated: {} of {len} payload bytes",
                payload.len()
            )));
        }
        if crc32fast::hash(payload) != crc {
            return Err(bad("snapshot checksum mismatch"));
        }
        let decoded = match format {
            1 => bincode::deserialize::<SnapshotV1>(payload).map(SnapshotV1::upgrade),
            // Formats 2 to 4 are format 6 without the state's last fields,
            // and bincode encodes fields in order with no framing: appending
            // their empty values makes a format 6 payload (no jobs encode
            // the same in both layouts).
            2..=4 => {
                let mut upgraded = payload.to_vec();
                if format == 2 {
                    upgraded.extend(bincode::serialize(&Recent::default()).unwrap_or_default());
                }
                if format <= 3 {
                    upgraded.extend(bincode::serialize(&ShardMap::default()).unwrap_or_default());
                }
                upgraded.extend(bincode::serialize(&ShardJobs::default()).unwrap_or_default());
                upgraded.extend(bincode::serialize(&Handoff::default()).unwrap_or_default());
                bincode::deserialize(&upgraded)
            }
            5 => bincode::deserialize::<SnapshotV5>(payload).map(SnapshotV5::upgrade),
            _ => bincode::deserialize(payload),
        };
        decoded.map_err(|e| bad(&format!("snapshot cannot be decoded: {e}")))
    }
}

/// Format 1: the state before it carried a cluster id.
#[derive(Deserialize)]
struct SnapshotV1 {
    meta: SnapshotMeta,
    state: FirstFields,
}

/// The fields every format's state starts with. Bincode encodes a nested
/// struct's fields in place, so the old layouts can embed this.
#[derive(Deserialize)]
pub(super) struct FirstFields {
    revision: u64,
    now_ms: u64,
    kv: crate::state::kv::KvTable,
    locks: crate::state::locks::LockTable,
    queues: crate::state::queue::QueueTable,
}

impl FirstFields {
    /// The state with these fields and the later ones empty.
    pub(super) fn into_state(self) -> StateData {
        StateData {
            revision: self.revision,
            now_ms: self.now_ms,
            kv: self.kv,
            locks: self.locks,
            queues: self.queues,
            ..StateData::default()
        }
    }
}

impl SnapshotV1 {
    fn upgrade(self) -> SnapshotFile {
        SnapshotFile {
            meta: self.meta,
            data: self.state.into_state(),
        }
    }
}

pub fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join("snapshot.bin")
}

/// Atomically replaces the snapshot in `dir` with `bytes`.
pub fn write_atomic(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let path = snapshot_path(dir);
    let tmp = dir.join("snapshot.bin.tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &path)?;
    // The rename itself must be durable before the log behind it is purged.
    File::open(dir)?.sync_all()
}

/// Loads the snapshot in `dir`, if any; a damaged one is an error naming it.
pub fn load(dir: &Path) -> Result<Option<(SnapshotFile, Vec<u8>)>, Error> {
    let path = snapshot_path(dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
    };
    let file = SnapshotFile::decode(&bytes, &path.display().to_string())?;
    Ok(Some((file, bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::KvPut;
    use crate::state::{Command, Request};

    fn sample() -> SnapshotFile {
        let mut data = StateData::default();
        data.apply(Request {
            now_ms: 1,
            cmds: vec![Command::KvPut(KvPut {
                key: "k".into(),
                value: "\"v\"".into(),
                if_version: None,
                fence: None,
            })],
        });
        SnapshotFile {
            meta: SnapshotMeta::default(),
            data,
        }
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), &sample().encode().unwrap()).unwrap();
        let (back, _) = load(dir.path()).unwrap().unwrap();
        assert_eq!(back.data, sample().data);
    }

    #[test]
    fn format_1_snapshots_still_load() {
        // Format 1 encoded the state's fields in order, with no cluster id.
        #[derive(Serialize)]
        struct V1<'a> {
            meta: &'a SnapshotMeta,
            revision: u64,
            now_ms: u64,
            kv: &'a crate::state::kv::KvTable,
            locks: &'a crate::state::locks::LockTable,
            queues: &'a crate::state::queue::QueueTable,
        }
        let s = sample();
        let payload = bincode::serialize(&V1 {
            meta: &s.meta,
            revision: s.data.revision,
            now_ms: s.data.now_ms,
            kv: &s.data.kv,
            locks: &s.data.locks,
            queues: &s.data.queues,
        })
        .unwrap();
        let back = SnapshotFile::decode(&framed(1, &payload), "v1").unwrap();
        assert_eq!(back.data, s.data);
    }

    fn framed(format: u32, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&format.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn format_2_snapshots_still_load() {
        // Format 2 encoded every field of the state up to the cluster id.
        #[derive(Serialize)]
        struct V2<'a> {
            meta: &'a SnapshotMeta,
            revision: u64,
            now_ms: u64,
            kv: &'a crate::state::kv::KvTable,
            locks: &'a crate::state::locks::LockTable,
            queues: &'a crate::state::queue::QueueTable,
            cluster_id: &'a Option<String>,
        }
        let mut s = sample();
        s.data.cluster_id = Some("c1".into());
        let payload = bincode::serialize(&V2 {
            meta: &s.meta,
            revision: s.data.revision,
            now_ms: s.data.now_ms,
            kv: &s.data.kv,
            locks: &s.data.locks,
            queues: &s.data.queues,
            cluster_id: &s.data.cluster_id,
        })
        .unwrap();
        let back = SnapshotFile::decode(&framed(2, &payload), "v2").unwrap();
        assert_eq!(back.data, s.data);
    }

    #[test]
    fn format_3_snapshots_still_load_without_queue_groups() {
        // Format 3 encoded every field of the state up to `recent`.
        #[derive(Serialize)]
        struct V3<'a> {
            meta: &'a SnapshotMeta,
            revision: u64,
            now_ms: u64,
            kv: &'a crate::state::kv::KvTable,
            locks: &'a crate::state::locks::LockTable,
            queues: &'a crate::state::queue::QueueTable,
            cluster_id: &'a Option<String>,
            recent: &'a Recent,
        }
        let s = sample();
        let payload = bincode::serialize(&V3 {
            meta: &s.meta,
            revision: s.data.revision,
            now_ms: s.data.now_ms,
            kv: &s.data.kv,
            locks: &s.data.locks,
            queues: &s.data.queues,
            cluster_id: &s.data.cluster_id,
            recent: &s.data.recent,
        })
        .unwrap();
        let back = SnapshotFile::decode(&framed(3, &payload), "v3").unwrap();
        assert_eq!(back.data, s.data);
        assert!(back.data.shards.groups.is_empty());
    }

    #[test]
    fn format_4_snapshots_keep_their_shard_map_and_have_no_jobs() {
        // Format 4 encoded every field of the state up to `shards`.
        #[derive(Serialize)]
        struct V4<'a> {
            meta: &'a SnapshotMeta,
            revision: u64,
            now_ms: u64,
            kv: &'a crate::state::kv::KvTable,
            locks: &'a crate::state::locks::LockTable,
            queues: &'a crate::state::queue::QueueTable,
            cluster_id: &'a Option<String>,
            recent: &'a Recent,
            shards: &'a ShardMap,
        }
        let mut s = sample();
        s.data.shards = ShardMap::initial(&[1, 2, 3], 3, 3).unwrap();
        let payload = bincode::serialize(&V4 {
            meta: &s.meta,
            revision: s.data.revision,
            now_ms: s.data.now_ms,
            kv: &s.data.kv,
            locks: &s.data.locks,
            queues: &s.data.queues,
            cluster_id: &s.data.cluster_id,
            recent: &s.data.recent,
            shards: &s.data.shards,
        })
        .unwrap();
        let back = SnapshotFile::decode(&framed(4, &payload), "v4").unwrap();
        assert_eq!(back.data, s.data);
        assert_eq!(back.data.shards.groups.len(), 3);
        assert!(back.data.jobs.running.is_none());
    }

    #[test]
    fn remembered_answers_survive_a_snapshot() {
        let mut s = sample();
        let cmd = crate::state::dedup::once(
            Some("r1"),
            Command::KvPut(KvPut {
                key: "once".into(),
                value: "1".into(),
                if_version: None,
                fence: None,
            }),
        );
        let req = |now_ms| Request {
            now_ms,
            cmds: vec![cmd.clone()],
        };
        let first = s.data.apply(req(2));
        let mut back = SnapshotFile::decode(&s.encode().unwrap(), "snap").unwrap();
        assert_eq!(back.data, s.data);
        assert_eq!(back.data.apply(req(3)), first);
        assert_eq!(back.data.revision, s.data.revision, "applied twice");
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let bytes = sample().encode().unwrap();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x20;
            let err = SnapshotFile::decode(&bad, "snap").unwrap_err();
            assert!(err.to_string().contains("snap"), "byte {i}: {err}");
        }
        assert!(SnapshotFile::decode(&bytes[..bytes.len() - 1], "snap").is_err());
    }
}
