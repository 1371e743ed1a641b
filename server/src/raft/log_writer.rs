//! The log's writer thread: group commit.
//!
//! Appends, truncations, purges and votes queue here; the thread applies
//! everything queued, then one `fdatasync` per segment written, then reports
//! each job done. openraft learns an entry is flushed only from the callback
//! sent after that sync, so batching never acknowledges early. (openraft 0.9
//! waits for each append's callback before going on, so today this mainly
//! keeps disk work off the async runtime; replication reads fresh entries
//! from the in-memory tail.)

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use openraft::storage::LogFlushed;

use super::segments::{sync_dir, SegmentLog};
use super::{frame, Entry, LogId, TypeConfig};

pub const KEY_VOTE: &str = "vote";
pub const KEY_COMMITTED: &str = "committed";
pub const KEY_PURGED: &str = "purged";

/// Most jobs folded into one group.
const MAX_GROUP: usize = 256;

pub enum Job {
    Append(Vec<Entry>, LogFlushed<TypeConfig>),
    /// Delete entries at and after this index.
    Truncate(u64, Done),
    /// Delete entries up to this log id and record it as purged.
    Purge(LogId, Done),
    /// Store framed metadata durably.
    Meta(&'static str, Vec<u8>, Done),
}

pub type Done = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Entries submitted but possibly not yet durable, plus a short tail of
/// durable ones; readers look here before the segment files.
pub type Tail = Arc<Mutex<std::collections::BTreeMap<u64, Entry>>>;

/// Durable entries kept in the tail for followers a little behind.
const TAIL_KEEP: u64 = 512;

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Replaces `dir/key` with `bytes` durably: temp file, fsync, rename, fsync
/// of the folder. A crash leaves the old value or the new, never a mix.
pub fn write_meta(dir: &Path, key: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{key}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(key))?;
    sync_dir(dir)
}

pub struct Writer {
    pub dir: PathBuf,
    pub log: Arc<Mutex<SegmentLog>>,
    pub hwm: HighWater,
    pub tail: Tail,
    pub committed: Arc<Mutex<Option<LogId>>>,
    /// The commit index as last written, so an unchanged one isn't rewritten.
    pub committed_written: Option<LogId>,
    pub committed_file: Option<File>,
    pub fsync_seconds: prometheus_client::metrics::histogram::Histogram,
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

    fn run(mut self, rx: Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            let started = Instant::now();
            let result = self.commit(&jobs).map_err(|e| e.to_string());
            self.fsync_seconds.observe(started.elapsed().as_secs_f64());
            if let Err(e) = &result {
                tracing::error!("log write failed: {e}");
            }
            let mut appended = false;
            for job in jobs {
                match job {
                    Job::Append(_, cb) => {
                        appended = true;
                        cb.log_io_completed(result.clone().map_err(std::io::Error::other));
                    }
                    Job::Truncate(_, done) | Job::Purge(_, done) | Job::Meta(_, _, done) => {
                        let _ = done.send(result.clone());
                    }
                }
            }
            let last = lock(&self.log).last_index();
            if let (Ok(()), true, Some(last)) = (&result, appended, last) {
                let mut tail = lock(&self.tail);
                // Only durable entries leave the tail: what is below `last`
                // in it was synced by this or an earlier group.
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

    fn commit(&mut self, jobs: &[Job]) -> Result<(), Box<dyn std::error::Error>> {
        let mut unsynced: Vec<Arc<File>> = Vec::new();
        let sync = |files: &mut Vec<Arc<File>>| -> std::io::Result<()> {
            for f in files.drain(..) {
                f.sync_data()?;
            }
            Ok(())
        };
        for job in jobs {
            match job {
                Job::Append(entries, _) => {
                    if let Some(f) = lock(&self.log).append(entries)? {
                        if !unsynced.iter().any(|u| Arc::ptr_eq(u, &f)) {
                            unsynced.push(f);
                        }
                    }
                }
                Job::Truncate(index, _) => {
                    // The log is about to shrink: lower the mark durably
                    // first, or a crash right after would look like a lost
                    // tail. What this group appended is synced before the
                    // mark can cover it.
                    sync(&mut unsynced)?;
                    let next = lock(&self.log).last_index().map_or(0, |l| l + 1);
                    self.hwm.store(next.min(*index), true)?;
                    lock(&self.log).truncate(*index)?;
                }
                Job::Purge(log_id, _) => {
                    let bytes = frame(&bincode::serialize(log_id)?);
                    write_meta(&self.dir, KEY_PURGED, &bytes)?;
                    lock(&self.log).purge(log_id.index)?;
                }
                Job::Meta(key, bytes, _) => write_meta(&self.dir, key, bytes)?,
            }
        }
        self.write_committed()?;
        sync(&mut unsynced)?;
        let next = lock(&self.log).last_index().map_or(0, |l| l + 1);
        self.hwm.store(next, false)?;
        Ok(())
    }

    /// The commit index rides along with the group, written in place without
    /// a sync: losing it only means replaying less at start.
    fn write_committed(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let committed = *lock(&self.committed);
        if committed.is_none() || committed == self.committed_written {
            return Ok(());
        }
        if self.committed_file.is_none() {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(self.dir.join(KEY_COMMITTED))?;
            self.committed_file = Some(f);
        }
        let bytes = frame(&bincode::serialize(&committed).map_err(std::io::Error::other)?);
        let f = self.committed_file.as_ref().expect("opened above");
        f.write_all_at(&bytes, 0)?;
        self.committed_written = committed;
        Ok(())
    }
}

/// The log's high-water mark: entries below it are durable (0: none), kept
/// in `raft-log/hwm`.
///
/// Opening the log cuts off a bad record past the mark as a torn write that
/// was never acknowledged; the mark is what tells such a tail from damage to
/// entries this node already acknowledged. It is written after every group
/// (the group's sync has returned, so it never claims more than is durable),
/// and a log that opens shorter than its mark is refused as corrupt.
pub struct HighWater {
    path: std::path::PathBuf,
    /// Kept open: the mark is rewritten after every commit.
    file: Mutex<Option<std::fs::File>>,
}

impl HighWater {
    pub fn new(path: std::path::PathBuf) -> Self {
        HighWater {
            path,
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
        let hwm = HighWater::new(dir.path().join("hwm"));
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
