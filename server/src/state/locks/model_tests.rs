//! Model test: the lock table against a deliberately simple reference model
//! of one lock (compatibility, FIFO, shared batching, upgrade, expiry,
//! deadlock on crossed upgrades), plus the safety invariants.

use dsync_api::locks::LockMode::{self, Exclusive, Shared};
use dsync_api::ErrorCode;
use proptest::prelude::*;

use super::{Acquired, Ctx, LockTable};

#[derive(Debug, Clone)]
enum Op {
    Acquire {
        owner: u8,
        mode: LockMode,
        wait: bool,
        short_ttl: bool,
    },
    Release {
        owner: u8,
    },
    Cancel {
        owner: u8,
    },
    Tick {
        advance: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, prop_oneof![Just(Exclusive), Just(Shared)], any::<bool>(), any::<bool>())
            .prop_map(|(owner, mode, wait, short_ttl)| Op::Acquire { owner, mode, wait, short_ttl }),
        2 => (0u8..4).prop_map(|owner| Op::Release { owner }),
        1 => (0u8..4).prop_map(|owner| Op::Cancel { owner }),
        1 => (0u64..60).prop_map(|advance| Op::Tick { advance }),
    ]
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Outcome {
    Granted,
    Queued,
    Busy,
    Deadlock,
    Stale,
    Done,
}

/// The reference: plain vectors, rules written as directly as possible.
#[derive(Default)]
struct Model {
    now: u64,
    holders: Vec<(u8, LockMode, u64)>, // owner, mode, expires
    queue: Vec<(u8, LockMode, bool, u64, u64)>, // owner, mode, upgrade, deadline, ttl
}

impl Model {
    fn compatible(&self, owner: u8, mode: LockMode) -> bool {
        self.holders
            .iter()
            .all(|&(o, m, _)| o == owner || (m == Shared && mode == Shared))
    }

    fn settle(&mut self) {
        loop {
            let Some(&(o, mode, upgrade, _, ttl)) = self.queue.first() else {
                return;
            };
            let holds = self.holders.iter().any(|h| h.0 == o);
            let ok = if upgrade && holds {
                self.holders.iter().all(|h| h.0 == o)
            } else if mode == Exclusive {
                self.holders.is_empty()
            } else {
                self.holders.iter().all(|h| h.1 == Shared)
            };
            if !ok {
                return;
            }
            self.queue.remove(0);
            self.holders.retain(|h| h.0 != o);
            self.holders.push((o, mode, self.now + ttl));
        }
    }

