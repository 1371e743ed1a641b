//! One lock with 10,000 queued requests, and the derived indexes against
//! brute force (and against a copy rebuilt from its snapshot form).

use dsync_api::locks::LockMode::{self, Exclusive, Shared};
use dsync_api::ErrorCode;
use proptest::prelude::*;

use super::{Acquired, Ctx, LockTable};

const WAITERS: usize = 10_000;

fn ctx<'a>(now: u64, rev: &'a mut u64, events: &'a mut Vec<dsync_api::events::Event>) -> Ctx<'a> {
    Ctx {
        now_ms: now,
        revision: rev,
        events,
    }
}

#[test]
fn ten_thousand_waiters_on_one_lock() {
    let mut t = LockTable::default();
    let (mut rev, mut ev) = (0, Vec::new());
    let mut c = ctx(0, &mut rev, &mut ev);
    let Ok(Acquired::Granted(first)) = t.acquire("L", "h", Exclusive, 60_000, 0, &mut c) else {
        panic!("free lock not granted")
    };
    // Alternating runs: 10 exclusive, then 10 shared, …
    for i in 0..WAITERS {
        let mode = if (i / 10) % 2 == 0 { Exclusive } else { Shared };
        // Deadlines spread out: the first half expires at 1,000 ms.
        let wait = if i < WAITERS / 2 { 1_000 } else { 100_000 };
        let got = t.acquire("L", &format!("w{i}"), mode, 60_000, wait, &mut c);
        assert!(matches!(got, Ok(Acquired::Queued { .. })), "w{i}: {got:?}");
    }
    assert_eq!(t.counts(), (1, WAITERS));
    assert_eq!(t.next_deadline(), Some(1_000));
    // The graph has edges linear in the queue (each request: the holder,
    // plus the request ahead, or the run of shared ones ahead).
    let edges = t.edges();
    assert!(edges.len() <= 3 * WAITERS, "{} edges", edges.len());
    assert!(edges.iter().all(|e| e.lock == "L"));

    // The holder waiting for a lock held by the last waiter closes a cycle;
    // the reported one is the short one through the holder.
    t.acquire("M", "w9999", Exclusive, 60_000, 0, &mut c)
        .unwrap();
    let err = t
        .acquire("M", "h", Exclusive, 60_000, 5_000, &mut c)
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Deadlock);
    assert_eq!(
        err.to_api().details["cycle"],
        serde_json::json!(["h", "w9999"])
    );

    // Withdrawing from the middle keeps the order of the rest.
    t.cancel("L", "w5000", 0, &mut c);
    assert_eq!(t.counts(), (2, WAITERS - 1));
    assert!(t.get("L").unwrap().waiter_of("w5000").is_none());
    assert_eq!(
        t.take_dequeued(),
        vec![("L".to_string(), "w5000".to_string())]
    );

    // Release: the next in FIFO order is granted, with a larger token.
    t.release("L", "h", first.token, &mut c).unwrap();
    let l = t.get("L").unwrap();
    let w0 = l.holder_of("w0").expect("w0 granted");
    assert!(w0.token > first.token);
    assert_eq!(l.waiters().next().unwrap().owner, "w1");
    let w0 = w0.token;
    assert_eq!(t.take_dequeued(), vec![("L".to_string(), "w0".to_string())]);

    // Expiry at 1,000 ms drops the first half of the queue (w1..w4999);
    // w0 keeps its grant; then releasing w0 grants w5001..w5009 one by one
    // (exclusive), so the head is w5001.
    let mut c = ctx(1_000, &mut rev, &mut ev);
    t.tick(&mut c);
    assert_eq!(t.counts(), (2, WAITERS / 2 - 1));
    assert_eq!(t.take_dequeued().len(), WAITERS / 2 - 1);
    t.release("L", "w0", w0, &mut c).unwrap();
    assert!(t.get("L").unwrap().holder_of("w5001").is_some());

    // A shared run at the head is granted together.
    for i in 5001..5010 {
        let tok = t
            .get("L")
            .unwrap()
            .holder_of(&format!("w{i}"))
            .unwrap()
            .token;
        t.release("L", &format!("w{i}"), tok, &mut c).unwrap();
    }
    let l = t.get("L").unwrap();
    assert_eq!(l.holder_count(), 10, "w5010..w5019 share the lock");
    assert!(l.holders().all(|h| h.mode == Shared));

    // Snapshot form: the same table comes back, indexes rebuilt.
    let bytes = bincode::serialize(&t).unwrap();
    let back: LockTable = bincode::deserialize(&bytes).unwrap();
    assert_eq!(back, t);
    assert_eq!(back.counts(), t.counts());
    assert_eq!(back.next_deadline(), t.next_deadline());
    assert_eq!(back.edges(), t.edges());
}

