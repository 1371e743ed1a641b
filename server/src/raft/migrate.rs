//! Moves a log kept in redb by an older release into segment files.
//!
//! The new log is built beside the old one (`raft-log.migrating/`), synced,
//! and only then renamed into place; the redb file is removed after that. A
//! crash at any point leaves either the old log alone (the half-built folder
//! is discarded and the move starts over) or the new one complete.

use std::path::Path;

use super::log_writer::{write_meta, HighWater, KEY_COMMITTED, KEY_PURGED, KEY_VOTE};
use super::segments::{sync_dir, SegmentLog};
use super::{frame, legacy};
use crate::error::Error;

fn storage(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Storage(format!(
        "moving the Raft log into {}: {what}: {e}",
        path.display()
    ))
}

/// If `<dir>.redb` exists, moves its contents into the folder `dir`.
pub fn from_redb_if_present(dir: &Path) -> Result<(), Error> {
    let old = dir.with_extension("redb");
    if !old.exists() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    let mut old_hwm = old.as_os_str().to_owned();
    old_hwm.push(".hwm");
    if dir.exists() {
        // The rename below happened and the crash came before the cleanup.
        std::fs::remove_file(&old).map_err(|e| storage("removing the old file", &old, e))?;
        let _ = std::fs::remove_file(&old_hwm);
        return Ok(());
    }
    let log = legacy::read(&old)?;
    let staging = dir.with_extension("migrating");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| storage("clearing", &staging, e))?;
    }
    let io = |what: &str, e: std::io::Error| storage(what, &staging, e);
    std::fs::create_dir_all(&staging).map_err(|e| io("creating", e))?;
    let (mut segs, _) = SegmentLog::open(&staging, None)?;
    for chunk in log.entries.chunks(1024) {
        if let Some(f) = segs.append(chunk).map_err(|e| io("writing entries", e))? {
            f.sync_data().map_err(|e| io("syncing entries", e))?;
        }
    }
    if let Some(vote) = &log.vote {
        write_meta(&staging, KEY_VOTE, &encode(vote)).map_err(|e| io("vote", e))?;
    }
    if let Some(purged) = &log.purged {
        write_meta(&staging, KEY_PURGED, &encode(purged)).map_err(|e| io("purged", e))?;
    }
    if log.committed.is_some() {
        write_meta(&staging, KEY_COMMITTED, &encode(&log.committed))
            .map_err(|e| io("commit index", e))?;
    }
    HighWater::new(staging.join("hwm"))
        .store(segs.last_index().map_or(0, |l| l + 1), true)
        .map_err(|e| io("high-water mark", e))?;
    drop(segs);
    std::fs::rename(&staging, dir).map_err(|e| io("renaming into place", e))?;
    sync_dir(parent).map_err(|e| io("syncing the data folder", e))?;
    std::fs::remove_file(&old).map_err(|e| storage("removing the old file", &old, e))?;
    let _ = std::fs::remove_file(&old_hwm);
    tracing::info!(
        "moved {} log entries from {} into {}",
        log.entries.len(),
        old.display(),
        dir.display()
    );
    Ok(())
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    frame(&bincode::serialize(v).expect("plain data encodes"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use openraft::storage::RaftLogStorage;
    use openraft::{CommittedLeaderId, EntryPayload, LogId, RaftLogReader, Vote};
    use redb::{Database, TableDefinition};

    use super::*;
    use crate::raft::log_store::{log_dir, LogStore};
    use crate::raft::Entry;

    const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
    const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

    /// Writes a log the way releases before segment files did.
    fn write_old_log(path: &Path, entries: &[Entry], vote: Vote<u64>, purged: LogId<u64>) {
        let db = Database::create(path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut logs = tx.open_table(LOGS).unwrap();
            for e in entries {
                logs.insert(e.log_id.index, encode(e).as_slice()).unwrap();
            }
            let mut meta = tx.open_table(META).unwrap();
            meta.insert("vote", encode(&vote).as_slice()).unwrap();
            meta.insert("last_purged", encode(&purged).as_slice())
                .unwrap();
            let committed = Some(entries.last().unwrap().log_id);
            meta.insert("committed", encode(&committed).as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
    }

    fn blank(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(3, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    #[tokio::test]
    async fn a_redb_log_is_moved_into_segments_with_its_vote_and_marks() {
        let data = tempfile::tempdir().unwrap();
        let dir = log_dir(data.path());
        let old = dir.with_extension("redb");
        let entries: Vec<Entry> = (41..=90).map(blank).collect();
        let vote = Vote::new(3, 1);
        write_old_log(&old, &entries, vote, blank(40).log_id);

        let metrics = Arc::new(crate::metrics::Metrics::new());
        let mut store = LogStore::open(&dir, metrics.clone()).unwrap();
        assert!(!old.exists(), "the old file stays after the move");
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(40));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(90));
        assert_eq!(
            store.read_vote().await.unwrap().map(|v| v.leader_id),
            Some(vote.leader_id)
        );
        assert_eq!(
            store.read_committed().await.unwrap().map(|l| l.index),
            Some(90)
        );
        let got = store.try_get_log_entries(41..=90).await.unwrap();
        assert_eq!(got, entries);
        drop(store);

        // Opened again, nothing is moved twice and nothing is lost.
        let mut store = LogStore::open(&dir, metrics).unwrap();
        assert_eq!(store.try_get_log_entries(41..=90).await.unwrap(), entries);
    }

    #[test]
    fn a_damaged_redb_log_is_refused_and_left_as_it_was() {
        let data = tempfile::tempdir().unwrap();
        let dir = log_dir(data.path());
        let old = dir.with_extension("redb");
        std::fs::write(&old, b"not a redb file at all").unwrap();
        let err = from_redb_if_present(&dir).expect_err("a damaged file must stop the node");
        assert!(err.to_string().contains("raft-log.redb"), "{err}");
        assert!(old.exists() && !dir.exists());
    }
}
