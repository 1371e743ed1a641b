//! Moves a log kept in redb by an older release into segment files.
//!
//! The new log is built beside the old one (`raft-log.migrating/`) and
//! synced; the redb file is set aside (`raft-log.redb.moving`), the folder
//! renamed into place, and only then the redb file removed. A crash at any
//! point leaves the old log whole (the move starts over) or the new one
//! complete (the leftovers are removed). A redb log beside a moved one was
//! written by an older release started on the folder again: the node
//! refuses to start rather than guess which is current.
//!
//! Once the log is in segment files, `raft-log.redb` holds a short note
//! instead (`TOMBSTONE`). It is not a redb file, so an older release started
//! on the folder fails to open it and refuses to start, where finding no
//! file it would have created an empty log and forgotten the node's vote.

use std::path::Path;

use super::log_writer::{write_meta, HighWater, KEY_COMMITTED, KEY_PURGED, KEY_VOTE};
use super::segments::{sync_dir, SegmentLog};
use super::{frame, legacy};
use crate::error::Error;

/// Starts with "dsync", not redb's magic number, so redb refuses the file.
/// Recognised by its first line, so a later release may reword the rest.
const TOMBSTONE: &[u8] = b"dsync: this node's Raft log is in the folder raft-log/ \
    (segment files).\nThis file is kept so that a dsync release that stored the log \
    here refuses to start on this data folder instead of starting with an empty log.\n";
const TOMBSTONE_MARK: &[u8] = b"dsync: this node's Raft log is in the folder raft-log/";

/// Whether `path` is the note rather than a log. A real redb log may be
/// gigabytes: its size settles it unread.
pub fn is_tombstone(path: &Path) -> bool {
    let small = std::fs::metadata(path).is_ok_and(|m| m.len() <= 4096);
    small && std::fs::read(path).is_ok_and(|b| b.starts_with(TOMBSTONE_MARK))
}

/// Leaves the note in `<dir>.redb` that stops an older release, where no
/// file is (a redb log there is `from_redb_if_present`'s to judge).
pub fn leave_tombstone(dir: &Path) -> Result<(), Error> {
    let old = dir.with_extension("redb");
    if old.exists() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = old
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("raft-log.redb");
    write_meta(parent, name, TOMBSTONE).map_err(|e| storage("leaving a note", &old, e))
}

fn storage(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::io(
        format!("moving the Raft log into {}: {what}", path.display()),
        e,
    )
}

