//! A Wing–Gong–Lowe style linearizability checker for read/write/CAS
//! registers (the search porcupine and Knossos do), with memoized states.
//!
//! Linearizability is local, so a history of several keys is checked one key
//! at a time. An operation whose outcome is unknown (the client timed out or
//! the connection broke) may take effect at any point after its call, or
//! never: it has no return bound and need not be linearized.

use std::collections::{BTreeMap, HashSet};

/// A register value; `None` is "absent" (never written or deleted).
pub type Value = Option<String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Write(Value),
    /// A read and the value it returned.
    Read(Value),
    /// A compare-and-set from `expect` to `new` that was acknowledged (or,
    /// with an unknown outcome, may have taken effect).
    Cas {
        expect: Value,
        new: Value,
    },
    /// A compare-and-set the store refused: the value was not `expect`.
    CasRefused {
        expect: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub key: String,
    pub kind: Kind,
    /// When the client sent it (any monotonic unit, e.g. µs since start).
    pub call: u64,
    /// When the client got the answer; `None` if the outcome is unknown.
    pub ret: Option<u64>,
    /// Free text for failure reports (client, node, what it saw); ignored
    /// by the checker.
    pub note: String,
}

/// The first key whose history cannot be linearized, with its operations.
#[derive(Debug)]
pub struct Violation {
    pub key: String,
    pub ops: Vec<Op>,
}

/// Most search states the exhaustive pass visits before it gives up and
/// calls the key undecided (see [`verdict`]).
const FULL_SEARCH_BUDGET: usize = 2_000_000;

/// Checks every key's history; every key starts at `None`.
pub fn check(history: &[Op]) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&str, Vec<Op>> = BTreeMap::new();
    for op in history {
        by_key.entry(&op.key).or_default().push(op.clone());
    }
    for (key, ops) in by_key {
        if !check_register(&ops, None) {
            return Err(Violation {
                key: key.to_string(),
                ops,
            });
        }
    }
    Ok(())
}

/// Whether one register's history is linearizable from `init`; unknown
/// (undecided) counts as not.
pub fn check_register(ops: &[Op], init: Value) -> bool {
    verdict(ops, init) == Some(true)
}

/// Whether one register's history is linearizable from `init`: `None` when
/// the exhaustive pass ran out of its budget of states without finding a
/// linearization, which is no proof either way (many unknown-outcome writes,
/// as after killing every node at once, can exceed it).
pub fn verdict(ops: &[Op], init: Value) -> Option<bool> {
    // Fast pass: drop the unknown writes whose value nobody observed. A
    // linearization without them is one where they never took effect, which
    // an unknown outcome allows, so success here is final. Failure is not
    // when a refused CAS needs such a write to have changed the value: then
    // the exhaustive pass decides.
    let observed: HashSet<&Value> = ops
        .iter()
        .filter(|o| o.ret.is_some())
        .filter_map(|o| match &o.kind {
            Kind::Read(v) | Kind::Cas { expect: v, .. } => Some(v),
            Kind::Write(_) | Kind::CasRefused { .. } => None,
        })
        .collect();
    let known = |o: &&Op| o.ret.is_some();
    let fast: Vec<&Op> = ops
        .iter()
        .filter(|o| match &o.kind {
            Kind::Write(v) | Kind::Cas { new: v, .. } => o.ret.is_some() || observed.contains(v),
            Kind::Read(_) | Kind::CasRefused { .. } => o.ret.is_some(),
        })
        .collect();
    if search(fast, init.clone(), None) == Some(true) {
        return Some(true);
    }
    let refused = ops
        .iter()
        .any(|o| matches!(o.kind, Kind::CasRefused { .. }));
    if !refused {
        return Some(false);
    }
    // An unknown write whose value nobody observed and no refused CAS
    // expected can only matter by making the value differ from whatever a
    // refused CAS expected; all such writes do that equally, so they become
    // one placeholder value and the search treats them as interchangeable.
    let expected: HashSet<&Value> = ops
        .iter()
        .filter_map(|o| match &o.kind {
            Kind::CasRefused { expect } => Some(expect),
            _ => None,
        })
        .collect();
    let all: Vec<Op> = ops
        .iter()
        .filter(|o| known(o) || matches!(o.kind, Kind::Write(_) | Kind::Cas { .. }))
        .map(|o| match &o.kind {
            Kind::Write(v) if o.ret.is_none() && !observed.contains(v) && !expected.contains(v) => {
                Op {
                    kind: Kind::Write(Some(UNOBSERVED.to_string())),
                    ..o.clone()
                }
            }
            _ => o.clone(),
        })
        .collect();
    search(all.iter().collect(), init, Some(FULL_SEARCH_BUDGET))
}

/// The value every unobserved unknown write is given in the exhaustive pass;
/// a NUL byte keeps it apart from any value a workload writes.
const UNOBSERVED: &str = "\0unobserved";

/// Whether `op` is one of the interchangeable placeholder writes.
fn interchangeable(op: &Op) -> bool {
    op.ret.is_none() && matches!(&op.kind, Kind::Write(Some(v)) if v == UNOBSERVED)
}

/// Depth-first search over (linearized set, value), memoized; `None` when
/// the budget of states ran out.
fn search(mut ops: Vec<&Op>, init: Value, budget: Option<usize>) -> Option<bool> {
    ops.sort_by_key(|o| o.call);
    let n = ops.len();
    let words = n.div_ceil(64).max(1);
    let required: Vec<usize> = (0..n).filter(|&i| ops[i].ret.is_some()).collect();
    let mut seen: HashSet<(Vec<u64>, Value)> = HashSet::new();
    let mut stack: Vec<(Vec<u64>, Value)> = vec![(vec![0; words], init)];
    let is_set = |bits: &[u64], i: usize| bits[i / 64] & (1 << (i % 64)) != 0;
    while let Some((bits, value)) = stack.pop() {
        if !seen.insert((bits.clone(), value.clone())) {
            continue;
        }
        if budget.is_some_and(|b| seen.len() > b) {
            return None;
        }
        if required.iter().all(|&i| is_set(&bits, i)) {
            return Some(true);
        }
        // Only an operation called before every pending operation returned
        // can go next.
        let horizon = (0..n)
            .filter(|&i| !is_set(&bits, i))
            .filter_map(|i| ops[i].ret)
            .min()
            .unwrap_or(u64::MAX);
        // Interchangeable writes can stay available forever (the horizon
        // only grows), so whichever is applied, the earliest-called unused
        // one stands for all of them: the applied ones are then always a
        // prefix, and the search does not branch over their subsets.
        let first_interchangeable = (0..n).find(|&i| !is_set(&bits, i) && interchangeable(ops[i]));
        for i in 0..n {
            if is_set(&bits, i) || ops[i].call > horizon {
                continue;
            }
            if interchangeable(ops[i]) && Some(i) != first_interchangeable {
                continue;
            }
            let next = match &ops[i].kind {
                Kind::Write(v) => v.clone(),
                Kind::Read(v) if *v == value => value.clone(),
                Kind::Cas { expect, new } if *expect == value => new.clone(),
                Kind::CasRefused { expect } if *expect != value => value.clone(),
                Kind::Read(_) | Kind::Cas { .. } | Kind::CasRefused { .. } => continue,
            };
            let mut b = bits.clone();
            b[i / 64] |= 1 << (i % 64);
            stack.push((b, next));
        }
    }
    Some(false)
}

#[cfg(test)]
#[path = "linearizability_tests.rs"]
mod tests;
