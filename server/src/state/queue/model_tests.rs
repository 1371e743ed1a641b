//! Model test: the queue against a reference model that tracks every
//! message's state in a plain map (visibility, ack, nack, DLQ, dedup, stale
//! receipts), plus "no message lost".

use std::collections::BTreeMap;

use dsync_api::ErrorCode;
use proptest::prelude::*;

use super::{receipt, Incoming, QueueTable};

const MAX_ATTEMPTS: u32 = 3;
const VISIBILITY: u64 = 50;

#[derive(Debug, Clone)]
enum Op {
    Enqueue { delay: bool, dedup: Option<u8> },
    Consume { max: usize },
    Ack { pick: usize, stale: bool },
    Nack { pick: usize },
    Tick { advance: u64 },
    Redrive,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<bool>(), proptest::option::of(0u8..3)).prop_map(|(delay, dedup)| Op::Enqueue { delay, dedup }),
        3 => (1usize..4).prop_map(|max| Op::Consume { max }),
        2 => (0usize..8, any::<bool>()).prop_map(|(pick, stale)| Op::Ack { pick, stale }),
        1 => (0usize..8).prop_map(|pick| Op::Nack { pick }),
        2 => (0u64..80).prop_map(|advance| Op::Tick { advance }),
        1 => Just(Op::Redrive),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum S {
    Ready,
    Delayed(u64),
    InFlight { delivery: u64, deadline: u64 },
    Acked,
    Dead,
}