#[derive(Debug, Clone)]
enum Op {
    Acquire {
        lock: u8,
        owner: u8,
        mode: LockMode,
        wait: u64,
    },
    Release {
        lock: u8,
        owner: u8,
    },
    Cancel {
        lock: u8,
        owner: u8,
    },
    Tick {
        advance: u64,
    },
    Extend,
}

fn op() -> impl Strategy<Value = Op> {
    let mode = prop_oneof![Just(Exclusive), Just(Shared)];
    prop_oneof![
        5 => (0u8..2, 0u8..8, mode, prop_oneof![Just(0u64), 1u64..100])
            .prop_map(|(lock, owner, mode, wait)| Op::Acquire { lock, owner, mode, wait }),
        2 => (0u8..2, 0u8..8).prop_map(|(lock, owner)| Op::Release { lock, owner }),
        1 => (0u8..2, 0u8..8).prop_map(|(lock, owner)| Op::Cancel { lock, owner }),
        1 => (0u64..60).prop_map(|advance| Op::Tick { advance }),
        1 => Just(Op::Extend),
    ]
}

fn run(t: &mut LockTable, op: &Op, now: u64, rev: &mut u64) -> String {
    let mut ev = Vec::new();
    let mut c = ctx(now, rev, &mut ev);
    let out = match *op {
        Op::Acquire {
            lock,
            owner,
            mode,
            wait,
        } => {
            format!(
                "{:?}",
                t.acquire(
                    &format!("L{lock}"),
                    &owner.to_string(),
                    mode,
                    40,
                    wait,
                    &mut c
                )
            )
        }
        Op::Release { lock, owner } => {
            let name = format!("L{lock}");
            let token = t
                .get(&name)
                .and_then(|l| l.holder_of(&owner.to_string()))
                .map_or(u64::MAX, |h| h.token);
            format!("{:?}", t.release(&name, &owner.to_string(), token, &mut c))
        }
        Op::Cancel { lock, owner } => {
            t.cancel(&format!("L{lock}"), &owner.to_string(), 0, &mut c);
            String::new()
        }
        Op::Tick { .. } => {
            t.tick(&mut c);
            String::new()
        }
        Op::Extend => {
            t.extend_leases(7);
            String::new()
        }
    };
    format!("{out} {ev:?} {:?}", t.take_dequeued())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    /// The indexes agree with a scan of the locks, the reduced graph has
    /// the full graph's reachability, and a table rebuilt from its stored
    /// form decides every later command exactly like the original.
    #[test]
    fn indexes_match_brute_force_and_survive_a_snapshot(ops in proptest::collection::vec(op(), 1..80)) {
        let mut t = LockTable::default();
        let mut now = 0;
        let mut rev = 0;
        for op in &ops {
            if let Op::Tick { advance } = op { now += advance; }
            let mut copy: LockTable = bincode::deserialize(&bincode::serialize(&t).unwrap()).unwrap();
            let mut rev2 = rev;
            let got = run(&mut t, op, now, &mut rev);
            let want = run(&mut copy, op, now, &mut rev2);
            prop_assert_eq!(&got, &want, "rebuilt table decided {:?} differently", op);
            prop_assert_eq!(&t, &copy);

            let locks: Vec<_> = t.locks.values().collect();
            let held: usize = locks.iter().map(|l| l.holder_count()).sum();
            let queued: usize = locks.iter().map(|l| l.waiter_count()).sum();
            prop_assert_eq!(t.counts(), (held, queued));
            let next = locks
                .iter()
                .flat_map(|l| l.holders().map(|h| h.expires_at_ms).chain(l.waiters().map(|w| w.deadline_ms)))
                .min();
            prop_assert_eq!(t.next_deadline(), next);
            prop_assert!(locks.iter().all(|l| !l.is_empty()), "empty locks are dropped");

            let (full, reduced) = (t.full_graph(), t.graph());
            for (a, bs) in &reduced {
                for b in bs {
                    prop_assert!(full.get(a).is_some_and(|f| f.contains(b)), "{a} -> {b} is not a wait: {full:?}");
                }
            }
            prop_assert_eq!(super::model_tests::closure(&reduced), super::model_tests::closure(&full));
        }
    }
}

