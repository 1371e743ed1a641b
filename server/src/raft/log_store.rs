//! The Raft log, vote and commit index: segment files in `raft-log/`.
//!
//! Every entry is stored as a checksummed record (`segments.rs`) and the whole
//! log is verified when the node opens it, so a damaged file stops the node
//! instead of being served. Writes go through the group-commit writer thread
//! (`log_writer.rs`); `append` reports the flush only after the sync of the
//! segment that holds the entries: nothing is acknowledged before it is
//! durable here.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogId, RaftLogReader, Vote};

use super::log_writer::{lock, HighWater, Job, Tail, Writer, KEY_COMMITTED, KEY_PURGED, KEY_VOTE};
use super::segments::SegmentLog;
use super::{frame, io_err, unframe, Entry, LogId, NodeId, StorageError, TypeConfig};
use crate::error::Error;
use crate::metrics::groups::GroupSeries;

#[derive(Clone)]
pub struct LogStore {
    /// An exclusive lock on `raft-log.lock`, held while any clone lives: a
    /// second process opening the log (another node on the same data dir,
    /// an offline backup of a running node) would cut what it took for a
    /// torn write out of records still being written.
    _held: Arc<std::fs::File>,
    log: Arc<Mutex<SegmentLog>>,
    writer: Sender<Job>,
    tail: Tail,
    vote: Option<Vote<NodeId>>,
    purged: Arc<Mutex<Option<LogId>>>,
    /// The commit index not yet written: it rides along with the next
    /// group instead of costing a write of its own on every advance.
    committed: Arc<Mutex<Option<LogId>>>,
    /// The commit index found at open, never past the log's end.
    committed_at_open: Option<LogId>,
    /// The group's commit index series follows what openraft saves here:
    /// its own metrics carry no commit index.
    metrics: GroupSeries,
}

fn corrupt(path: &Path, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// Reads `dir/key`; a missing file is `None`, a damaged one an error.
fn read_meta<T: serde::de::DeserializeOwned>(dir: &Path, key: &str) -> Result<Option<T>, Error> {
    let path = dir.join(key);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(corrupt(&path, e.to_string())),
    };
    let payload = unframe(&bytes).ok_or_else(|| corrupt(&path, "fails its checksum"))?;
    bincode::deserialize(payload)
        .map(Some)
        .map_err(|e| corrupt(&path, format!("cannot be decoded: {e}")))
}

