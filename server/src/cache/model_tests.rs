//! Model test of the whole protocol without a network: three holders'
//! line stores and one directory, with requests and replies delivered in any
//! order, holder messages lost (the directory then waits out the lease),
//! time passing and LRU evictions. After every step the MESI invariants
//! must hold and every valid line must carry the latest written value.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dsync_api::cache::LineState;
use proptest::prelude::*;

use super::{Directory, Line, LineStore, Lookup};

const LEASE: Duration = Duration::from_millis(100);
const NODES: usize = 3;
const KEYS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Op {
    /// A node sends a read (after a local miss) or a write to the directory.
    Send {
        node: usize,
        key: usize,
        write: bool,
    },
    /// The directory serves a queued request; `lose` drops its messages to
    /// holders (no answer: it waits for their leases to end).
    Process {
        pick: usize,
        lose: bool,
    },
    /// A reply reaches its node.
    Deliver {
        pick: usize,
    },
    Hit {
        node: usize,
        key: usize,
    },
    Renew {
        node: usize,
        key: usize,
    },
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..NODES, 0..KEYS.len(), any::<bool>())
            .prop_map(|(node, key, write)| Op::Send { node, key, write }),
        4 => (0usize..8, prop::bool::weighted(0.2)).prop_map(|(pick, lose)| Op::Process { pick, lose }),
        4 => (0usize..8).prop_map(|pick| Op::Deliver { pick }),
        3 => (0..NODES, 0..KEYS.len()).prop_map(|(node, key)| Op::Hit { node, key }),
        1 => (0..NODES, 0..KEYS.len()).prop_map(|(node, key)| Op::Renew { node, key }),
        1 => (0u64..80).prop_map(|ms| Op::Advance { ms }),
    ]
}

struct Request {
    node: usize,
    key: &'static str,
    write: bool,
    token: u64,
    sent: Instant,
}

struct Reply {
    node: usize,
    key: &'static str,
    write: bool,
    token: u64,
    line: Option<Line>,
}

struct World {
    now: Instant,
    nodes: Vec<LineStore>,
    dir: Directory,
    kv: HashMap<&'static str, (String, u64)>,
    next_value: u64,
    to_dir: Vec<Request>,
    to_node: Vec<Reply>,
}

impl World {
    fn new() -> World {
        World {
            now: Instant::now(),
            // Two lines per node for three keys: evictions happen.
            nodes: (0..NODES)
                .map(|_| LineStore::new(2, 1 << 20, LEASE))
                .collect(),
            dir: Directory::default(),
            kv: KEYS.iter().map(|k| (*k, ("0".to_string(), 1))).collect(),
            next_value: 1,
            to_dir: Vec::new(),
            to_node: Vec::new(),
        }
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Send { node, key, write } => {
                let key = KEYS[key];
                let (token, _) = self.nodes[node].begin(key, write);
                self.to_dir.push(Request {
                    node,
                    key,
                    write,
                    token,
                    sent: self.now,
                });
            }
            Op::Process { pick, lose } if !self.to_dir.is_empty() => {
                let r = self.to_dir.remove(pick % self.to_dir.len());
                self.process(r, lose);
            }
            Op::Deliver { pick } if !self.to_node.is_empty() => {
                let r = self.to_node.remove(pick % self.to_node.len());
                self.nodes[r.node].finish(r.key, r.token, r.line, r.write, self.now);
            }
            Op::Hit { node, key } => {
                if let Lookup::Hit { value, .. } = self.nodes[node].get(KEYS[key], self.now) {
                    assert_eq!(value, self.kv[KEYS[key]].0, "stale hit");
                }
            }
            Op::Renew { node, key } => {
                let key = KEYS[key];
                if let Lookup::Hit { grant, .. } = self.nodes[node].get(key, self.now) {
                    let until = self.now + LEASE;
                    if self.dir.renew(key, node as u64, grant, until) {
                        self.nodes[node].renew(key, grant, until);
                    }
                }
            }
            Op::Advance { ms } => self.now += Duration::from_millis(ms),
            _ => {}
        }
    }

    /// Delivers a holder message, or loses it and waits out the lease.
    fn tell(&mut self, node: u64, key: &str, until: Instant, downgrade: bool, lose: bool) -> bool {
        if lose {
            self.now = self.now.max(until);
            return false;
        }
        let s = &mut self.nodes[node as usize];
        if downgrade {
            s.downgrade(key).0
        } else {
            s.invalidate(key).0
        }
    }

    fn process(&mut self, r: Request, lose: bool) {
        let line = if r.write {
            for (n, until) in self.dir.write_plan(r.key, r.node as u64, self.now) {
                self.tell(n, r.key, until, false, lose);
                self.dir.remove(r.key, n);
            }
            self.next_value += 1;
            let version = self.kv[r.key].1 + 1;
            self.kv
                .insert(r.key, (self.next_value.to_string(), version));
            let h = self.dir.grant_write(r.key, r.node as u64, self.now, LEASE);
            Some((h, LineState::M))
        } else {
            if let Some((n, until)) = self.dir.read_plan(r.key, r.node as u64, self.now) {
                let held = self.tell(n, r.key, until, true, lose);
                self.dir.downgraded(r.key, n, held);
            }
            let h = self.dir.grant_read(r.key, r.node as u64, self.now, LEASE);
            Some((h, h.state))
        };
        let (value, version) = self.kv[r.key].clone();
        self.to_node.push(Reply {
            node: r.node,
            key: r.key,
            write: r.write,
            token: r.token,
            line: line.map(|(h, state)| Line {
                value,
                version,
                state,
                lease_until: r.sent + LEASE,
                grant: h.grant,
                dirty: None,
            }),
        });
    }

    fn check(&mut self) {
        self.dir.check(self.now).unwrap();
        for key in KEYS {
            let held: Vec<(usize, _)> = (0..NODES)
                .filter_map(|n| self.nodes[n].info(key, self.now).map(|l| (n, l)))
                .collect();
            let owners = held
                .iter()
                .filter(|(_, l)| matches!(l.state, LineState::M | LineState::E))
                .count();
            assert!(owners <= 1, "two M/E holders of {key}: {held:?}");
            assert!(
                owners == 0 || held.len() == 1,
                "M/E next to S for {key}: {held:?}"
            );
            let recorded: HashMap<u64, _> = self.dir.holders(key, self.now).into_iter().collect();
            for (n, l) in &held {
                assert_eq!(l.version, self.kv[key].1, "node {n} holds a stale {key}");
                let d = recorded
                    .get(&(*n as u64))
                    .unwrap_or_else(|| panic!("node {n} holds {key} unknown to the directory"));
                // A node may hold less than the directory grants (a newer
                // grant in flight), never more.
                if l.state != LineState::S {
                    assert_eq!(d.state, l.state, "node {n} {key}");
                }
                let holder_until = self.now + Duration::from_millis(l.lease_remaining_ms);
                assert!(
                    holder_until <= d.lease_until + Duration::from_millis(1),
                    "node {n} believes its lease of {key} outlasts the directory's"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mesi_invariants_hold_under_any_interleaving(ops in prop::collection::vec(op(), 1..120)) {
        let mut w = World::new();
        for op in ops {
            w.step(op);
            w.check();
        }
    }
}
