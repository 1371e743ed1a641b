//! The Raft log, vote and commit index in redb.
//!
//! Every entry is stored as `crc32 ++ bincode(entry)` and the whole log is
//! verified when the node opens it, so a damaged file stops the node instead
//! of being served. `append` reports the flush only after the redb commit,
//! which fsyncs: nothing is acknowledged before it is durable here.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogId, RaftLogReader, Vote};
use redb::{Database, Durability, ReadableTable, TableDefinition};

use super::{frame, io_err, unframe, Entry, LogId, NodeId, StorageError, TypeConfig};
use crate::error::Error;
use crate::metrics::Metrics;

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "last_purged";

#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    path: Arc<PathBuf>,
    metrics: Arc<Metrics>,
}

fn corrupt(path: &Path, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

impl LogStore {
    /// Opens (or creates) the log and verifies every stored entry.
    pub fn open(path: &Path, metrics: Arc<Metrics>) -> Result<LogStore, Error> {
        let db = Database::create(path)
            .map_err(|e| corrupt(path, format!("cannot open the Raft log: {e}")))?;
        let store = LogStore {
            db: Arc::new(db),
            path: Arc::new(path.to_path_buf()),
            metrics,
        };
        store.verify()?;
        Ok(store)
    }

    fn verify(&self) -> Result<(), Error> {
        let path = self.path.as_path();
        let tx = self
            .db
            .begin_write()
            .map_err(|e| corrupt(path, e.to_string()))?;
        // Create the tables on first use so readers never miss them.
        tx.open_table(LOGS)
            .map_err(|e| corrupt(path, e.to_string()))?;
        tx.open_table(META)
            .map_err(|e| corrupt(path, e.to_string()))?;
        tx.commit().map_err(|e| corrupt(path, e.to_string()))?;

        let rx = self
            .db
            .begin_read()
            .map_err(|e| corrupt(path, e.to_string()))?;
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
        for key in [KEY_VOTE, KEY_COMMITTED, KEY_PURGED] {
            if let Some(v) = meta.get(key).map_err(|e| corrupt(path, e.to_string()))? {
                if unframe(v.value()).is_none() {
                    return Err(corrupt(
                        path,
                        format!("metadata {key:?} fails its checksum"),
                    ));
                }
            }
        }
        Ok(())
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

    fn write_meta<T: serde::Serialize>(
        &self,
        key: &str,
        value: &T,
        durable: bool,
    ) -> Result<(), StorageError> {
        let err = |e: &dyn std::fmt::Display| io_err(ErrorSubject::Store, ErrorVerb::Write, e);
        let bytes = frame(&bincode::serialize(value).map_err(|e| err(&e))?);
        let mut tx = self.db.begin_write().map_err(|e| err(&e))?;
        if !durable {
            // Losing the commit index only delays replay after a crash; it is
            // re-learned from the leader, so it need not cost an fsync.
            tx.set_durability(Durability::None);
        }
        {
            let mut t = tx.open_table(META).map_err(|e| err(&e))?;
            t.insert(key, bytes.as_slice()).map_err(|e| err(&e))?;
        }
        tx.commit().map_err(|e| err(&e))
    }

    /// The commit index last recorded (for status and replay at start).
    pub fn committed(&self) -> Option<LogId> {
        self.read_meta(KEY_COMMITTED).ok().flatten().flatten()
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
        let rx = self.db.begin_read().map_err(|e| err(&e))?;
        let t = rx.open_table(LOGS).map_err(|e| err(&e))?;
        let mut out = Vec::new();
        for row in t.range(range).map_err(|e| err(&e))? {
            let (k, v) = row.map_err(|e| err(&e))?;
            let entry = decode_entry(v.value())
                .ok_or_else(|| err(&format!("log entry {} is corrupt", k.value())))?;
            out.push(entry);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let err = |e: &dyn std::fmt::Display| io_err(ErrorSubject::Logs, ErrorVerb::Read, e);
        let last_purged: Option<LogId> = self.read_meta(KEY_PURGED)?;
        let rx = self.db.begin_read().map_err(|e| err(&e))?;
        let t = rx.open_table(LOGS).map_err(|e| err(&e))?;
        let last = match t.last().map_err(|e| err(&e))? {
            Some((_, v)) => Some(
                *decode_entry(v.value())
                    .ok_or_else(|| err(&"last log entry is corrupt"))?
                    .get_log_id(),
            ),
            None => None,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.write_meta(KEY_VOTE, vote, true)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.read_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        if let Some(c) = committed {
            self.metrics.commit_index.set(c.index as i64);
        }
        self.write_meta(KEY_COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
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
        let err = |e: &dyn std::fmt::Display| io_err(ErrorSubject::Logs, ErrorVerb::Write, e);
        let tx = self.db.begin_write().map_err(|e| err(&e))?;
        {
            let mut t = tx.open_table(LOGS).map_err(|e| err(&e))?;
            for entry in entries {
                let bytes = frame(&bincode::serialize(&entry).map_err(|e| err(&e))?);
                t.insert(entry.get_log_id().index, bytes.as_slice())
                    .map_err(|e| err(&e))?;
            }
        }
        let started = Instant::now();
        let res = tx.commit();
        self.metrics
            .fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        match res {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(err(&e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let err = |e: &dyn std::fmt::Display| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e);
        let tx = self.db.begin_write().map_err(|e| err(&e))?;
        {
            let mut t = tx.open_table(LOGS).map_err(|e| err(&e))?;
            t.retain_in(log_id.index.., |_, _| false)
                .map_err(|e| err(&e))?;
        }
        tx.commit().map_err(|e| err(&e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let err = |e: &dyn std::fmt::Display| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e);
        // Record the purge point first: a crash in between leaves extra
        // entries, never a gap the state machine cannot explain.
        self.write_meta(KEY_PURGED, &log_id, true)?;
        let tx = self.db.begin_write().map_err(|e| err(&e))?;
        {
            let mut t = tx.open_table(LOGS).map_err(|e| err(&e))?;
            t.retain_in(..=log_id.index, |_, _| false)
                .map_err(|e| err(&e))?;
        }
        tx.commit().map_err(|e| err(&e))
    }
}
