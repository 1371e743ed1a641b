use std::sync::Arc;

use openraft::{CommittedLeaderId, EntryPayload, LogId};

use super::*;
use crate::state::KvPut;
use crate::state::{Command, Request};

fn entry(index: u64, key: &str) -> Entry {
    let req = Request {
        now_ms: index,
        cmds: vec![Command::KvPut(KvPut {
            key: key.into(),
            value: format!("value-{index};"),
            if_version: None,
            fence: None,
        })],
    };
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Arc::new(req)),
    }
}

fn entries(range: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    range.map(|i| entry(i, &format!("key-{i}"))).collect()
}

/// Appends and syncs, as the writer thread does for one group.
fn append_synced(log: &mut SegmentLog, batch: &[Entry]) {
    log.append(batch).unwrap().unwrap().sync_data().unwrap();
}

fn indexes(v: &[Entry]) -> Vec<u64> {
    v.iter().map(|e| e.get_log_id().index).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

fn open_small(dir: &Path, durable: Option<u64>) -> (SegmentLog, Option<Entry>) {
    let (log, last) = SegmentLog::open(dir, durable).unwrap();
    (log.with_segment_bytes(4096), last)
}

#[test]
fn entries_survive_a_reopen_across_several_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, last) = open_small(dir.path(), None);
    assert!(last.is_none());
    for chunk in entries(1..=200).chunks(7) {
        append_synced(&mut log, chunk);
    }
    assert!(log.segment_count() > 3, "the small segments should roll");
    drop(log);
    let (log, last) = open_small(dir.path(), Some(200));
    assert_eq!(last.map(|e| e.get_log_id().index), Some(200));
    assert_eq!(log.last_index(), Some(200));
    assert_eq!(log.first_index(), Some(1));
    let got = log.read(1, 201).unwrap();
    assert_eq!(indexes(&got), (1..=200).collect::<Vec<_>>());
    assert_eq!(got[41], entries(42..=42)[0]);
    assert_eq!(
        indexes(&log.read(150, 160).unwrap()),
        (150..160).collect::<Vec<_>>()
    );
}

#[test]
fn an_append_that_skips_an_index_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_small(dir.path(), None);
    log.append(&entries(1..=3)).unwrap();
    assert!(log.append(&entries(5..=6)).is_err());
    assert_eq!(log.last_index(), Some(3));
}

/// Flips one byte of the record holding `index`'s value.
fn damage(dir: &Path, index: u64) -> PathBuf {
    let marker = format!("value-{index};");
    for path in segment_files(dir) {
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes
            .windows(marker.len())
            .position(|w| w == marker.as_bytes())
        {
            bytes[at + 2] ^= 0x20;
            std::fs::write(&path, bytes).unwrap();
            return path;
        }
    }
    panic!("entry {index} not found on disk");
}

#[test]
fn a_damaged_durable_entry_stops_the_open_naming_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_small(dir.path(), None);
    for chunk in entries(1..=60).chunks(5) {
        append_synced(&mut log, chunk);
    }
    drop(log);
    let path = damage(dir.path(), 17);
    let err = SegmentLog::open(dir.path(), Some(60))
        .err()
        .expect("must refuse");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("entry 17"), "{text}");
    // Damage is refused in any segment, not only the last, whatever the mark.
    let err = SegmentLog::open(dir.path(), None)
        .err()
        .expect("must refuse");
    assert!(err.to_string().contains("entry 17"), "{err}");
}

#[test]
fn a_torn_tail_past_the_mark_is_cut_and_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = SegmentLog::open(dir.path(), None).unwrap();
    append_synced(&mut log, &entries(1..=10));
    drop(log);
    damage(dir.path(), 9);
    // Entries up to 8 were durable, so 9 and 10 were never acknowledged.
    let (mut log, last) = SegmentLog::open(dir.path(), Some(8)).unwrap();
    assert_eq!(last.map(|e| e.get_log_id().index), Some(8));
    append_synced(&mut log, &entries(9..=12));
    drop(log);
    let (log, _) = SegmentLog::open(dir.path(), Some(12)).unwrap();
    assert_eq!(
        indexes(&log.read(1, 100).unwrap()),
        (1..=12).collect::<Vec<_>>()
    );
    // The same damage below the mark is corruption.
    drop(log);
    damage(dir.path(), 3);
    assert!(SegmentLog::open(dir.path(), Some(12)).is_err());
}

