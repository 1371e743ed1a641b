//! The Raft log on disk: append-only segment files.
//!
//! A segment is `raft-log/<first index, 20 digits>.seg`, created at its full
//! size filled with zeros, so appending overwrites allocated blocks and an
//! `fdatasync` flushes data only, with no file-size or extent change for the
//! filesystem journal to commit. Records follow one another from offset 0:
//! `len u32 LE ++ crc32(payload) u32 LE ++ payload`, where the payload is
//! `bincode(entry)`. A zero length marks the end of what was written.
//!
//! Opening scans every record. A bad record past the durable high-water mark
//! is the torn tail of a write that was never acknowledged and is cut off;
//! anywhere else it stops the node with an error naming the file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::RaftLogId;

use super::record::{encode, scan, zero_filled, zero_from, ScanEnd, HEADER};
use super::Entry;
use crate::error::Error;

/// Size of a new segment; a batch larger than this gets a segment of its own.
pub const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

struct Segment {
    first: u64,
    path: PathBuf,
    file: Arc<File>,
    capacity: u64,
    /// Bytes written.
    end: u64,
    /// Offset and length of each record, entry `first + i` at `i`.
    records: Vec<(u64, u32)>,
}

impl Segment {
    fn last(&self) -> Option<u64> {
        (!self.records.is_empty()).then(|| self.first + self.records.len() as u64 - 1)
    }
}

pub struct SegmentLog {
    dir: PathBuf,
    /// Size of a new segment ([`SEGMENT_BYTES`]; smaller in tests).
    seg_bytes: u64,
    segs: Vec<Segment>,
    /// A zero-filled file made ahead of time by a helper thread.
    spare: Option<std::sync::mpsc::Receiver<io::Result<File>>>,
}

