//! The log's writer thread: group commit.
//!
//! Appends, truncations, purges and votes queue here; the thread applies
//! everything queued in one redb write transaction and one fsync, then
//! reports each job done. openraft learns an entry is flushed only from the
//! callback sent after that fsync, so batching never acknowledges early.
//! (openraft 0.9 itself waits for each append's callback before going on, so
//! today this mainly keeps redb work off the async runtime and lets
//! replication read fresh entries from the in-memory tail.)

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use openraft::storage::LogFlushed;
use openraft::RaftLogId;
use redb::{Database, ReadableTable, TableDefinition};

use super::{frame, Entry, LogId, TypeConfig};
use crate::metrics::Metrics;

pub const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub const KEY_VOTE: &str = "vote";
pub const KEY_COMMITTED: &str = "committed";
pub const KEY_PURGED: &str = "last_purged";

/// Most jobs folded into one transaction.
const MAX_GROUP: usize = 256;

pub enum Job {
    Append(Vec<Entry>, LogFlushed<TypeConfig>),
    /// Delete entries at and after this index.
    Truncate(u64, Done),
    /// Delete entries up to this log id and record it as purged.
    Purge(LogId, Done),
    /// Store framed metadata.
    Meta(&'static str, Vec<u8>, Done),
}

pub type Done = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Entries submitted but possibly not yet durable, plus a short tail of
/// durable ones; readers look here before redb.
pub type Tail = Arc<Mutex<std::collections::BTreeMap<u64, Entry>>>;

/// Durable entries kept in the tail for followers a little behind.
const TAIL_KEEP: u64 = 512;

pub struct Writer {
    pub db: Arc<Database>,
    pub hwm: HighWater,
    pub tail: Tail,
    pub committed: Arc<Mutex<Option<LogId>>>,
    pub metrics: Arc<Metrics>,
}

pub fn put_meta<T: serde::Serialize>(
    t: &mut redb::Table<&str, &[u8]>,
    key: &str,
    value: &T,
) -> Result<(), Box<dyn std::error::Error>> {
    let bytes = frame(&bincode::serialize(value)?);
    t.insert(key, bytes.as_slice())?;
    Ok(())
}

impl Writer {
    pub fn spawn(self) -> Sender<Job> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("dsync-log-writer".into())
            .spawn(move || self.run(rx))
            .expect("spawn log writer thread");
        tx
    }

    fn run(self, rx: Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            let started = Instant::now();
            let truncates = jobs.iter().any(|j| matches!(j, Job::Truncate(..)));
            let result = self.commit(&jobs, truncates).map_err(|e| e.to_string());
            self.metrics
                .fsync_seconds
                .observe(started.elapsed().as_secs_f64());
            if let Err(e) = &result {
                tracing::error!("log write failed: {e}");
            }
            let mut last_appended = None;
            for job in jobs {
                match job {
                    Job::Append(entries, cb) => {
                        last_appended = entries
                            .last()
                            .map(|e| e.get_log_id().index)
                            .or(last_appended);
                        cb.log_io_completed(result.clone().map_err(std::io::Error::other));
                    }
                    Job::Truncate(_, done) | Job::Purge(_, done) | Job::Meta(_, _, done) => {
                        let _ = done.send(result.clone());
                    }
                }
            }
            if let (Ok(()), Some(last)) = (&result, last_appended) {
                let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
                // Only durable entries leave the tail: what is below `last`
                // in it was committed by this or an earlier transaction.
                let keep_from = last.saturating_sub(TAIL_KEEP);
                while let Some((&k, _)) = tail.first_key_value() {
                    if k >= keep_from {
                        break;
                    }
                    tail.pop_first();
                }
            }
        }
    }

    fn commit(&self, jobs: &[Job], truncates: bool) -> Result<(), Box<dyn std::error::Error>> {
        let tx = self.db.begin_write()?;
        let last;
        {
            let mut logs = tx.open_table(LOGS)?;
            let mut meta = tx.open_table(META)?;
            let committed = *self.committed.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = committed {
                put_meta(&mut meta, KEY_COMMITTED, &Some(c))?;
            }
            for job in jobs {
                match job {
                    Job::Append(entries, _) => {
                        for e in entries {
                            let bytes = frame(&bincode::serialize(e)?);
                            logs.insert(e.get_log_id().index, bytes.as_slice())?;
                        }
                    }
                    Job::Truncate(index, _) => {
                        logs.retain_in(*index.., |_, _| false)?;
                    }
                    Job::Purge(log_id, _) => {
                        put_meta(&mut meta, KEY_PURGED, log_id)?;
                        logs.retain_in(..=log_id.index, |_, _| false)?;
                    }
                    Job::Meta(key, bytes, _) => {
                        meta.insert(*key, bytes.as_slice())?;
                    }
                }
            }
            last = logs.last()?.map(|(k, _)| k.value());
        }
        if truncates {
            // The log is about to shrink: lower the mark durably first, or a
            // crash right after the commit would look like a lost tail.
            self.hwm.store(last.unwrap_or(0), true)?;
        }
        tx.commit()?;
        if !truncates {
            self.hwm.store(last.unwrap_or(0), false)?;
        }
        Ok(())
    }
}

/// The log's high-water mark: the last index redb has made durable, kept in
/// a sidecar file (`raft-log.redb.hwm`).
///
/// After an unclean shutdown redb repairs its file, and if the newest commit
/// is damaged it silently falls back to the one before, dropping entries
/// this node already acknowledged. The mark is written after every commit
/// (the commit's fsync has returned, so it never claims more than is durable),
/// and a log that opens shorter than its mark is refused as corrupt.
pub struct HighWater {
    path: std::path::PathBuf,
    /// Kept open: the mark is rewritten after every commit.
    file: Mutex<Option<std::fs::File>>,
}

impl HighWater {
    pub fn new(log_path: &std::path::Path) -> Self {
        let mut p = log_path.as_os_str().to_owned();
        p.push(".hwm");
        HighWater {
            path: p.into(),
            file: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Overwrites the mark in place (one `pwrite`); `durable` adds an fsync.
    pub fn store(&self, index: u64, durable: bool) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&self.path)?;
            *guard = Some(f);
        }
        let f = guard.as_ref().expect("opened above");
        f.write_all_at(&frame(&index.to_le_bytes()), 0)?;
        if durable {
            f.sync_all()?;
        }
        Ok(())
    }

    /// The recorded mark; `None` if there is none or it is unreadable (a
    /// torn write of the mark itself is not evidence against the log).
    pub fn load(&self) -> Option<u64> {
        let bytes = std::fs::read(&self.path).ok()?;
        let payload = super::unframe(bytes.get(..12)?)?;
        Some(u64::from_le_bytes(payload.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_water_mark_round_trips_and_ignores_a_torn_mark() {
        let dir = tempfile::tempdir().unwrap();
        let hwm = HighWater::new(&dir.path().join("raft-log.redb"));
        assert_eq!(hwm.load(), None);
        hwm.store(42, false).unwrap();
        assert_eq!(hwm.load(), Some(42));
        hwm.store(7, true).unwrap();
        assert_eq!(hwm.load(), Some(7));
        let mut bytes = std::fs::read(hwm.path()).unwrap();
        bytes[5] ^= 1;
        std::fs::write(hwm.path(), bytes).unwrap();
        assert_eq!(hwm.load(), None);
    }
}
