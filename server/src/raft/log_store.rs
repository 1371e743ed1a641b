//! The Raft log, vote and commit index in redb.
//!
//! Every entry is stored as `crc32 ++ bincode(entry)` and the whole log is
//! verified when the node opens it, so a damaged file stops the node instead
//! of being served. Writes go through the group-commit writer thread
//! (`log_writer.rs`); `append` reports the flush only after the redb commit
//! that holds the entries, which fsyncs: nothing is acknowledged before it is
//! durable here.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogId, RaftLogReader, Vote};
use redb::{Database, ReadableTable};

use super::log_writer::{
    HighWater, Job, Tail, Writer, KEY_COMMITTED, KEY_PURGED, KEY_VOTE, LOGS, META,
};
use super::{frame, io_err, unframe, Entry, LogId, NodeId, StorageError, TypeConfig};
use crate::error::Error;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    writer: Sender<Job>,
    tail: Tail,
    /// The commit index not yet written: it rides along with the next
    /// transaction instead of costing one of its own on every advance.
    committed: Arc<Mutex<Option<LogId>>>,
}

fn corrupt(path: &Path, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

impl LogStore {
    /// Opens (or creates) the log, verifies every stored entry and starts
    /// the writer thread.
    pub fn open(path: &Path, metrics: Arc<Metrics>) -> Result<LogStore, Error> {
        let db = Arc::new(
            Database::create(path)
                .map_err(|e| corrupt(path, format!("cannot open the Raft log: {e}")))?,
        );
        let hwm = HighWater::new(path);
        verify(&db, path, &hwm)?;
        let tail: Tail = Arc::new(Mutex::new(BTreeMap::new()));
        let committed = Arc::new(Mutex::new(None));
        let writer = Writer {
            db: db.clone(),
            hwm,
            tail: tail.clone(),
            committed: committed.clone(),
            metrics,
        }
        .spawn();
        Ok(LogStore {
            db,
            writer,
            tail,
            committed,
        })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StorageError> {
        let err = |e: &dyn std::fmt::Display| io_err(ErrorSubject::Store, ErrorVerb::Read, e);
        let rx = self.db.begin_read().map_err(|e| err(&e))?;
        let t = rx.open_table(META).map_err(|e| err(&e))?;
        let Some(v) = t.get(key).map_err(|e| err(&e))? else {
            return Ok(None);
        };
        let payload =
            unframe(v.value()).ok_or_else(|| err(&format!("metadata {key} checksum mismatch")))?;
        bincode::deserialize(payload).map(Some).map_err(|e| err(&e))
    }

    /// Queues a job and waits until the writer has made it durable.
    async fn submit(
        &self,
        make: impl FnOnce(super::log_writer::Done) -> Job,
    ) -> Result<(), StorageError> {
        let err = |e: &dyn std::fmt::Display| io_err(ErrorSubject::Logs, ErrorVerb::Write, e);
        let (done, rx) = tokio::sync::oneshot::channel();
        self.writer
            .send(make(done))
            .map_err(|_| err(&"log writer stopped"))?;
        rx.await
            .map_err(|_| err(&"log writer stopped"))?
            .map_err(|e| err(&e))
    }

    fn tail(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn verify(db: &Database, path: &Path, hwm: &HighWater) -> Result<(), Error> {
    let tx = db.begin_write().map_err(|e| corrupt(path, e.to_string()))?;
    // Create the tables on first use so readers never miss them.
    tx.open_table(LOGS)
        .map_err(|e| corrupt(path, e.to_string()))?;
    tx.open_table(META)
        .map_err(|e| corrupt(path, e.to_string()))?;
    tx.commit().map_err(|e| corrupt(path, e.to_string()))?;

    let rx = db.begin_read().map_err(|e| corrupt(path, e.to_string()))?;
    let logs = rx
        .open_table(LOGS)
        .map_err(|e| corrupt(path, e.to_string()))?;
    let mut prev: Option<u64> = None;
    for row in logs.iter().map_err(|e| corrupt(path, e.to_string()))? {
        let (k, v) = row.map_err(|e| corrupt(path, e.to_string()))?;
        let index = k.value();
        let entry = decode_entry(v.value()).ok_or_else(|| {
            corrupt(
                path,
                format!("log entry {index} fails its checksum or cannot be decoded"),
            )
        })?;
        if entry.get_log_id().index != index {
            return Err(corrupt(
                path,
                format!(
                    "log entry stored at {index} claims index {}",
                    entry.get_log_id().index
                ),
            ));
        }
        if let Some(p) = prev {
            if index != p + 1 {
                return Err(corrupt(
                    path,
                    format!("log has a gap between {p} and {index}"),
                ));
            }
        }
        prev = Some(index);
    }
    let meta = rx
        .open_table(META)
        .map_err(|e| corrupt(path, e.to_string()))?;
    let mut purged = 0;
    for key in [KEY_VOTE, KEY_COMMITTED, KEY_PURGED] {
        if let Some(v) = meta.get(key).map_err(|e| corrupt(path, e.to_string()))? {
            let payload = unframe(v.value())
                .ok_or_else(|| corrupt(path, format!("metadata {key:?} fails its checksum")))?;
            if key == KEY_PURGED {
                purged = bincode::deserialize::<LogId>(payload).map_or(0, |l| l.index);
            }
        }
    }
    let end = prev.unwrap_or(0).max(purged);
    if let Some(mark) = hwm.load() {
        if mark > end {
            return Err(corrupt(
                path,
                format!(
                    "the log ends at index {end} but entries up to {mark} were durably written \
                     (see {}): the file was damaged or rolled back",
                    hwm.path().display()
                ),
            ));
        }
    }
    Ok(())
}

fn uncommitted(vote: Vote<NodeId>) -> Vote<NodeId> {
    Vote {
        committed: false,
        ..vote
    }
}

fn decode_entry(bytes: &[u8]) -> Option<Entry> {
    bincode::deserialize(unframe(bytes)?).ok()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let err = |e: &dyn std::fmt::Display| io_err(ErrorSubject::Logs, ErrorVerb::Read, e);
        // The tail first: whatever is below its first key is durable in redb.
        let (from_tail, tail_start) = {
            let tail = self.tail();
            let start = tail.first_key_value().map(|(k, _)| *k);
            let entries: Vec<Entry> = tail.range(range.clone()).map(|(_, e)| e.clone()).collect();
            (entries, start)
        };
        let lo = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s + 1,
            Bound::Unbounded => 0,
        };
        if tail_start.is_some_and(|t| lo >= t) {
            return Ok(from_tail);
        }
        let rx = self.db.begin_read().map_err(|e| err(&e))?;
        let t = rx.open_table(LOGS).map_err(|e| err(&e))?;
        let mut out = Vec::new();
        for row in t.range(range).map_err(|e| err(&e))? {
            let (k, v) = row.map_err(|e| err(&e))?;
            if tail_start.is_some_and(|t| k.value() >= t) {
                break;
            }
            let entry = decode_entry(v.value())
                .ok_or_else(|| err(&format!("log entry {} is corrupt", k.value())))?;
            out.push(entry);
        }
        out.extend(from_tail);
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let err = |e: &dyn std::fmt::Display| io_err(ErrorSubject::Logs, ErrorVerb::Read, e);
        let last_purged: Option<LogId> = self.read_meta(KEY_PURGED)?;
        let mut last = self.tail().last_key_value().map(|(_, e)| *e.get_log_id());
        if last.is_none() {
            let rx = self.db.begin_read().map_err(|e| err(&e))?;
            let t = rx.open_table(LOGS).map_err(|e| err(&e))?;
            let row = t.last().map_err(|e| err(&e))?;
            if let Some((_, v)) = row {
                let entry =
                    decode_entry(v.value()).ok_or_else(|| err(&"last log entry is corrupt"))?;
                last = Some(*entry.get_log_id());
            }
        }
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let bytes = frame(
            &bincode::serialize(vote)
                .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))?,
        );
        self.submit(|done| Job::Meta(KEY_VOTE, bytes, done)).await
    }

    /// openraft reads the vote only when the node starts. A vote stored as
    /// committed is handed back uncommitted: openraft 0.9 restores a node
    /// whose committed vote names itself as leader at once, without a new
    /// entry in a new term, and such a leader's ReadIndex is the commit
    /// index it restarted with, which is persisted lazily (`save_committed`)
    /// and may predate writes it acknowledged before the crash. Uncommitted,
    /// the node starts as a follower; whoever wins the next election appends
    /// an entry in its new term, and ReadIndex covers everything before it.
    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.read_meta::<Vote<NodeId>>(KEY_VOTE)?.map(uncommitted))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Persisted with the next transaction. Losing it in a crash only means
        // replaying less at start; the rest is re-learned from the leader.
        *self.committed.lock().unwrap_or_else(|p| p.into_inner()) = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        if let Some(c) = *self.committed.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(Some(c));
        }
        Ok(self.read_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        {
            // Visible to readers at once; durable when the callback fires.
            let mut tail = self.tail();
            for e in &entries {
                tail.insert(e.get_log_id().index, e.clone());
            }
        }
        self.writer
            .send(Job::Append(entries, callback))
            .map_err(|_| io_err(ErrorSubject::Logs, ErrorVerb::Write, "log writer stopped"))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.tail().retain(|&k, _| k < log_id.index);
        self.submit(|done| Job::Truncate(log_id.index, done)).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.tail().retain(|&k, _| k > log_id.index);
        self.submit(|done| Job::Purge(log_id, done)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_committed_vote_is_read_back_uncommitted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft-log.redb");
        let mut store = LogStore::open(&path, Arc::new(Metrics::new())).unwrap();
        let vote = Vote {
            committed: true,
            ..Vote::new(7, 2)
        };
        store.save_vote(&vote).await.unwrap();
        let got = store.read_vote().await.unwrap().expect("a stored vote");
        assert_eq!(got.leader_id, vote.leader_id);
        assert!(!got.committed, "the node would restart as leader: {got:?}");
    }
}