/// Snapshots store the table in the shape it had before the indexes: a
/// list of holders and the queue per lock. Old and new bytes are the same.
#[test]
fn the_stored_form_is_unchanged() {
    use std::collections::{BTreeMap, VecDeque};

    use dsync_api::locks::DeadlockInfo;
    use serde::Serialize;

    use super::{Holder, LockStats, Waiter};

    #[derive(Serialize)]
    struct OldLock {
        holders: Vec<Holder>,
        waiters: VecDeque<Waiter>,
    }
    #[derive(Serialize)]
    struct OldTable {
        locks: BTreeMap<String, OldLock>,
        deadlocks: VecDeque<DeadlockInfo>,
        stats: LockStats,
    }
    let mut t = LockTable::default();
    let (mut rev, mut ev) = (0, Vec::new());
    let mut c = ctx(0, &mut rev, &mut ev);
    t.acquire("L", "a", Shared, 1000, 0, &mut c).unwrap();
    t.acquire("L", "b", Shared, 1000, 0, &mut c).unwrap();
    t.acquire("L", "x", Exclusive, 1000, 500, &mut c).unwrap();
    t.acquire("L", "a", Exclusive, 1000, 500, &mut c).unwrap(); // upgrade: front
    t.acquire("L", "y", Shared, 1000, 500, &mut c).unwrap();
    t.acquire("M", "x", Exclusive, 1000, 0, &mut c).unwrap();
    t.acquire("M", "b", Exclusive, 1000, 500, &mut c)
        .unwrap_err(); // deadlock
    let old = OldTable {
        locks: t
            .locks
            .iter()
            .map(|(n, l)| {
                let lock = OldLock {
                    holders: l.holders().cloned().collect(),
                    waiters: l.waiters().cloned().collect(),
                };
                (n.clone(), lock)
            })
            .collect(),
        deadlocks: t.recent_deadlocks().into(),
        stats: t.stats.clone(),
    };
    assert_eq!(
        old.locks["L"].waiters[0].owner, "a",
        "the upgrade waits first"
    );
    let old_bytes = bincode::serialize(&old).unwrap();
    assert_eq!(bincode::serialize(&t).unwrap(), old_bytes);
    let back: LockTable = bincode::deserialize(&old_bytes).unwrap();
    assert_eq!(back, t);
    assert_eq!(back.edges(), t.edges());
    assert_eq!(back.counts(), (3, 3));
}

/// The chaos run's overlapping grants: a queued request's client went away,
/// its owner got the grant through a retry, and the cancel for the first
/// request, applied late, must not take that grant away.
#[test]
fn a_late_cancel_leaves_the_grant_its_owner_holds_through_a_retry() {
    let mut t = LockTable::default();
    let (mut rev, mut ev) = (0, Vec::new());
    let mut c = ctx(0, &mut rev, &mut ev);
    t.acquire("L", "p3", Exclusive, 60_000, 0, &mut c).unwrap();
    let Ok(Acquired::Queued { seq }) = t.acquire("L", "p1", Exclusive, 60_000, 5_000, &mut c)
    else {
        panic!("p1 should queue")
    };
    let held = t.get("L").unwrap().holder_of("p3").unwrap().token;
    t.release("L", "p3", held, &mut c).unwrap();
    // p1's retry finds the grant that answered its first request.
    let Ok(Acquired::Granted(g)) = t.acquire("L", "p1", Exclusive, 60_000, 5_000, &mut c) else {
        panic!("p1 should hold")
    };
    assert!(g.token > seq);
    t.acquire("L", "p2", Exclusive, 60_000, 5_000, &mut c)
        .unwrap();
    // The first request's handler was dropped; its cancel arrives now.
    t.cancel("L", "p1", seq, &mut c);
    let lock = t.get("L").unwrap();
    assert_eq!(lock.holder_of("p1").map(|h| h.token), Some(g.token));
    assert!(lock.holder_of("p2").is_none(), "p2 granted while p1 holds");
}