    fn acquire(&mut self, o: u8, mode: LockMode, wait: bool, ttl: u64) -> Outcome {
        if let Some(h) = self.holders.iter_mut().find(|h| h.0 == o) {
            if h.1 == mode || h.1 == Exclusive {
                h.2 = self.now + ttl;
                return Outcome::Granted;
            }
            // Upgrade; asking again while one is queued is the same request.
            if self.queue.iter().any(|q| q.0 == o) {
                return Outcome::Queued;
            }
            if self.holders.len() == 1 {
                self.holders[0] = (o, Exclusive, self.now + ttl);
                return Outcome::Granted;
            }
            if !wait {
                return Outcome::Busy;
            }
            // Another holder already waiting to upgrade waits for us: crossed upgrades.
            let holders = &self.holders;
            if self
                .queue
                .iter()
                .any(|q| q.2 && q.0 != o && holders.iter().any(|h| h.0 == q.0))
            {
                return Outcome::Deadlock;
            }
            self.queue.insert(0, (o, mode, true, self.now + 1000, ttl));
            return Outcome::Queued;
        }
        if self.queue.iter().any(|q| q.0 == o) {
            return Outcome::Queued;
        }
        if self.queue.is_empty() && self.compatible(o, mode) {
            self.holders.push((o, mode, self.now + ttl));
            return Outcome::Granted;
        }
        if !wait {
            return Outcome::Busy;
        }
        self.queue.push((o, mode, false, self.now + 1000, ttl));
        Outcome::Queued
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn lock_table_matches_the_reference_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut table = LockTable::default();
        let mut model = Model::default();
        let mut revision = 0u64;
        let mut tokens: std::collections::BTreeMap<u8, u64> = Default::default();
        let mut last_token = 0u64;
        let mut seqs: std::collections::BTreeMap<u8, u64> = Default::default();
        for op in ops {
            let now = model.now;
            let mut ctx = Ctx { now_ms: now, revision: &mut revision, events: &mut Vec::new() };
            let (got, want) = match op {
                Op::Acquire { owner, mode, wait, short_ttl } => {
                    let ttl = if short_ttl { 20 } else { 500 };
                    let got = match table.acquire("L", &owner.to_string(), mode, ttl, if wait { 1000 } else { 0 }, &mut ctx) {
                        Ok(Acquired::Granted(h)) => { tokens.insert(owner, h.token); Outcome::Granted }
                        Ok(Acquired::Queued { seq }) => { seqs.entry(owner).or_insert(seq); Outcome::Queued }
                        Err(e) if e.code == ErrorCode::LockBusy => Outcome::Busy,
                        Err(e) if e.code == ErrorCode::Deadlock => Outcome::Deadlock,
                        Err(e) => panic!("unexpected {e:?}"),
                    };
                    (got, model.acquire(owner, mode, wait, ttl))
                }
                Op::Release { owner } => {
                    let token = tokens.get(&owner).copied().unwrap_or(u64::MAX);
                    let got = match table.release("L", &owner.to_string(), token, &mut ctx) {
                        Ok(()) => Outcome::Done,
                        Err(e) => { prop_assert_eq!(e.code, ErrorCode::StaleToken); Outcome::Stale }
                    };
                    let want = if model.holders.iter().any(|h| h.0 == owner) {
                        model.holders.retain(|h| h.0 != owner);
                        model.settle();
                        Outcome::Done
                    } else { Outcome::Stale };
                    (got, want)
                }
                Op::Cancel { owner } => {
                    let since = seqs.remove(&owner).unwrap_or(u64::MAX);
                    table.cancel("L", &owner.to_string(), since, &mut ctx);
                    // Only a queued request is withdrawn; a grant stays.
                    model.queue.retain(|q| q.0 != owner);
                    model.settle();
                    (Outcome::Done, Outcome::Done)
                }
                Op::Tick { advance } => {
                    model.now += advance;
                    let mut ctx = Ctx { now_ms: model.now, revision: &mut revision, events: &mut Vec::new() };
                    table.tick(&mut ctx);
                    let now = model.now;
                    model.holders.retain(|h| h.2 > now);
                    model.queue.retain(|q| q.3 > now);
                    model.settle();
                    (Outcome::Done, Outcome::Done)
                }
            };
            prop_assert_eq!(got, want, "outcome of {:?}", op);

            // Same holders and queue as the model.
            let lock = table.get("L");
            let mut holders: Vec<(String, LockMode)> = lock.map(|l| l.holders().map(|h| (h.owner.clone(), h.mode)).collect()).unwrap_or_default();
            holders.sort();
            let mut want_h: Vec<(String, LockMode)> = model.holders.iter().map(|h| (h.0.to_string(), h.1)).collect();
            want_h.sort();
            prop_assert_eq!(holders, want_h);
            let queue: Vec<(String, LockMode)> = lock.map(|l| l.waiters().map(|w| (w.owner.clone(), w.mode)).collect()).unwrap_or_default();
            let want_q: Vec<(String, LockMode)> = model.queue.iter().map(|q| (q.0.to_string(), q.1)).collect();
            prop_assert_eq!(queue, want_q);

            // Safety: one exclusive holder at most, alone; tokens only grow.
            if let Some(l) = lock {
                let ex = l.holders().filter(|h| h.mode == Exclusive).count();
                prop_assert!(ex <= 1 && (ex == 0 || l.holder_count() == 1), "{:?}", l);
                for h in l.holders() {
                    tokens.insert(h.owner.parse().unwrap(), h.token);
                    prop_assert!(h.token <= revision);
                }
                let newest = l.holders().map(|h| h.token).max().unwrap_or(0);
                prop_assert!(newest >= last_token || l.holders().all(|h| h.token <= last_token));
                last_token = last_token.max(newest);
            }
            for owner in 0u8..4 {
                let o = owner.to_string();
                if !table.get("L").is_some_and(|l| l.waiters().any(|w| w.owner == o)) { seqs.remove(&owner); }
            }
        }
    }
}

