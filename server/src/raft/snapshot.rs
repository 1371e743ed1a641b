//! The on-disk snapshot: `MAGIC ++ format u32 ++ len u64 ++ crc32 ++ payload`,
//! written to a temp file, fsynced and renamed over the old one so a crash
//! leaves either the old or the new snapshot, never half of one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SnapshotMeta;
use crate::error::Error;
use crate::state::StateData;

const MAGIC: &[u8; 8] = b"DSYNCSNP";
/// 2 added `StateData::cluster_id`; format 1 files still load.
const FORMAT: u32 = 2;
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
        if format != FORMAT && format != 1 {
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
        let decoded = if format == 1 {
            bincode::deserialize::<SnapshotV1>(payload).map(SnapshotV1::upgrade)
        } else {
            bincode::deserialize(payload)
        };
        decoded.map_err(|e| bad(&format!("snapshot cannot be decoded: {e}")))
    }
}

/// Format 1: the state before it carried a cluster id.
#[derive(Deserialize)]
struct SnapshotV1 {
    meta: SnapshotMeta,
    revision: u64,
    now_ms: u64,
    kv: crate::state::kv::KvTable,
    locks: crate::state::locks::LockTable,
    queues: crate::state::queue::QueueTable,
}

impl SnapshotV1 {
    fn upgrade(self) -> SnapshotFile {
        SnapshotFile {
            meta: self.meta,
            data: StateData {
                revision: self.revision,
                now_ms: self.now_ms,
                kv: self.kv,
                locks: self.locks,
                queues: self.queues,
                cluster_id: None,
                outbox: Vec::new(),
            },
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
        Err(e) => {
            return Err(Error::Storage(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    let file = SnapshotFile::decode(&bytes, &path.display().to_string())?;
    Ok(Some((file, bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Command, Request};

    fn sample() -> SnapshotFile {
        let mut data = StateData::default();
        data.apply(Request {
            now_ms: 1,
            cmds: vec![Command::KvPut {
                key: "k".into(),
                value: "\"v\"".into(),
                if_version: None,
                fence: None,
            }],
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
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        let back = SnapshotFile::decode(&bytes, "v1").unwrap();
        assert_eq!(back.data, s.data);
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
