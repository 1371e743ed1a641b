//! Applying entries: revisions, clocks, outbox and refusals.

use dsync_api::events::Event;
use dsync_api::locks::LockMode;
use dsync_api::ErrorCode;

use super::*;

#[test]
fn the_first_cluster_id_wins() {
    let mut d = StateData::default();
    let set = |id: &str| Request {
        now_ms: 1,
        cmds: vec![Command::SetClusterId(SetClusterId { id: id.into() })],
    };
    d.apply(set("a"));
    d.apply(set("b"));
    assert_eq!(d.cluster_id.as_deref(), Some("a"));
}

fn put(key: &str, v: &str, if_version: Option<u64>) -> Command {
    Command::KvPut(KvPut {
        key: key.into(),
        value: v.into(),
        if_version,
        fence: None,
    })
}

#[test]
fn revisions_are_unique_within_one_entry() {
    let mut s = StateData::default();
    let r = s.apply(Request {
        now_ms: 5,
        cmds: vec![put("a", "1", None), put("a", "2", None)],
    });
    assert_eq!(
        r.0,
        vec![Ok(CmdValue::Version(1)), Ok(CmdValue::Version(2))]
    );
    assert_eq!(s.kv.get("a").unwrap().value, "2");
}

#[test]
fn clock_never_goes_back() {
    let mut s = StateData::default();
    s.apply(Request {
        now_ms: 100,
        cmds: vec![],
    });
    s.apply(Request {
        now_ms: 50,
        cmds: vec![],
    });
    assert_eq!(s.now_ms, 100);
}

fn acquire(name: &str, owner: &str, wait_ms: u64) -> Command {
    Command::LockAcquire(LockAcquire {
        name: name.into(),
        owner: owner.into(),
        mode: LockMode::Exclusive,
        ttl_ms: 10_000,
        wait_ms,
    })
}

#[test]
fn force_release_evicts_holders_and_grants_the_next_waiter() {
    let mut s = StateData::default();
    let r = s.apply(Request {
        now_ms: 1,
        cmds: vec![acquire("l", "a", 0), acquire("l", "b", 5_000)],
    });
    let Ok(CmdValue::Granted(a)) = &r.0[0] else {
        panic!("a not granted: {r:?}");
    };
    let r = s.apply(Request {
        now_ms: 2,
        cmds: vec![Command::LockForceRelease(LockForceRelease {
            name: "l".into(),
        })],
    });
    assert_eq!(r.0, vec![Ok(CmdValue::Released(vec!["a".into()]))]);
    let holders: Vec<_> = s.locks.get("l").expect("b holds l").holders().collect();
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0].owner, "b");
    assert!(holders[0].token > a.token);
    assert!(!s.locks.is_current_grant("l", a.token));
    // Releasing a lock nobody holds evicts nobody and is not an error.
    let r = s.apply(Request {
        now_ms: 3,
        cmds: vec![Command::LockForceRelease(LockForceRelease {
            name: "free".into(),
        })],
    });
    assert_eq!(r.0, vec![Ok(CmdValue::Released(vec![]))]);
}

#[test]
fn grants_refusals_and_releases_reach_the_outbox() {
    let mut s = StateData::default();
    s.apply(Request {
        now_ms: 1,
        cmds: vec![
            acquire("x", "a", 0),
            acquire("y", "b", 0),
            acquire("y", "a", 5_000),
            acquire("x", "b", 5_000),
            Command::LockForceRelease(LockForceRelease { name: "x".into() }),
        ],
    });
    let kinds: Vec<&str> = s.outbox.iter().map(Event::kind).collect();
    assert_eq!(
        kinds,
        [
            "lock_granted",
            "lock_granted",
            "deadlock",
            "lock_force_released"
        ]
    );
    let Event::Deadlock { cycle, lock, .. } = &s.outbox[2] else {
        unreachable!()
    };
    assert_eq!(
        (lock.as_str(), cycle.clone()),
        ("x", vec!["b".to_string(), "a".to_string()])
    );
}

#[test]
fn dead_letters_reach_the_outbox() {
    let mut s = StateData::default();
    let r = s.apply(Request {
        now_ms: 1,
        cmds: vec![
            Command::QueueConfigure(QueueConfigure {
                topic: "t".into(),
                max_attempts: Some(1),
                visibility_ms: None,
                max_message_bytes: None,
                retention_ms: None,
            }),
            Command::QueueEnqueue(QueueEnqueue {
                topic: "t".into(),
                msgs: vec![queue::Incoming {
                    payload: "1".into(),
                    delay_ms: 0,
                    dedup_id: None,
                }],
            }),
            Command::QueueConsume(QueueConsume {
                topic: "t".into(),
                consumer: "c".into(),
                max: 1,
                visibility_ms: Some(10),
            }),
        ],
    });
    assert!(r.0.iter().all(Result::is_ok), "{r:?}");
    s.apply(Request {
        now_ms: 100,
        cmds: vec![Command::Tick],
    });
    assert!(
        matches!(&s.outbox[..], [Event::DeadLetter { topic, attempt: 1, at_ms: 100, .. }] if topic == "t"),
        "{:?}",
        s.outbox
    );
}

#[test]
fn errors_keep_their_details() {
    let e = CmdError::new(ErrorCode::Conflict, "x")
        .with_details(serde_json::json!({"current_version": 3}));
    let bytes = bincode::serialize(&e).unwrap();
    let back: CmdError = bincode::deserialize(&bytes).unwrap();
    assert_eq!(back.to_api().details["current_version"], 3);
}

fn enqueue(topic: &str) -> Command {
    Command::QueueEnqueue(QueueEnqueue {
        topic: topic.into(),
        msgs: vec![queue::Incoming {
            payload: "1".into(),
            delay_ms: 0,
            dedup_id: None,
        }],
    })
}

fn one(s: &mut StateData, cmd: Command) -> CmdOutput {
    s.apply(Request {
        now_ms: 1,
        cmds: vec![cmd],
    })
    .0
    .remove(0)
}

#[test]
fn a_shard_map_is_refused_while_the_control_group_holds_messages() {
    let map = dsync_api::shards::ShardMap::initial(&[1, 2, 3], 3, 3).unwrap();
    let set = || Command::SetShards(SetShards { map: map.clone() });
    let mut s = StateData::default();
    one(&mut s, enqueue("old")).unwrap();
    let err = one(&mut s, set()).unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    assert!(err.message.contains("1 unacked"), "{err:?}");
    assert!(s.shards.groups.is_empty());
}

#[test]
fn once_sharded_the_control_group_serves_no_topic_and_keeps_its_map() {
    let map = dsync_api::shards::ShardMap::initial(&[1, 2, 3], 3, 3).unwrap();
    let mut s = StateData::default();
    one(&mut s, Command::SetShards(SetShards { map: map.clone() })).unwrap();
    assert_eq!(s.shards, map);
    // The same map again is a no-op (a retried init); another is resharding.
    one(&mut s, Command::SetShards(SetShards { map: map.clone() })).unwrap();
    let other = dsync_api::shards::ShardMap::initial(&[1, 2, 3], 4, 3).unwrap();
    let err = one(&mut s, Command::SetShards(SetShards { map: other })).unwrap_err();
    assert!(err.message.contains("dsync shard reshard"), "{err:?}");
    let err = one(&mut s, enqueue("t")).unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert!(err.message.contains("queue group"), "{err:?}");
    assert_eq!(s.queues.topic_count(), 0);
}
