//! Fixed data for the snapshot and state tests: three nodes (one
//! unreachable), a refused deadlock, a queue backlog, cache lines, events;
//! shard maps and jobs in [`shards`].

pub mod shards;

use dsync_api::events::Event;
use dsync_api::locks::{
    DeadlockInfo, HolderInfo, LockGraph, LockInfo, LockMode, WaitEdge, WaiterInfo,
};
use dsync_api::queue::TopicStats;
use dsync_api::types::{MemberKind, MemberStatus, NodeStatus, Role};

use crate::app::{Action, App};
use dsync_api::cache::{CacheLines, LineInfo};

use crate::model::{CachePoll, JobsPoll, LineState, NodePoll, Poll};

/// 2023-11-14 22:13:20 UTC.
pub const T0: u64 = 1_700_000_000_000;

pub fn endpoints() -> Vec<String> {
    (1..=3)
        .map(|i| format!("http://127.0.0.1:700{i}"))
        .collect()
}

fn status(id: u64, role: Role, applied: u64) -> NodeStatus {
    NodeStatus {
        id,
        addr: format!("127.0.0.1:700{id}"),
        version: "0.1.0".into(),
        protocol: 1,
        role,
        term: 7,
        leader: Some(1),
        last_index: applied,
        commit_index: 120,
        applied_index: applied,
        snapshot_index: 0,
        millis_since_quorum_ack: None,
        members: (1..=3)
            .map(|m| MemberStatus {
                id: m,
                addr: format!("127.0.0.1:700{m}"),
                kind: MemberKind::Voter,
                match_index: (role == Role::Leader).then_some(match m {
                    1 => 120,
                    2 => 117,
                    _ => 90,
                }),
            })
            .collect(),
        peers: vec![],
    }
}

fn line(key: &str, state: LineState) -> LineInfo {
    LineInfo {
        key: key.into(),
        state,
        version: 3,
        lease_remaining_ms: 1500,
        dirty: false,
    }
}

fn holder(owner: &str, mode: LockMode, token: u64) -> HolderInfo {
    HolderInfo {
        owner: owner.into(),
        mode,
        token,
        ttl_ms: 30_000,
        held_ms: 4_200,
        expires_in_ms: 25_800,
    }
}

fn waiter(owner: &str, mode: LockMode) -> WaiterInfo {
    WaiterInfo {
        owner: owner.into(),
        mode,
        waited_ms: 2_100,
        deadline_in_ms: 57_900,
        upgrade: false,
    }
}

fn topic(name: &str, ready: u64, enq: u64, ack: u64, dlq: u64) -> TopicStats {
    TopicStats {
        topic: name.into(),
        ready,
        in_flight: 4,
        delayed: 0,
        dead_lettered: dlq,
        enqueued_total: enq,
        acked_total: ack,
        redelivered_total: 0,
        oldest_age_ms: if ready > 0 { 12_500 } else { 0 },
        max_attempts: 5,
        visibility_ms: 30_000,
        max_message_bytes: 262_144,
        retention_ms: 345_600_000,
        group: 0,
    }
}

/// One poll; `round` moves the queue totals so rates differ per round.
pub fn poll(round: u64, cache: bool) -> Poll {
    let cache_of = |lines: Vec<LineInfo>, node: u64| {
        if cache {
            CachePoll::Lines(CacheLines {
                node,
                lines,
                truncated: false,
            })
        } else {
            CachePoll::NotAvailable
        }
    };
    Poll {
        at_ms: T0 + round * 500,
        nodes: vec![
            NodePoll {
                endpoint: endpoints()[0].clone(),
                status: Ok(status(1, Role::Leader, 120)),
                healthy: true,
                cache: cache_of(
                    vec![line("user:1", LineState::M), line("user:2", LineState::S)],
                    1,
                ),
            },
            NodePoll {
                endpoint: endpoints()[1].clone(),
                status: Ok(status(2, Role::Follower, 117)),
                healthy: true,
                cache: cache_of(
                    vec![line("user:2", LineState::S), line("user:3", LineState::E)],
                    2,
                ),
            },
            NodePoll {
                endpoint: endpoints()[2].clone(),
                status: Err("connection refused".into()),
                healthy: false,
                cache: CachePoll::Failed("connection refused".into()),
            },
        ],
        locks: Ok(vec![
            LockInfo {
                name: "orders".into(),
                holders: vec![holder("alice", LockMode::Exclusive, 41)],
                waiters: vec![],
            },
            LockInfo {
                name: "payments".into(),
                holders: vec![holder("bob", LockMode::Exclusive, 42)],
                waiters: vec![waiter("alice", LockMode::Exclusive)],
            },
            LockInfo {
                name: "reports".into(),
                holders: vec![
                    holder("carol", LockMode::Shared, 43),
                    holder("dave", LockMode::Shared, 44),
                ],
                waiters: vec![waiter("erin", LockMode::Exclusive)],
            },
        ]),
        graph: Ok(LockGraph {
            edges: vec![
                WaitEdge {
                    waiter: "alice".into(),
                    holder: "bob".into(),
                    lock: "payments".into(),
                },
                WaitEdge {
                    waiter: "erin".into(),
                    holder: "carol".into(),
                    lock: "reports".into(),
                },
                WaitEdge {
                    waiter: "erin".into(),
                    holder: "dave".into(),
                    lock: "reports".into(),
                },
            ],
            deadlocks: vec![DeadlockInfo {
                cycle: vec!["bob".into(), "alice".into()],
                lock: "orders".into(),
                at_ms: T0 - 3_000,
            }],
        }),
        queues: Ok(vec![
            topic("emails", 0, 500 + round * 20, 500 + round * 20, 0),
            topic("emails.dlq", 2, 2, 0, 0),
            topic(
                "jobs",
                250 + round * 40,
                1000 + round * (40 + round * 5),
                750,
                3,
            ),
        ]),
        shards: Ok(shards::control_only(round)),
        jobs: JobsPoll::Jobs(vec![]),
    }
}

pub fn events() -> Vec<Event> {
    vec![
        Event::Role {
            node: 1,
            role: Role::Leader,
            term: 7,
            leader: Some(1),
        },
        Event::LockGranted {
            lock: "orders".into(),
            owner: "alice".into(),
            mode: LockMode::Exclusive,
            token: 41,
            at_ms: T0 - 5_000,
        },
        Event::Deadlock {
            lock: "orders".into(),
            cycle: vec!["bob".into(), "alice".into()],
            at_ms: T0 - 3_000,
        },
        Event::DeadLetter {
            topic: "jobs".into(),
            id: 17,
            attempt: 5,
            at_ms: T0 - 1_000,
        },
        Event::Lagged { skipped: 12 },
        Event::LockForceReleased {
            lock: "stuck".into(),
            owners: vec!["zed".into()],
            at_ms: T0,
        },
    ]
}

/// The dashboard after six polls and the events above.
pub fn app(cache: bool) -> App {
    let mut app = App::new(&endpoints());
    for round in 0..6 {
        app.update(Action::Polled(poll(round, cache)));
    }
    app.update(Action::EventsConnected(endpoints()[0].clone()));
    for (i, event) in events().into_iter().enumerate() {
        app.update(Action::Event {
            event,
            at_ms: T0 - 10_000 + i as u64 * 1000,
        });
    }
    app
}
