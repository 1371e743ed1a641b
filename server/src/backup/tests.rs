//! Backup files: round trips, damage, seeding.

use std::collections::BTreeMap;

use openraft::{CommittedLeaderId, LogId, StoredMembership};

use super::*;
use crate::raft::SnapshotMeta;
use crate::state::{Command, Request, StateData};
use crate::state::{KvPut, QueueEnqueue, SetClusterId};

fn sample() -> SnapshotFile {
    let mut data = StateData::default();
    data.apply(Request {
        now_ms: 1,
        cmds: vec![
            Command::SetClusterId(SetClusterId { id: "c1".into() }),
            Command::KvPut(KvPut {
                key: "k".into(),
                value: "1".into(),
                if_version: None,
                fence: None,
            }),
        ],
    });
    let log_id = LogId::new(CommittedLeaderId::new(3, 1), 42);
    SnapshotFile {
        meta: SnapshotMeta {
            last_log_id: Some(log_id),
            last_membership: StoredMembership::default(),
            snapshot_id: "3-42".into(),
        },
        data,
    }
}

#[test]
fn round_trips_and_describes_itself() {
    let bytes = encode(&sample(), 7).unwrap();
    let (h, snap) = decode(&bytes, "b").unwrap();
    assert_eq!((h.index, h.term, h.created_at_ms), (42, 3, 7));
    assert_eq!(h.cluster_id.as_deref(), Some("c1"));
    assert_eq!(snap.data, sample().data);
    assert!(bytes.starts_with(b"DSYNC-BACKUP 1\n{"));
}

#[test]
fn every_flipped_body_byte_and_truncation_is_refused() {
    let bytes = encode(&sample(), 7).unwrap();
    let (_, body_at) = read_header(&bytes, "b").unwrap();
    for i in body_at..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        let err = decode(&bad, "b").unwrap_err().to_string();
        assert!(err.contains("SHA-256 mismatch"), "byte {i}: {err}");
    }
    assert!(decode(&bytes[..bytes.len() - 1], "b").is_err());
    assert!(decode(b"hello\n", "b").is_err());
    assert!(decode(b"", "b").is_err());
}

#[test]
fn a_header_that_lies_about_the_body_is_refused() {
    let mut bad = encode(&sample(), 7).unwrap();
    let at = bad.windows(10).position(|w| w == b"\"index\":42").unwrap();
    bad[at + 9] = b'3';
    let err = decode(&bad, "b").unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");
}

#[test]
fn seeding_keeps_the_state_and_index_under_a_new_membership() {
    let members = BTreeMap::from([(1, "a:1".to_string()), (2, "a:2".to_string())]);
    let seeded = seed_for_new_cluster(sample(), &members, "new".into());
    let last = seeded.meta.last_log_id.unwrap();
    assert_eq!((last.index, last.leader_id.term), (42, 0));
    let voters: Vec<u64> = seeded
        .meta
        .last_membership
        .membership()
        .voter_ids()
        .collect();
    assert_eq!(voters, vec![1, 2]);
    assert_eq!(seeded.data.cluster_id.as_deref(), Some("new"));
    assert_eq!(seeded.data.kv, sample().data.kv);
}

fn group_sample(id: u64, topic: &str) -> SnapshotFile {
    let mut data = StateData::default();
    data.apply(Request {
        now_ms: 1,
        cmds: vec![Command::QueueEnqueue(QueueEnqueue {
            topic: topic.into(),
            msgs: vec![crate::state::queue::Incoming {
                payload: "m".into(),
                delay_ms: 0,
                dedup_id: None,
            }],
        })],
    });
    let log_id = LogId::new(CommittedLeaderId::new(2, id), 10 + id);
    SnapshotFile {
        meta: SnapshotMeta {
            last_log_id: Some(log_id),
            last_membership: StoredMembership::default(),
            snapshot_id: format!("g{id}"),
        },
        data,
    }
}

#[test]
fn queue_groups_travel_in_format_2_each_verified() {
    let groups = vec![(1, group_sample(1, "a")), (2, group_sample(2, "b"))];
    let bytes = encode_with_groups(&sample(), &groups, 7).unwrap();
    assert!(bytes.starts_with(b"DSYNC-BACKUP 2\n{"));
    let b = decode_all(&bytes, "b").unwrap();
    assert_eq!(b.control.data, sample().data);
    assert_eq!(b.groups.len(), 2);
    assert_eq!(b.groups[1].0, 2);
    assert_eq!(b.groups[1].1.data, groups[1].1.data);
    assert_eq!(b.header.groups[0].index, 11);
    // The last byte belongs to group 2's snapshot.
    let mut bad = bytes.clone();
    *bad.last_mut().unwrap() ^= 1;
    let err = decode_all(&bad, "b").unwrap_err().to_string();
    assert!(err.contains("queue group 2"), "{err}");
    assert!(decode_all(&bytes[..bytes.len() - 1], "b").is_err());
}

#[test]
fn a_format_1_line_over_a_grouped_header_is_refused() {
    let groups = vec![(1, group_sample(1, "a"))];
    let mut bytes = encode_with_groups(&sample(), &groups, 7).unwrap();
    bytes[13] = b'1';
    let err = decode_all(&bytes, "b").unwrap_err().to_string();
    assert!(err.contains("does not match its format"), "{err}");
}

#[test]
fn seeding_groups_places_them_over_the_new_nodes_with_the_same_ring() {
    let mut control = sample();
    control.data.shards = dsync_api::shards::ShardMap::initial(&[1, 2, 3], 3, 3).unwrap();
    let old = control.data.shards.clone();
    let groups = vec![
        (1, group_sample(1, "a")),
        (2, group_sample(2, "b")),
        (3, group_sample(3, "c")),
    ];
    let bytes = encode_with_groups(&control, &groups, 7).unwrap();
    let backup = decode_all(&bytes, "b").unwrap();
    let members: BTreeMap<u64, String> = (1..=5).map(|i| (i, format!("h:{i}"))).collect();
    let (seeded, placed) = seed_groups(backup, &members, "new".into());
    let map = &seeded.data.shards;
    assert_eq!(map.epoch, old.epoch + 1);
    for (o, n) in old.groups.iter().zip(&map.groups) {
        assert_eq!((o.id, o.vnodes), (n.id, n.vnodes));
        assert_eq!(n.replicas.len(), 3);
        assert!(n.replicas.iter().all(|r| members.contains_key(r)));
    }
    for t in ["a", "b", "orders", "x/y"] {
        assert_eq!(map.group_of(t), old.group_of(t), "{t} routes as before");
    }
    assert_eq!(placed.len(), 3);
    for g in &placed {
        assert_eq!(Some(&g.replicas), map.group(g.id).map(|i| &i.replicas));
        let voters: Vec<u64> = g
            .snapshot
            .meta
            .last_membership
            .membership()
            .voter_ids()
            .collect();
        assert_eq!(voters, {
            let mut r = g.replicas.clone();
            r.sort();
            r
        });
    }
}