#[derive(Default)]
struct Model {
    now: u64,
    /// Original message id → (state, attempts). Redriven dead letters come
    /// back under new ids; the model follows them by payload.
    msgs: BTreeMap<u64, (S, u32)>,
    dedup: BTreeMap<u8, (u64, u64)>,
    next: u64,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn queue_matches_the_reference_model(ops in proptest::collection::vec(op(), 1..80)) {
        let mut q = QueueTable::default();
        q.configure("t", &dsync_api::queue::TopicSettings { max_attempts: Some(MAX_ATTEMPTS), visibility_ms: Some(VISIBILITY), ..Default::default() });
        let mut m = Model::default();
        let mut rev = 0u64;
        // Receipts handed out, newest last: (receipt, payload id).
        let mut receipts: Vec<(String, u64)> = Vec::new();
        // Current topic id → payload id (redrive renumbers).
        let mut current: BTreeMap<u64, u64> = BTreeMap::new();
        // Payload id → the id its enqueue returned.
        let mut first_id: BTreeMap<u64, u64> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Enqueue { delay, dedup } => {
                    let expected_dup = dedup.and_then(|d| m.dedup.get(&d).filter(|(_, until)| *until > m.now).map(|(id, _)| *id));
                    m.next += 1;
                    let pid = m.next;
                    let inc = Incoming { payload: pid.to_string(), delay_ms: if delay { 30 } else { 0 }, dedup_id: dedup.map(|d| d.to_string()) };
                    let ids = q.enqueue("t", vec![inc], m.now).unwrap();
                    match expected_dup {
                        Some(first) => {
                            // Same id as the first enqueue; nothing new.
                            prop_assert_eq!(Some(ids[0]), first_id.get(&first).copied());
                        }
                        None => {
                            current.insert(ids[0], pid);
                            first_id.insert(pid, ids[0]);
                            m.msgs.insert(pid, (if delay { S::Delayed(m.now + 30) } else { S::Ready }, 0));
                            if let Some(d) = dedup { m.dedup.insert(d, (pid, m.now + dsync_api::queue::DEDUP_WINDOW_MS)); }
                        }
                    }
                }
                Op::Consume { max } => {
                    let got = q.consume("t", "c", max, None, m.now, &mut rev);
                    // The oldest ready messages, in order.
                    let mut ready: Vec<u64> = current.iter().filter(|(_, p)| m.msgs[p].0 == S::Ready).map(|(id, _)| *id).collect();
                    ready.truncate(max);
                    prop_assert_eq!(got.iter().map(|f| f.msg.id).collect::<Vec<_>>(), ready);
                    for f in got {
                        let pid = current[&f.msg.id];
                        let e = m.msgs.get_mut(&pid).unwrap();
                        e.1 += 1;
                        prop_assert_eq!(f.msg.attempt, e.1);
                        e.0 = S::InFlight { delivery: f.delivery, deadline: m.now + VISIBILITY };
                        receipts.push((receipt(f.msg.id, f.delivery), pid));
                    }
                }
                Op::Ack { .. } | Op::Nack { .. } if receipts.is_empty() => {}
                Op::Ack { pick, stale } => {
                    let (r, pid) = receipts[pick % receipts.len()].clone();
                    let r = if stale { format!("{}-999999", r.split('-').next().unwrap()) } else { r };
                    let valid = matches!(m.msgs[&pid].0, S::InFlight { delivery, .. } if receipt(current.iter().find(|(_, p)| **p == pid).map(|(i, _)| *i).unwrap_or(0), delivery) == r);
                    match q.ack("t", &[r]) {
                        Ok(n) => { prop_assert!(valid); prop_assert_eq!(n, 1); m.msgs.get_mut(&pid).unwrap().0 = S::Acked; }
                        Err(e) => { prop_assert!(!valid, "valid receipt refused: {:?}", e); prop_assert_eq!(e.code, ErrorCode::StaleReceipt); }
                    }
                }
                Op::Nack { pick } => {
                    let (r, pid) = receipts[pick % receipts.len()].clone();
                    let valid = matches!(m.msgs[&pid].0, S::InFlight { delivery, .. } if r.ends_with(&format!("-{delivery}")) && current.get(&r.split('-').next().unwrap().parse::<u64>().unwrap()) == Some(&pid));
                    match q.nack("t", &[r], 0, m.now) {
                        Ok(_) => {
                            prop_assert!(valid);
                            let e = m.msgs.get_mut(&pid).unwrap();
                            e.0 = if e.1 >= MAX_ATTEMPTS { S::Dead } else { S::Ready };
                        }
                        Err(e) => { prop_assert!(!valid); prop_assert_eq!(e.code, ErrorCode::StaleReceipt); }
                    }
                }
                Op::Tick { advance } => {
                    m.now += advance;
                    q.tick(m.now);
                    for e in m.msgs.values_mut() {
                        match e.0 {
                            S::Delayed(at) if at <= m.now => e.0 = S::Ready,
                            S::InFlight { deadline, .. } if deadline <= m.now => {
                                e.0 = if e.1 >= MAX_ATTEMPTS { S::Dead } else { S::Ready };
                            }
                            _ => {}
                        }
                    }
                }
                Op::Redrive => {
                    let dead: Vec<u64> = q.get("t.dlq").map(|d| d.ready.values().map(|x| x.payload.parse().unwrap()).collect()).unwrap_or_default();
                    let moved = q.redrive("t");
                    prop_assert_eq!(moved as usize, dead.len());
                    for pid in dead {
                        current.retain(|_, p| *p != pid);
                        let e = m.msgs.get_mut(&pid).unwrap();
                        prop_assert_eq!(e.0, S::Dead);
                        *e = (S::Ready, 0);
                    }
                    // Redriven messages got new ids at the back of the topic.
                    let t = q.get("t").unwrap();
                    for (id, msg) in t.ready.iter() {
                        current.insert(*id, msg.payload.parse().unwrap());
                    }
                }
            }
            // Same counts as the model, and every message is somewhere.
            let t = q.get("t").unwrap();
            let count = |f: &dyn Fn(&S) -> bool| m.msgs.values().filter(|e| f(&e.0)).count();
            prop_assert_eq!(t.ready.len(), count(&|s| *s == S::Ready));
            prop_assert_eq!(t.delayed.len(), count(&|s| matches!(s, S::Delayed(_))));
            prop_assert_eq!(t.in_flight.len(), count(&|s| matches!(s, S::InFlight { .. })));
            let dead = q.get("t.dlq").map_or(0, |d| d.ready.len());
            prop_assert_eq!(dead, count(&|s| *s == S::Dead));
            prop_assert_eq!(t.acked_total as usize, count(&|s| *s == S::Acked));
        }
    }
}
