//! Invariant checkers over recorded histories. Each returns the violations
//! it found; a clean history returns none. Tested below on histories with
//! known violations, so a checker that stops flagging fails the suite.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::history::{Op, Outcome};

/// What the lock workload records.
#[derive(Debug, Clone)]
pub enum LockOp {
    /// An exclusive acquire; `token` is set when it was granted.
    Acquire {
        owner: String,
        ttl_ms: u64,
        token: Option<u64>,
    },
    Release {
        owner: String,
        token: u64,
    },
    /// A KV write fenced by `token`; `version` is set when the store took it.
    FencedWrite {
        owner: String,
        token: u64,
        version: Option<u64>,
    },
}

/// A grant as its holder saw it: from the acknowledgement until it released
/// or its lease (counted from the request, so never longer than the
/// server's) ran out.
#[derive(Debug, Clone)]
struct Hold {
    owner: String,
    token: u64,
    acquire_invoke_us: u64,
    start_us: u64,
    end_us: u64,
}

fn holds(ops: &[Op<LockOp>]) -> Vec<Hold> {
    let mut released: HashMap<(String, u64), u64> = HashMap::new();
    for op in ops {
        if let LockOp::Release { owner, token } = &op.op {
            let at = released.entry((owner.clone(), *token)).or_insert(u64::MAX);
            *at = (*at).min(op.invoke_us);
        }
    }
    ops.iter()
        .filter(|op| op.outcome == Outcome::Ok)
        .filter_map(|op| match &op.op {
            LockOp::Acquire {
                owner,
                ttl_ms,
                token: Some(token),
            } => {
                let lease_end = op.invoke_us + ttl_ms * 1000;
                let release = released
                    .get(&(owner.clone(), *token))
                    .copied()
                    .unwrap_or(u64::MAX);
                Some(Hold {
                    owner: owner.clone(),
                    token: *token,
                    acquire_invoke_us: op.invoke_us,
                    start_us: op.complete_us,
                    end_us: lease_end.min(release),
                })
            }
            _ => None,
        })
        .collect()
}

/// Mutual exclusion, strictly increasing fencing tokens, and no fenced write
/// accepted from a superseded holder.
pub fn check_locks(ops: &[Op<LockOp>]) -> Vec<String> {
    let mut violations = Vec::new();
    let mut hs = holds(ops);
    hs.sort_by_key(|h| h.start_us);
    for (i, a) in hs.iter().enumerate() {
        for b in &hs[i + 1..] {
            if b.start_us >= a.end_us {
                continue;
            }
            if a.owner != b.owner && a.start_us < b.end_us {
                violations.push(format!(
                    "overlapping exclusive grants: {} (token {}) held {}..{} us and {} (token {}) held {}..{} us",
                    a.owner, a.token, a.start_us, a.end_us, b.owner, b.token, b.start_us, b.end_us
                ));
            }
        }
    }
    for a in &hs {
        for b in &hs {
            if a.owner != b.owner && a.start_us < b.acquire_invoke_us && a.token >= b.token {
                violations.push(format!(
                    "fencing token went backwards: {} got {} before {} asked and got {}",
                    a.owner, a.token, b.owner, b.token
                ));
            }
        }
    }
    let mut writes: BTreeMap<u64, (u64, &str)> = BTreeMap::new();
    for op in ops.iter().filter(|op| op.outcome == Outcome::Ok) {
        if let LockOp::FencedWrite {
            owner,
            token,
            version: Some(v),
        } = &op.op
        {
            writes.insert(*v, (*token, owner));
        }
    }
    let mut highest: Option<(u64, &str)> = None;
    for (version, (token, owner)) in &writes {
        if let Some((t, o)) = highest {
            if *token < t {
                violations.push(format!(
                    "zombie write accepted: {owner} wrote version {version} with token {token} after {o} wrote with token {t}"
                ));
            }
        }
        if highest.is_none_or(|(t, _)| *token >= t) {
            highest = Some((*token, owner));
        }
    }
    violations
}

/// What the queue workload records.
#[derive(Debug, Clone)]
pub enum QueueOp {
    Enqueue {
        payload: String,
    },
    /// Payloads one consume returned.
    Deliver {
        payloads: Vec<String>,
    },
}

/// The queue's report: violations plus the duplicate count at-least-once
/// allows.
#[derive(Debug, Default)]
pub struct QueueReport {
    pub violations: Vec<String>,
    pub acknowledged_enqueues: usize,
    pub delivered: usize,
    pub duplicates: usize,
}