#[test]
fn fifo_shared_batching_and_no_writer_starvation() {
    let mut t = LockTable::default();
    let mut rev = 0;
    let mut events = Vec::new();
    let mut ctx = Ctx {
        now_ms: 0,
        revision: &mut rev,
        events: &mut events,
    };
    let Ok(Acquired::Granted(a)) = t.acquire("L", "a", Shared, 1000, 0, &mut ctx) else {
        panic!()
    };
    assert!(matches!(
        t.acquire("L", "w", Exclusive, 1000, 1000, &mut ctx),
        Ok(Acquired::Queued { .. })
    ));
    // A later shared request waits behind the queued writer.
    assert!(matches!(
        t.acquire("L", "b", Shared, 1000, 1000, &mut ctx),
        Ok(Acquired::Queued { .. })
    ));
    assert!(matches!(
        t.acquire("L", "c", Shared, 1000, 1000, &mut ctx),
        Ok(Acquired::Queued { .. })
    ));
    t.release("L", "a", a.token, &mut ctx).unwrap();
    let l = t.get("L").unwrap();
    assert_eq!(
        l.holders().map(|h| h.owner.as_str()).collect::<Vec<_>>(),
        ["w"]
    );
    let w = l.holder_of("w").unwrap().token;
    t.release("L", "w", w, &mut ctx).unwrap();
    // Both shared waiters are granted together, with fresh, larger tokens.
    let l = t.get("L").unwrap();
    let mut owners: Vec<_> = l.holders().map(|h| h.owner.as_str()).collect();
    owners.sort();
    assert_eq!(owners, ["b", "c"]);
    assert!(l.holders().all(|h| h.token > w));
}

#[test]
fn cross_lock_deadlocks_are_refused_with_the_cycle() {
    let mut t = LockTable::default();
    let mut rev = 0;
    let mut events = Vec::new();
    let mut ctx = Ctx {
        now_ms: 0,
        revision: &mut rev,
        events: &mut events,
    };
    for (o, l) in [("a", "L1"), ("b", "L2"), ("c", "L3")] {
        t.acquire(l, o, Exclusive, 1000, 0, &mut ctx).unwrap();
    }
    assert!(matches!(
        t.acquire("L2", "a", Exclusive, 1000, 1000, &mut ctx),
        Ok(Acquired::Queued { .. })
    ));
    assert!(matches!(
        t.acquire("L3", "b", Exclusive, 1000, 1000, &mut ctx),
        Ok(Acquired::Queued { .. })
    ));
    let err = t
        .acquire("L1", "c", Exclusive, 1000, 1000, &mut ctx)
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Deadlock);
    assert_eq!(
        err.to_api().details["cycle"],
        serde_json::json!(["c", "a", "b"])
    );
    assert_eq!(t.recent_deadlocks().len(), 1);
    assert!(
        t.get("L1").unwrap().waiter_count() == 0,
        "refused request is not queued"
    );
}

#[derive(Debug, Clone)]
enum MultiOp {
    Acquire { lock: u8, owner: u8, mode: LockMode },
    Release { lock: u8, owner: u8 },
}