impl LogStore {
    /// Opens (or creates) the log in the folder `dir`, verifies every stored
    /// entry and starts the writer thread. A log of an older release in
    /// `<dir>.redb` is moved into `dir` first.
    pub fn open(dir: &Path, metrics: GroupSeries) -> Result<LogStore, Error> {
        let held = hold(dir)?;
        super::migrate::from_redb_if_present(dir)?;
        std::fs::create_dir_all(dir).map_err(|e| corrupt(dir, e.to_string()))?;
        super::migrate::leave_tombstone(dir)?;
        let hwm = HighWater::new(dir.join("hwm"));
        let vote = read_meta::<Vote<NodeId>>(dir, KEY_VOTE)?;
        let purged = read_meta::<LogId>(dir, KEY_PURGED)?;
        // Written in place without a sync: a torn one is as good as none.
        let committed = read_meta::<Option<LogId>>(dir, KEY_COMMITTED)
            .ok()
            .flatten()
            .flatten();
        // The mark is the first index not known durable.
        let durable = hwm.load().and_then(|m| m.checked_sub(1));
        let (mut log, mut last) = SegmentLog::open(dir, durable)?;
        if let Some(p) = purged {
            // A crash in the middle of a purge leaves segments it covers.
            log.purge(p.index)
                .map_err(|e| corrupt(dir, e.to_string()))?;
            if last
                .as_ref()
                .is_some_and(|e| e.get_log_id().index <= p.index)
            {
                last = None;
            }
        }
        let end = log.last_index().max(purged.map(|p| p.index));
        if let Some(mark) = durable {
            if end.is_none_or(|e| mark > e) {
                return Err(corrupt(
                    dir,
                    format!(
                        "the log ends at index {} but entries up to {mark} were durably \
                         written (see {}): a segment was damaged, removed or rolled back",
                        end.map_or("(none)".into(), |e| e.to_string()),
                        hwm.path().display()
                    ),
                ));
            }
        }
        if let (Some(first), Some(p)) = (log.first_index(), purged) {
            if first > p.index + 1 {
                return Err(corrupt(
                    dir,
                    format!(
                        "entries {} to {} are missing: a segment was removed",
                        p.index + 1,
                        first - 1
                    ),
                ));
            }
        }
        let last_id = last.as_ref().map(|e| *e.get_log_id()).or(purged);
        let committed_at_open = committed.filter(|c| last_id.is_some_and(|l| c.index <= l.index));
        let log = Arc::new(Mutex::new(log));
        let tail: Tail = Arc::new(Mutex::new(BTreeMap::new()));
        if let Some(e) = last {
            lock(&tail).insert(e.get_log_id().index, e);
        }
        let committed = Arc::new(Mutex::new(None));
        if let Some(c) = committed_at_open {
            metrics.commit_index.set(c.index as i64);
        }
        let writer = Writer {
            dir: dir.to_path_buf(),
            log: log.clone(),
            hwm,
            tail: tail.clone(),
            committed: committed.clone(),
            committed_written: None,
            committed_file: None,
            fsync_seconds: metrics.fsync_seconds.clone(),
        }
        .spawn();
        Ok(LogStore {
            _held: held,
            log,
            writer,
            tail,
            vote,
            purged: Arc::new(Mutex::new(purged)),
            committed,
            committed_at_open,
            metrics,
        })
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

    /// Runs a read of the segment files on the blocking pool: it takes the
    /// log's lock, which the writer holds through a segment roll or a
    /// truncation's sync, and that wait must not hold up a runtime thread
    /// (with one per node, heartbeats would wait too).
    async fn off_runtime<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SegmentLog) -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || f(&lock(&log)))
            .await
            .map_err(std::io::Error::other)?
    }

    fn tail(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        lock(&self.tail)
    }
}

fn hold(dir: &Path) -> Result<Arc<std::fs::File>, Error> {
    let path = dir.with_extension("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => Ok(Arc::new(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Storage(format!(
            "the Raft log in {} is in use by another process",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(Error::io(format!("cannot lock {}", path.display()), e))
        }
    }
}

/// The folder holding a data dir's Raft log.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("raft-log")
}

fn uncommitted(vote: Vote<NodeId>) -> Vote<NodeId> {
    Vote {
        committed: false,
        ..vote
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let err = |e: &dyn std::fmt::Display| io_err(ErrorSubject::Logs, ErrorVerb::Read, e);
        // The tail first: whatever is below its first key is durable on disk.
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
        let hi = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => u64::MAX,
        };
        let hi = tail_start.map_or(hi, |t| hi.min(t));
        if lo >= hi {
            return Ok(from_tail);
        }
        let mut out = self
            .off_runtime(move |log| log.read(lo, hi))
            .await
            .map_err(|e| err(&e))?;
        out.extend(from_tail);
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged = *lock(&self.purged);
        let mut last = self.tail().last_key_value().map(|(_, e)| *e.get_log_id());
        if last.is_none() {
            // A truncation can empty the tail; the log's end is then on disk.
            let entries = self
                .off_runtime(|log| match log.last_index() {
                    Some(index) => log.read(index, index + 1),
                    None => Ok(Vec::new()),
                })
                .await
                .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            last = entries.last().map(|e| *e.get_log_id());
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
        self.submit(|done| Job::Meta(KEY_VOTE, bytes, done)).await?;
        self.vote = Some(*vote);
        Ok(())
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
        Ok(self.vote.map(uncommitted))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Persisted with the next group. Losing it in a crash only means
        // replaying less at start; the rest is re-learned from the leader.
        if let Some(c) = committed {
            let applied = self.metrics.applied_index.get().max(0) as u64;
            self.metrics.raise_commit(c.index, applied);
        }
        *lock(&self.committed) = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok((*lock(&self.committed)).or(self.committed_at_open))
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
        self.submit(|done| Job::Purge(log_id, done)).await?;
        *lock(&self.purged) = Some(log_id);
        Ok(())
    }
}

#[cfg(test)]
#[path = "log_store_tests.rs"]
mod tests;
