//! The handoff steps of a queue group, one at a time and repeated.

use crate::state::queue::Incoming;
use crate::state::Request;

use super::*;
use crate::state::{QueueConsume, QueueEnqueue};

fn apply(st: &mut StateData, cmd: Command) -> Result<CmdValue, CmdError> {
    let mut out = st.apply(Request {
        now_ms: 1_000,
        cmds: vec![cmd],
    });
    out.0.remove(0)
}

fn enqueue(topic: &str) -> Command {
    Command::QueueEnqueue(QueueEnqueue {
        topic: topic.into(),
        msgs: vec![Incoming {
            payload: "1".into(),
            delay_ms: 0,
            dedup_id: None,
        }],
    })
}

fn step(step: HandoffStep) -> Command {
    Command::Handoff(crate::state::Handoff { step })
}

fn details(e: CmdError) -> serde_json::Value {
    serde_json::from_str(e.details.as_deref().unwrap_or("null")).unwrap()
}

#[test]
fn a_topic_moves_whole_and_its_old_group_sends_writers_on() {
    let (mut src, mut dst) = (StateData::default(), StateData::default());
    for _ in 0..3 {
        apply(&mut src, enqueue("t")).unwrap();
    }
    let freeze = HandoffStep::Freeze {
        job: 1,
        topic: "t".into(),
        to: 2,
    };
    apply(&mut src, step(freeze.clone())).unwrap();
    apply(&mut src, step(freeze)).unwrap();
    let e = apply(&mut src, enqueue("t")).unwrap_err();
    assert_eq!(details(e)["moving"]["group"], 2);
    let e = apply(&mut src, enqueue("t.dlq")).unwrap_err();
    assert!(
        details(e).get("moving").is_some(),
        "dead letters freeze too"
    );

    let (parts, next) = src.queues.export_page("t", 0, 1 << 20);
    assert!(next.is_none());
    let page = bincode::serialize(&parts).unwrap();
    let part = |seq, attempt| {
        step(HandoffStep::ImportPart {
            job: 1,
            topic: "t".into(),
            seq,
            attempt,
            page: page.clone(),
        })
    };
    let commit = |attempt, pages| {
        step(HandoffStep::ImportCommit {
            job: 1,
            topic: "t".into(),
            revision: 500,
            attempt,
            pages,
        })
    };
    apply(&mut dst, part(0, 7)).unwrap();
    apply(&mut dst, part(1, 7)).unwrap();
    // A successor's copy starts over; the first one's late steps fail.
    apply(&mut dst, part(0, 8)).unwrap();
    assert!(
        apply(&mut dst, part(1, 7)).is_err(),
        "another attempt's page"
    );
    assert!(
        apply(&mut dst, commit(7, 2)).is_err(),
        "another attempt's commit"
    );
    apply(&mut dst, part(1, 8)).unwrap();
    apply(&mut dst, part(1, 8)).unwrap(); // a repeat changes nothing
    assert!(apply(&mut dst, part(3, 8)).is_err(), "a gap is refused");
    assert!(
        apply(&mut dst, commit(8, 1)).is_err(),
        "not every page staged"
    );
    // Page 1 carried page 0's messages again: the same ids, one copy.
    assert_eq!(apply(&mut dst, commit(8, 2)).unwrap(), CmdValue::Count(3));
    assert_eq!(apply(&mut dst, commit(8, 2)).unwrap(), CmdValue::Count(0));
    assert_eq!(dst.queues.get("t"), src.queues.get("t"));
    assert!(dst.revision >= 500);

    let drop = |to| {
        step(HandoffStep::Drop {
            job: 1,
            topic: "t".into(),
            to,
            epoch: 9,
        })
    };
    assert!(apply(&mut src, drop(3)).is_err(), "frozen for group 2");
    apply(&mut src, drop(2)).unwrap();
    apply(&mut src, drop(2)).unwrap(); // repeated after a crash
    assert!(src.queues.get("t").is_none());
    let e = apply(&mut src, enqueue("t")).unwrap_err();
    assert_eq!(details(e)["moved"]["epoch"], 9);
    assert!(src.queues.get("t").is_none(), "not created again");
}

#[test]
fn after_begin_new_topics_of_other_groups_wait() {
    let mut st = StateData::default();
    apply(&mut st, enqueue("old")).unwrap();
    let target = ShardMap::initial(&[1], 4, 1).unwrap();
    let mine = target.group_of("old");
    apply(
        &mut st,
        step(HandoffStep::Begin {
            job: 1,
            group: mine,
            target: target.clone(),
        }),
    )
    .unwrap();
    apply(&mut st, enqueue("old")).unwrap();
    let (here, elsewhere): (Vec<String>, Vec<String>) = (0..40)
        .map(|i| format!("new-{i}"))
        .partition(|t| target.group_of(t) == mine);
    assert!(!here.is_empty() && !elsewhere.is_empty());
    apply(&mut st, enqueue(&here[0])).unwrap();
    let e = apply(&mut st, enqueue(&elsewhere[0])).unwrap_err();
    assert!(details(e).get("moving").is_some());
}

#[test]
fn a_frozen_topic_keeps_still_while_others_tick() {
    let mut st = StateData::default();
    apply(&mut st, enqueue("a")).unwrap();
    apply(&mut st, enqueue("b")).unwrap();
    for t in ["a", "b"] {
        apply(
            &mut st,
            Command::QueueConsume(QueueConsume {
                topic: t.into(),
                consumer: "c".into(),
                max: 1,
                visibility_ms: Some(10),
            }),
        )
        .unwrap();
    }
    apply(
        &mut st,
        step(HandoffStep::Freeze {
            job: 1,
            topic: "a".into(),
            to: 2,
        }),
    )
    .unwrap();
    let mut out = st.apply(Request {
        now_ms: 5_000,
        cmds: vec![Command::Tick],
    });
    out.0.remove(0).unwrap();
    assert_eq!(st.queues.ready_count("b"), 1, "b's delivery expired");
    assert_eq!(st.queues.ready_count("a"), 0, "a is frozen");
    assert!(st.next_queue_deadline().is_none_or(|d| d > 5_000));
}
