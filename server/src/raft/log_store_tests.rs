use super::*;

#[tokio::test]
async fn a_committed_vote_is_read_back_uncommitted() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_dir(dir.path());
    let mut store =
        LogStore::open(&path, crate::metrics::groups::GroupSeries::standalone()).unwrap();
    let vote = Vote {
        committed: true,
        ..Vote::new(7, 2)
    };
    store.save_vote(&vote).await.unwrap();
    drop(store);
    let mut store =
        LogStore::open(&path, crate::metrics::groups::GroupSeries::standalone()).unwrap();
    let got = store.read_vote().await.unwrap().expect("a stored vote");
    assert_eq!(got.leader_id, vote.leader_id);
    assert!(!got.committed, "the node would restart as leader: {got:?}");
}

#[tokio::test]
async fn a_purge_cut_short_by_a_crash_is_finished_at_open() {
    use openraft::{CommittedLeaderId, EntryPayload};
    let dir = tempfile::tempdir().unwrap();
    let path = log_dir(dir.path());
    let id = |i| LogId::new(CommittedLeaderId::new(2, 1), i);
    {
        let (mut segs, _) = SegmentLog::open(&path, None).unwrap();
        let entries: Vec<Entry> = (1..=100)
            .map(|i| Entry {
                log_id: id(i),
                payload: EntryPayload::Blank,
            })
            .collect();
        segs.append(&entries).unwrap().unwrap().sync_data().unwrap();
    }
    // The purge point of an installed snapshot past the log's end was
    // recorded; the crash came before the segments were removed.
    let purged = frame(&bincode::serialize(&id(5000)).unwrap());
    super::super::log_writer::write_meta(&path, KEY_PURGED, &purged).unwrap();
    let mut store =
        LogStore::open(&path, crate::metrics::groups::GroupSeries::standalone()).unwrap();
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(id(5000)));
    assert_eq!(state.last_log_id, Some(id(5000)));
    assert!(store.try_get_log_entries(1..).await.unwrap().is_empty());
}

#[test]
fn a_second_open_of_the_same_log_is_refused_while_the_first_lives() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_dir(dir.path());
    let first = LogStore::open(&path, crate::metrics::groups::GroupSeries::standalone()).unwrap();
    let err = LogStore::open(&path, crate::metrics::groups::GroupSeries::standalone())
        .err()
        .expect("two owners of one log");
    assert!(err.to_string().contains("in use"), "{err}");
    drop(first);
    LogStore::open(&path, crate::metrics::groups::GroupSeries::standalone()).unwrap();
}