#[test]
fn truncation_removes_the_tail_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_small(dir.path(), None);
    for chunk in entries(1..=100).chunks(10) {
        append_synced(&mut log, chunk);
    }
    log.truncate(55).unwrap();
    assert_eq!(log.last_index(), Some(54));
    let replaced: Vec<Entry> = (55..=60).map(|i| entry(i, "replaced")).collect();
    append_synced(&mut log, &replaced);
    drop(log);
    let (log, last) = open_small(dir.path(), Some(60));
    assert_eq!(last.as_ref().map(|e| e.get_log_id().index), Some(60));
    let got = log.read(1, 1000).unwrap();
    assert_eq!(indexes(&got), (1..=60).collect::<Vec<_>>());
    assert_eq!(got[54..], replaced[..]);
}

#[test]
fn truncating_everything_leaves_an_empty_log_that_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_small(dir.path(), None);
    append_synced(&mut log, &entries(1..=5));
    log.truncate(1).unwrap();
    assert_eq!(log.last_index(), None);
    drop(log);
    let (log, last) = open_small(dir.path(), None);
    assert!(last.is_none() && log.last_index().is_none());
}

#[test]
fn purging_drops_old_segments_and_a_purge_past_the_end_restarts_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_small(dir.path(), None);
    for chunk in entries(1..=200).chunks(10) {
        append_synced(&mut log, chunk);
    }
    let before = segment_files(dir.path()).len();
    log.purge(120).unwrap();
    let after = segment_files(dir.path()).len();
    assert!(after < before, "{before} -> {after}");
    assert!(log.first_index().unwrap() <= 121);
    assert_eq!(
        indexes(&log.read(121, 201).unwrap()),
        (121..=200).collect::<Vec<_>>()
    );
    // A snapshot installed beyond the log: appends resume after it.
    log.purge(500).unwrap();
    assert_eq!(log.last_index(), None);
    append_synced(&mut log, &entries(501..=503));
    drop(log);
    let (log, _) = open_small(dir.path(), Some(503));
    assert_eq!(indexes(&log.read(0, 1000).unwrap()), vec![501, 502, 503]);
}

#[test]
fn an_empty_segment_left_by_a_crash_after_a_roll_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_small(dir.path(), None);
    append_synced(&mut log, &entries(1..=3));
    drop(log);
    zero_filled(&dir.path().join(seg_name(4)), 4096).unwrap();
    let (mut log, last) = open_small(dir.path(), Some(3));
    assert_eq!(last.map(|e| e.get_log_id().index), Some(3));
    append_synced(&mut log, &entries(4..=4));
    drop(log);
    let (log, _) = open_small(dir.path(), Some(4));
    assert_eq!(log.last_index(), Some(4));
}

#[test]
fn a_lost_header_never_ends_the_log_in_front_of_stale_records() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = SegmentLog::open(dir.path(), None).unwrap();
    append_synced(&mut log, &entries(1..=10));
    let (path, at) = (log.segs[0].path.clone(), log.segs[0].records[5].0);
    drop(log);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[at as usize..at as usize + 8].fill(0);
    std::fs::write(&path, &bytes).unwrap();
    // Entry 6 was durable: its loss is damage.
    assert!(SegmentLog::open(dir.path(), Some(10)).is_err());
    // Not yet durable: cut there, and 7..10 must not come back behind a
    // new entry 6.
    let (mut log, last) = SegmentLog::open(dir.path(), Some(5)).unwrap();
    assert_eq!(last.map(|e| e.get_log_id().index), Some(5));
    append_synced(&mut log, &[entry(6, "new")]);
    drop(log);
    let (log, last) = SegmentLog::open(dir.path(), Some(6)).unwrap();
    assert_eq!(last, Some(entry(6, "new")));
    assert_eq!(
        indexes(&log.read(1, 100).unwrap()),
        (1..=6).collect::<Vec<_>>()
    );
}