/// If `<dir>.redb` holds a log, moves its contents into the folder `dir`.
pub fn from_redb_if_present(dir: &Path) -> Result<(), Error> {
    let old = dir.with_extension("redb");
    // The old file is set aside under this name just before the new folder
    // is renamed into place, and removed after.
    let moving = dir.with_extension("redb.moving");
    let parent = dir.parent().unwrap_or(Path::new("."));
    let old_hwm = legacy::hwm_path(&old);
    if moving.exists() {
        if dir.exists() {
            // The crash came after the folder was in place.
            std::fs::remove_file(&moving).map_err(|e| storage("removing", &moving, e))?;
            let _ = std::fs::remove_file(&old_hwm);
        } else {
            // The crash came before: the move starts over (replacing the
            // note, if it was left already).
            std::fs::rename(&moving, &old).map_err(|e| storage("putting back", &moving, e))?;
        }
    }
    if !old.exists() {
        return Ok(());
    }
    if is_tombstone(&old) {
        if !dir.exists() {
            return Err(Error::Storage(format!(
                "the Raft log folder {} is missing, but {} says the log was moved there: \
                 restore this node from a backup, or remove it and add it back with \
                 `dsync cluster scale`",
                dir.display(),
                old.display()
            )));
        }
        return Ok(());
    }
    if dir.exists() {
        return Err(Error::Storage(format!(
            "both {} and {} hold a Raft log: an older release ran on this data folder \
             after the log was moved. Restore this node from a backup, or remove it and \
             add it back with `dsync cluster scale`",
            old.display(),
            dir.display()
        )));
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
    std::fs::rename(&old, &moving).map_err(|e| storage("setting aside", &old, e))?;
    sync_dir(parent).map_err(|e| io("syncing the data folder", e))?;
    // From here on `raft-log.redb` is never missing, so an older release
    // never finds room to start an empty log.
    leave_tombstone(dir)?;
    std::fs::rename(&staging, dir).map_err(|e| io("renaming into place", e))?;
    sync_dir(parent).map_err(|e| io("syncing the data folder", e))?;
    std::fs::remove_file(&moving).map_err(|e| storage("removing the old file", &moving, e))?;
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

        let metrics = crate::metrics::groups::GroupSeries::standalone();
        let mut store = LogStore::open(&dir, metrics.clone()).unwrap();
        assert!(
            is_tombstone(&old),
            "the old log is not replaced by the note"
        );
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

    #[test]
    fn a_move_cut_short_finishes_and_a_redb_log_written_after_it_is_refused() {
        let data = tempfile::tempdir().unwrap();
        let dir = log_dir(data.path());
        let old = dir.with_extension("redb");
        let moving = dir.with_extension("redb.moving");
        write_old_log(&old, &[blank(1)], Vote::new(1, 1), blank(0).log_id);
        let copy = data.path().join("copy");
        std::fs::copy(&old, &copy).unwrap();
        from_redb_if_present(&dir).unwrap();
        assert!(is_tombstone(&old) && !moving.exists() && dir.exists());

        // Crash after the old file was set aside, before the folder moved.
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::copy(&copy, &moving).unwrap();
        from_redb_if_present(&dir).unwrap();
        assert!(is_tombstone(&old) && !moving.exists() && dir.exists());
        // Crash after the folder moved, before the old file was removed.
        std::fs::copy(&copy, &moving).unwrap();
        from_redb_if_present(&dir).unwrap();
        assert!(!moving.exists() && dir.exists());

        // An older release started here again and wrote a log of its own
        // (one that ran before the note was left, or someone removed it).
        std::fs::remove_file(&old).unwrap();
        write_old_log(
            &old,
            &[blank(1), blank(2)],
            Vote::new(2, 1),
            blank(0).log_id,
        );
        let err = from_redb_if_present(&dir).expect_err("two logs");
        assert!(err.to_string().contains("older release"), "{err}");
        assert!(old.exists(), "the newer redb log must be kept");
    }

    #[test]
    fn an_older_release_cannot_open_a_folder_whose_log_is_in_segments() {
        let data = tempfile::tempdir().unwrap();
        let dir = log_dir(data.path());
        let metrics = crate::metrics::groups::GroupSeries::standalone();
        drop(LogStore::open(&dir, metrics.clone()).unwrap());
        let old = dir.with_extension("redb");
        // What a release that kept its log in redb did first on start.
        assert!(
            Database::create(&old).is_err(),
            "an older release would start with an empty log"
        );
        assert!(is_tombstone(&old), "the note must be left as it was");
        // And this release opens the folder again as before.
        drop(LogStore::open(&dir, metrics.clone()).unwrap());

        // The note without the folder it names: the log was lost, and
        // starting empty would forget the node's vote.
        std::fs::rename(&dir, data.path().join("elsewhere")).unwrap();
        let err = LogStore::open(&dir, metrics).err().expect("a lost log");
        assert!(err.to_string().contains("is missing"), "{err}");
    }

    #[test]
    fn a_redb_log_beside_a_finished_move_is_never_overwritten() {
        let data = tempfile::tempdir().unwrap();
        let dir = log_dir(data.path());
        let old = dir.with_extension("redb");
        let moving = dir.with_extension("redb.moving");
        write_old_log(&old, &[blank(1)], Vote::new(1, 1), blank(0).log_id);
        std::fs::copy(&old, &moving).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        // A crash after the folder moved left `.moving`; a log at the old
        // path beside it can only be an older release's, written since.
        let err = from_redb_if_present(&dir).expect_err("two logs");
        assert!(err.to_string().contains("older release"), "{err}");
        leave_tombstone(&dir).unwrap();
        assert!(!is_tombstone(&old), "the newer redb log must be kept");
    }
}
