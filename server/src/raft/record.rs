//! One record of a segment file: `len u32 LE ++ crc32(payload) u32 LE ++
//! payload`, payload `bincode(entry)`; and the zero-filled files records
//! are written into.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use openraft::RaftLogId;

use super::Entry;

pub const HEADER: usize = 8;
/// A record longer than this is damage, not data (entries are at most a few MiB).
pub const MAX_RECORD: u32 = 256 * 1024 * 1024;

/// Creates a zero-filled file of `size` bytes at `path`, fsynced.
pub fn zero_filled(path: &Path, size: u64) -> io::Result<File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)?;
    let chunk = vec![0u8; 1024 * 1024];
    let mut off = 0;
    while off < size {
        let n = chunk.len().min((size - off) as usize);
        f.write_all_at(&chunk[..n], off)?;
        off += n as u64;
    }
    f.sync_all()?;
    Ok(f)
}

/// Serializes one record.
pub fn encode(entry: &Entry, out: &mut Vec<u8>) -> io::Result<()> {
    let payload = bincode::serialize(entry).map_err(io::Error::other)?;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| l > 0 && l <= MAX_RECORD)
        .ok_or_else(|| io::Error::other("log entry too large"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// How a scan of one segment ended.
pub enum ScanEnd {
    /// Zeros (or the end of the file) after the last record.
    Clean,
    /// A record at `offset` that is cut short or fails its checksum.
    Bad { offset: u64, why: String },
}

pub fn scan(bytes: &[u8], first: u64) -> (Vec<(u64, u32)>, Vec<Entry>, ScanEnd) {
    let mut records = Vec::new();
    let mut entries = Vec::new();
    let mut off = 0usize;
    loop {
        let Some(head) = bytes.get(off..off + HEADER) else {
            return (records, entries, ScanEnd::Clean);
        };
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        if len == 0 && crc == 0 {
            // The end only if nothing follows: a header lost while the
            // records after it survived must not end the log early, or a
            // later append would sit in front of stale entries.
            if bytes[off..].iter().all(|&b| b == 0) {
                return (records, entries, ScanEnd::Clean);
            }
            return (
                records,
                entries,
                ScanEnd::Bad {
                    offset: off as u64,
                    why: "is zeroed but data follows it".into(),
                },
            );
        }
        let bad = |why: &str| ScanEnd::Bad {
            offset: off as u64,
            why: why.to_string(),
        };
        if len > MAX_RECORD {
            return (records, entries, bad("has an impossible length"));
        }
        let Some(payload) = bytes.get(off + HEADER..off + HEADER + len as usize) else {
            return (records, entries, bad("is cut short"));
        };
        if crc32fast::hash(payload) != crc {
            return (records, entries, bad("fails its checksum"));
        }
        let Ok(entry) = bincode::deserialize::<Entry>(payload) else {
            return (records, entries, bad("cannot be decoded"));
        };
        let want = first + records.len() as u64;
        if entry.get_log_id().index != want {
            let why = format!(
                "claims index {} where {want} belongs",
                entry.get_log_id().index
            );
            return (records, entries, bad(&why));
        }
        records.push((off as u64, len));
        entries.push(entry);
        off += HEADER + len as usize;
    }
}

pub fn zero_from(file: &File, from: u64, to: u64) -> io::Result<()> {
    let chunk = vec![0u8; 64 * 1024];
    let mut off = from;
    while off < to {
        let n = chunk.len().min((to - off) as usize);
        file.write_all_at(&chunk[..n], off)?;
        off += n as u64;
    }
    Ok(())
}