fn multi_op() -> impl Strategy<Value = MultiOp> {
    prop_oneof![
        3 => (0u8..3, 0u8..4, prop_oneof![Just(Exclusive), Just(Shared)])
            .prop_map(|(lock, owner, mode)| MultiOp::Acquire { lock, owner, mode }),
        1 => (0u8..3, 0u8..4).prop_map(|(lock, owner)| MultiOp::Release { lock, owner }),
    ]
}

/// Brute force: every (a, b) such that a reaches b in the explicit graph.
pub(super) fn closure(g: &super::graph::Graph) -> std::collections::BTreeSet<(String, String)> {
    let names: Vec<&String> = g.keys().chain(g.values().flatten()).collect();
    let mut reach: std::collections::BTreeSet<(String, String)> = Default::default();
    for (a, bs) in g {
        for b in bs {
            reach.insert((a.clone(), b.clone()));
        }
    }
    loop {
        let mut grew = false;
        for k in &names {
            let pairs: Vec<_> = reach.iter().cloned().collect();
            for (a, b) in &pairs {
                if b == *k {
                    for (c, d) in &pairs {
                        if c == *k && reach.insert((a.clone(), d.clone())) {
                            grew = true;
                        }
                    }
                }
            }
        }
        if !grew {
            break;
        }
    }
    reach
}

fn has_cycle(g: &super::graph::Graph) -> bool {
    closure(g).iter().any(|(a, b)| a == b)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    /// The table's implicit cycle search against the explicit graph:
    /// every refused request names a real cycle, and every accepted wait
    /// leaves the graph acyclic.
    #[test]
    fn deadlock_refusals_are_sound_and_complete(ops in proptest::collection::vec(multi_op(), 1..40)) {
        let mut t = LockTable::default();
        let mut rev = 0;
        let mut tokens: std::collections::BTreeMap<(u8, u8), u64> = Default::default();
        for op in ops {
            let before = t.full_graph();
            let mut ctx = Ctx { now_ms: 0, revision: &mut rev, events: &mut Vec::new() };
            match op {
                MultiOp::Acquire { lock, owner, mode } => {
                    let name = format!("L{lock}");
                    match t.acquire(&name, &owner.to_string(), mode, 1000, 1000, &mut ctx) {
                        Ok(Acquired::Granted(h)) => { tokens.insert((lock, owner), h.token); }
                        Ok(Acquired::Queued { .. }) => {}
                        Err(e) => {
                            prop_assert_eq!(e.code, ErrorCode::Deadlock);
                            let cycle: Vec<String> = serde_json::from_value(e.to_api().details["cycle"].clone()).unwrap();
                            prop_assert_eq!(&cycle[0], &owner.to_string());
                            // The requester's first wait is on someone at this lock…
                            let l = t.get(&name).unwrap();
                            prop_assert!(l.holders().any(|h| h.owner == cycle[1]) || l.waiters().any(|w| w.owner == cycle[1]));
                            // …and every other step is an existing wait.
                            for w in 1..cycle.len() {
                                let next = &cycle[(w + 1) % cycle.len()];
                                prop_assert!(before.get(&cycle[w]).is_some_and(|s| s.contains(next)), "{:?}", cycle);
                            }
                        }
                    }
                }
                MultiOp::Release { lock, owner } => {
                    if let Some(tok) = tokens.remove(&(lock, owner)) {
                        let _ = t.release(&format!("L{lock}"), &owner.to_string(), tok, &mut ctx);
                    }
                }
            }
            for l in 0u8..3 {
                if let Some(lk) = t.get(&format!("L{l}")) {
                    for h in lk.holders() { tokens.insert((l, h.owner.parse().unwrap()), h.token); }
                }
            }
            let (full, reduced) = (t.full_graph(), t.graph());
            prop_assert!(!has_cycle(&full), "accepted waits formed a cycle: {:?}", full);
            prop_assert_eq!(closure(&reduced), closure(&full), "reduced edges {:?} lose waits of {:?}", reduced, full);
        }
    }
}