/// No acknowledged enqueue lost, nothing delivered that nobody sent.
/// `ops` must include a final drain of the topic.
pub fn check_queue(ops: &[Op<QueueOp>]) -> QueueReport {
    let mut acked = HashSet::new();
    let mut maybe = HashSet::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for op in ops {
        match (&op.op, op.outcome) {
            (QueueOp::Enqueue { payload }, Outcome::Ok) => {
                acked.insert(payload.as_str());
            }
            (QueueOp::Enqueue { payload }, Outcome::Unknown) => {
                maybe.insert(payload.as_str());
            }
            (QueueOp::Deliver { payloads }, Outcome::Ok) => {
                for p in payloads {
                    *seen.entry(p.as_str()).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    let mut report = QueueReport {
        acknowledged_enqueues: acked.len(),
        delivered: seen.len(),
        duplicates: seen.values().map(|n| n - 1).sum(),
        ..Default::default()
    };
    let mut lost: Vec<&&str> = acked.iter().filter(|p| !seen.contains_key(**p)).collect();
    lost.sort();
    if !lost.is_empty() {
        report.violations.push(format!(
            "{} acknowledged enqueues never delivered, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        ));
    }
    let mut unexpected: Vec<&&str> = seen
        .keys()
        .filter(|p| !acked.contains(**p) && !maybe.contains(**p))
        .collect();
    unexpected.sort();
    if !unexpected.is_empty() {
        report.violations.push(format!(
            "{} delivered messages nobody sent, e.g. {:?}",
            unexpected.len(),
            &unexpected[..unexpected.len().min(5)]
        ));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op<T>(process: usize, invoke_us: u64, complete_us: u64, outcome: Outcome, op: T) -> Op<T> {
        Op {
            process,
            invoke_us,
            complete_us,
            outcome,
            op,
        }
    }

    fn acquire(owner: &str, token: u64, at: u64, done: u64) -> Op<LockOp> {
        op(
            0,
            at,
            done,
            Outcome::Ok,
            LockOp::Acquire {
                owner: owner.into(),
                ttl_ms: 1000,
                token: Some(token),
            },
        )
    }

    fn release(owner: &str, token: u64, at: u64) -> Op<LockOp> {
        op(
            0,
            at,
            at + 10,
            Outcome::Ok,
            LockOp::Release {
                owner: owner.into(),
                token,
            },
        )
    }

    fn write(owner: &str, token: u64, version: u64) -> Op<LockOp> {
        op(
            0,
            0,
            0,
            Outcome::Ok,
            LockOp::FencedWrite {
                owner: owner.into(),
                token,
                version: Some(version),
            },
        )
    }

    #[test]
    fn a_clean_lock_history_passes() {
        let h = vec![
            acquire("a", 5, 0, 100),
            write("a", 5, 6),
            release("a", 5, 200),
            acquire("b", 7, 150, 300),
            write("b", 7, 8),
            release("b", 7, 400),
        ];
        assert_eq!(check_locks(&h), Vec::<String>::new());
    }

    #[test]
    fn overlapping_grants_are_flagged() {
        let h = vec![
            acquire("a", 5, 0, 100),
            release("a", 5, 500),
            acquire("b", 7, 150, 300),
        ];
        let v = check_locks(&h);
        assert!(v.iter().any(|v| v.contains("overlapping")), "{v:?}");
    }

    #[test]
    fn a_lease_that_ran_out_is_not_an_overlap() {
        // a never released, but its 1 s lease ended before b was granted.
        let h = vec![acquire("a", 5, 0, 100), acquire("b", 7, 200, 1_200_000)];
        assert_eq!(check_locks(&h), Vec::<String>::new());
    }

    #[test]
    fn tokens_going_backwards_are_flagged() {
        let h = vec![
            acquire("a", 9, 0, 100),
            release("a", 9, 200),
            acquire("b", 7, 300, 400),
        ];
        let v = check_locks(&h);
        assert!(v.iter().any(|v| v.contains("backwards")), "{v:?}");
    }

    #[test]
    fn a_zombie_write_is_flagged() {
        let h = vec![write("b", 7, 10), write("a", 5, 11)];
        let v = check_locks(&h);
        assert!(v.iter().any(|v| v.contains("zombie")), "{v:?}");
    }

    fn enqueue(p: &str, outcome: Outcome) -> Op<QueueOp> {
        op(0, 0, 1, outcome, QueueOp::Enqueue { payload: p.into() })
    }

    fn deliver(ps: &[&str]) -> Op<QueueOp> {
        op(
            1,
            2,
            3,
            Outcome::Ok,
            QueueOp::Deliver {
                payloads: ps.iter().map(|p| p.to_string()).collect(),
            },
        )
    }

    #[test]
    fn a_clean_queue_history_passes_and_counts_duplicates() {
        let h = vec![
            enqueue("m1", Outcome::Ok),
            enqueue("m2", Outcome::Unknown),
            deliver(&["m1", "m2"]),
            deliver(&["m1"]),
        ];
        let r = check_queue(&h);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(
            (r.acknowledged_enqueues, r.delivered, r.duplicates),
            (1, 2, 1)
        );
    }

    #[test]
    fn a_lost_acknowledged_message_is_flagged() {
        let h = vec![
            enqueue("m1", Outcome::Ok),
            enqueue("m2", Outcome::Ok),
            deliver(&["m1"]),
        ];
        let r = check_queue(&h);
        assert!(
            r.violations.iter().any(|v| v.contains("never delivered")),
            "{:?}",
            r.violations
        );
    }

    #[test]
    fn an_unexpected_message_is_flagged() {
        let h = vec![enqueue("m1", Outcome::Fail), deliver(&["m1"])];
        let r = check_queue(&h);
        assert!(
            r.violations.iter().any(|v| v.contains("nobody sent")),
            "{:?}",
            r.violations
        );
    }
}
