//! Reads the Raft log of releases that kept it in redb (`raft-log.redb`),
//! so a node upgraded in place moves its log into segment files on start.

use std::path::Path;

use openraft::{RaftLogId, Vote};
use redb::{Database, ReadableTable, TableDefinition};

use super::log_writer::HighWater;
use super::{unframe, Entry, LogId, NodeId};
use crate::error::Error;

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// The redb log's high-water mark, `<path>.hwm`.
pub fn hwm_path(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".hwm");
    p.into()
}

/// Everything a redb log held.
#[derive(Default)]
pub struct OldLog {
    pub entries: Vec<Entry>,
    pub vote: Option<Vote<NodeId>>,
    pub committed: Option<LogId>,
    pub purged: Option<LogId>,
}

fn corrupt(path: &Path, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// Reads and checks the whole redb log at `path`, like the node that wrote
/// it did when it opened it (checksums, contiguous indexes, and its
/// high-water mark `<path>.hwm`).
pub fn read(path: &Path) -> Result<OldLog, Error> {
    let e = |e: &dyn std::fmt::Display| corrupt(path, e.to_string());
    let db = Database::open(path).map_err(|x| e(&x))?;
    let rx = db.begin_read().map_err(|x| e(&x))?;
    let mut out = OldLog::default();
    if let Ok(logs) = rx.open_table(LOGS) {
        for row in logs.iter().map_err(|x| e(&x))? {
            let (k, v) = row.map_err(|x| e(&x))?;
            let index = k.value();
            let entry: Entry = unframe(v.value())
                .and_then(|p| bincode::deserialize(p).ok())
                .ok_or_else(|| {
                    corrupt(
                        path,
                        format!("log entry {index} fails its checksum or cannot be decoded"),
                    )
                })?;
            if entry.get_log_id().index != index {
                return Err(corrupt(path, format!("log entry {index} is misplaced")));
            }
            if let Some(prev) = out.entries.last() {
                if prev.get_log_id().index + 1 != index {
                    return Err(corrupt(path, format!("log has a gap before {index}")));
                }
            }
            out.entries.push(entry);
        }
    }
    if let Ok(meta) = rx.open_table(META) {
        let get = |key: &str| -> Result<Option<Vec<u8>>, Error> {
            let Some(v) = meta.get(key).map_err(|x| e(&x))? else {
                return Ok(None);
            };
            unframe(v.value())
                .map(|p| Some(p.to_vec()))
                .ok_or_else(|| corrupt(path, format!("metadata {key:?} fails its checksum")))
        };
        out.vote = get("vote")?.map(|b| decode(path, &b)).transpose()?;
        out.committed = get("committed")?
            .map(|b| decode::<Option<LogId>>(path, &b))
            .transpose()?
            .flatten();
        out.purged = get("last_purged")?.map(|b| decode(path, &b)).transpose()?;
    }
    let end = out
        .entries
        .last()
        .map(|e| e.get_log_id().index)
        .unwrap_or(0)
        .max(out.purged.map_or(0, |p| p.index));
    // The same file format as today's mark; then it named the last durable
    // index, not the next one.
    if let Some(mark) = HighWater::new(hwm_path(path)).load() {
        if mark > end {
            return Err(corrupt(
                path,
                format!(
                    "the log ends at index {end} but entries up to {mark} were durably written"
                ),
            ));
        }
    }
    Ok(out)
}

fn decode<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, Error> {
    bincode::deserialize(bytes).map_err(|x| corrupt(path, x.to_string()))
}