fn corrupt(path: &Path, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

fn seg_name(first: u64) -> String {
    format!("{first:020}.seg")
}

fn spare_path(dir: &Path) -> PathBuf {
    dir.join("spare.tmp")
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl SegmentLog {
    /// Opens the segments in `dir` (created if missing), checking every
    /// record. `durable` is the last index known to have been fsynced: a bad
    /// record at or below it is corruption. Returns the log and the last
    /// entry in it.
    pub fn open(dir: &Path, durable: Option<u64>) -> Result<(SegmentLog, Option<Entry>), Error> {
        let io = |e: io::Error| corrupt(dir, e.to_string());
        std::fs::create_dir_all(dir).map_err(io)?;
        let _ = std::fs::remove_file(spare_path(dir));
        let mut firsts = Vec::new();
        for item in std::fs::read_dir(dir).map_err(io)? {
            let name = item.map_err(io)?.file_name();
            let name = name.to_string_lossy();
            if let Some(first) = name
                .strip_suffix(".seg")
                .and_then(|n| n.parse::<u64>().ok())
            {
                firsts.push(first);
            }
        }
        firsts.sort_unstable();
        let mut log = SegmentLog {
            dir: dir.to_path_buf(),
            seg_bytes: SEGMENT_BYTES,
            segs: Vec::new(),
            spare: None,
        };
        let mut last_entry = None;
        let count = firsts.len();
        for (i, first) in firsts.into_iter().enumerate() {
            let path = dir.join(seg_name(first));
            let io = |e: io::Error| corrupt(&path, e.to_string());
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io)?;
            let mut bytes = Vec::new();
            io::Read::read_to_end(&mut file, &mut bytes).map_err(io)?;
            if let Some(prev) = log.segs.last().and_then(Segment::last) {
                if first != prev + 1 {
                    return Err(corrupt(&path, format!("the log has a gap after {prev}")));
                }
            }
            let (records, mut entries, end) = scan(&bytes, first);
            if records.is_empty() && matches!(end, ScanEnd::Clean) {
                if i + 1 < count {
                    return Err(corrupt(&path, "an empty segment in the middle of the log"));
                }
                // Rolled to, but nothing written into it survived.
                std::fs::remove_file(&path).map_err(io)?;
                continue;
            }
            let next = first + records.len() as u64;
            let mut used = records
                .last()
                .map_or(0, |&(o, l)| o + HEADER as u64 + l as u64);
            if let ScanEnd::Bad { offset, why } = end {
                let is_tail = i + 1 == count && durable.is_none_or(|d| next > d);
                if !is_tail {
                    return Err(corrupt(
                        &path,
                        format!("log entry {next} at byte {offset} {why}"),
                    ));
                }
                tracing::warn!(
                    "{}: dropping a torn write at entry {next} (byte {offset}), never acknowledged",
                    path.display()
                );
                zero_from(&file, offset, bytes.len() as u64).map_err(io)?;
                file.sync_data().map_err(io)?;
                used = offset;
                if records.is_empty() {
                    // Rolled to, and its first write was torn.
                    std::fs::remove_file(&path).map_err(io)?;
                    sync_dir(dir).map_err(io)?;
                    continue;
                }
            }
            if let Some(e) = entries.pop() {
                last_entry = Some(e);
            }
            log.segs.push(Segment {
                first,
                path,
                file: Arc::new(file),
                capacity: (bytes.len() as u64).max(used),
                end: used,
                records,
            });
        }
        Ok((log, last_entry))
    }

    #[cfg(test)]
    pub fn with_segment_bytes(mut self, bytes: u64) -> Self {
        self.seg_bytes = bytes;
        self
    }

    #[cfg(test)]
    pub fn segment_count(&self) -> usize {
        self.segs.len()
    }

    pub fn first_index(&self) -> Option<u64> {
        self.segs
            .first()
            .filter(|s| !s.records.is_empty())
            .map(|s| s.first)
    }

    pub fn last_index(&self) -> Option<u64> {
        self.segs.last().and_then(Segment::last)
    }

    /// Writes entries (consecutive, following the last one) without syncing.
    /// Returns the file to `fdatasync` before they count as durable.
    pub fn append(&mut self, entries: &[Entry]) -> io::Result<Option<Arc<File>>> {
        let Some(first) = entries.first().map(|e| e.get_log_id().index) else {
            return Ok(None);
        };
        if let Some(last) = self.last_index() {
            if first != last + 1 {
                // openraft truncates or purges before appending anywhere else.
                return Err(io::Error::other(format!(
                    "append of {first} does not follow the last entry {last}"
                )));
            }
        }
        let mut buf = Vec::with_capacity(entries.len() * 256);
        let mut lens = Vec::with_capacity(entries.len());
        for e in entries {
            let before = buf.len();
            encode(e, &mut buf)?;
            lens.push((buf.len() - before - HEADER) as u32);
        }
        let fits = self
            .segs
            .last()
            .is_some_and(|s| s.capacity - s.end >= buf.len() as u64 + HEADER as u64);
        if !fits {
            self.roll(first, buf.len() as u64)?;
        }
        let seg = self.segs.last_mut().expect("a segment after roll");
        seg.file.write_all_at(&buf, seg.end)?;
        let mut off = seg.end;
        for len in lens {
            seg.records.push((off, len));
            off += HEADER as u64 + len as u64;
        }
        seg.end = off;
        Ok(Some(seg.file.clone()))
    }

    /// Starts a new segment whose first entry is `first`.
    fn roll(&mut self, first: u64, need: u64) -> io::Result<()> {
        if self.segs.last().is_some_and(|s| s.records.is_empty()) {
            let s = self.segs.pop().expect("checked");
            std::fs::remove_file(&s.path)?;
        }
        if let Some(old) = self.segs.last() {
            old.file.sync_data()?;
        }
        let path = self.dir.join(seg_name(first));
        let size = self.seg_bytes.max(need + HEADER as u64);
        // A batch too big for a spare leaves the spare pending for the next
        // roll: one helper thread at a time ever writes `spare.tmp`.
        let spare = match size == self.seg_bytes {
            true => self.spare.take().and_then(|rx| rx.recv().ok()?.ok()),
            false => None,
        };
        let file = match spare {
            Some(f) => {
                std::fs::rename(spare_path(&self.dir), &path)?;
                f
            }
            None => zero_filled(&path, size)?,
        };
        sync_dir(&self.dir)?;
        self.segs.push(Segment {
            first,
            path,
            file: Arc::new(file),
            capacity: size,
            end: 0,
            records: Vec::new(),
        });
        self.prepare_spare();
        Ok(())
    }

    fn prepare_spare(&mut self) {
        if self.spare.is_some() {
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let path = spare_path(&self.dir);
        let size = self.seg_bytes;
        let spawned = std::thread::Builder::new()
            .name("dsync-log-spare".into())
            .spawn(move || {
                let _ = tx.send(zero_filled(&path, size));
            });
        if spawned.is_ok() {
            self.spare = Some(rx);
        }
    }

    /// Removes entries at and after `index`, durably.
    pub fn truncate(&mut self, index: u64) -> io::Result<()> {
        let mut removed = false;
        while let Some(seg) = self.segs.last() {
            if seg.first < index {
                break;
            }
            let seg = self.segs.pop().expect("checked");
            std::fs::remove_file(&seg.path)?;
            removed = true;
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        if let Some(seg) = self.segs.last_mut() {
            if index >= seg.first && index < seg.first + seg.records.len() as u64 {
                let keep = (index - seg.first) as usize;
                let from = seg.records[keep].0;
                // The first dropped header goes last: cut short, this leaves a
                // record that fails its checksum, never a clean-looking end
                // with stale records behind it.
                zero_from(&seg.file, from + HEADER as u64, seg.end)?;
                zero_from(&seg.file, from, from + HEADER as u64)?;
                seg.file.sync_data()?;
                seg.records.truncate(keep);
                seg.end = from;
            }
        }
        Ok(())
    }

    /// Drops whole segments holding only entries at or before `index` (all of
    /// them when a snapshot covers the whole log: appends then start anew).
    pub fn purge(&mut self, index: u64) -> io::Result<()> {
        let mut removed = false;
        while !self.segs.is_empty() && self.segs[0].last().is_none_or(|l| l <= index) {
            let seg = self.segs.remove(0);
            std::fs::remove_file(&seg.path)?;
            removed = true;
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Reads the entries in `lo..hi` that are on disk.
    pub fn read(&self, lo: u64, hi: u64) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for seg in &self.segs {
            let Some(last) = seg.last() else { continue };
            if last < lo || seg.first >= hi {
                continue;
            }
            for index in lo.max(seg.first)..hi.min(last + 1) {
                let (off, len) = seg.records[(index - seg.first) as usize];
                let mut bytes = vec![0u8; HEADER + len as usize];
                seg.file.read_exact_at(&mut bytes, off)?;
                let payload = &bytes[HEADER..];
                let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
                if crc32fast::hash(payload) != crc {
                    return Err(io::Error::other(format!(
                        "{}: log entry {index} fails its checksum",
                        seg.path.display()
                    )));
                }
                out.push(bincode::deserialize(payload).map_err(io::Error::other)?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "segments_tests.rs"]
mod tests;
