//! Issue 18, acceptance 3: a node dies at each step of a replica move (a
//! failpoint makes it exit there, as `kill -9` would): the control leader
//! driving the move, the move's target, the replica being moved away. The
//! cluster converges each time (the move finishes or is rolled back, never
//! left half-done), every group's Raft voters are what the shard map says,
//! no node keeps a copy of a group it no longer holds, and no message
//! acknowledged to the producers running throughout is lost.

use std::collections::BTreeSet;
use std::time::Duration;

use dsync_api::shards::{JobState, MovePhase, RebalanceRequest, ReplicaMove, ShardJob};
use dsync_api::types::MemberKind;
use dsync_tests::shard_faults::{arm, exited, job, last_job_id, restart};
use dsync_tests::shard_workload::{first_deliveries, misplaced, start, view, Plan};
use dsync_tests::{wait_ok, wait_until, Cluster};

const NODES: u64 = 4;
const TOPICS: usize = 8;
const MESSAGES: u64 = 1_500;

/// Who dies.
#[derive(Debug, Clone, Copy)]
enum Victim {
    /// The control leader, which carries the moves out.
    Driver,
    /// The node receiving the first move's replica.
    Target,
    /// The node giving the first move's replica up.
    Source,
}

fn all() -> Vec<u64> {
    (1..=NODES).collect()
}

fn request(exclude: Vec<u64>, dry_run: bool) -> RebalanceRequest {
    RebalanceRequest { dry_run, exclude }
}

/// A node to take the replicas off such that, for the driver scenarios,
/// the first move involves neither the leader nor (so it is one death
/// at a time) needs it as target.
async fn pick_exclude(c: &Cluster, leader: u64) -> (Vec<u64>, ReplicaMove) {
    let client = c.client();
    let mut fallback = None;
    for x in all().into_iter().filter(|x| *x != leader) {
        let plan = client
            .shards_rebalance(&request(vec![x], true))
            .await
            .expect("dry run");
        let first = plan
            .moves
            .first()
            .cloned()
            .expect("a node that holds replicas");
        if first.to != Some(leader) {
            return (vec![x], first);
        }
        fallback.get_or_insert((vec![x], first));
    }
    fallback.expect("a non-leader node")
}

async fn job_ended(c: &Cluster, id: u64) -> ShardJob {
    wait_until(
        Duration::from_secs(120),
        &format!("shard job {id} to end"),
        || async move { job(c, id).await.filter(|j| j.state != JobState::Running) },
    )
    .await
}

/// Every node agrees on the map, each group's voters are its replicas
/// (no learner left over), and the data folders are as the map says.
async fn converged(c: &Cluster) -> Result<String, String> {
    let first = view(c, 1).await?;
    for n in all() {
        let s = view(c, n).await?;
        if s.map != first.map {
            return Err(format!(
                "node {n} has epoch {}, node 1 {}",
                s.map.epoch, first.map.epoch
            ));
        }
        for g in s.groups.iter().filter(|g| g.id != 0 && g.leader == Some(n)) {
            let voters: BTreeSet<u64> = g
                .replicas
                .iter()
                .filter(|r| r.kind == MemberKind::Voter)
                .map(|r| r.id)
                .collect();
            let placed: BTreeSet<u64> = first
                .map
                .group(g.id)
                .map(|m| m.replicas.iter().copied().collect())
                .unwrap_or_default();
            if voters != placed || g.replicas.len() != placed.len() {
                return Err(format!(
                    "group {}: members {:?}, the map places {placed:?}",
                    g.id, g.replicas
                ));
            }
        }
    }
    if let Some(g) = first
        .groups
        .iter()
        .find(|g| g.id != 0 && g.leader.is_none())
    {
        return Err(format!("group {} has no leader", g.id));
    }
    match misplaced(c, &first.map, &all()) {
        Some(why) => Err(why),
        None => Ok(format!("epoch {}", first.map.epoch)),
    }
}

async fn settle(c: &Cluster, what: &str) {
    let at = wait_ok(
        Duration::from_secs(90),
        &format!("convergence after {what}"),
        || converged(c),
    )
    .await;
    println!("{what}: converged at {at}");
}

/// Arms `point` on the victim of the next rebalance's first move, starts
/// the rebalance, waits for the death, and brings the node back (at once,
/// or once the move is rolled back). Returns the job as it ended.
async fn scenario(c: &Cluster, point: &str, victim: Victim) -> ShardJob {
    let leader = c.wait_leader(3).await;
    let (exclude, first) = pick_exclude(c, leader).await;
    let node = match victim {
        Victim::Driver => leader,
        Victim::Target => first.to.expect("a target"),
        Victim::Source => first.from.expect("a source"),
    };
    println!("{point}: node {node} ({victim:?}) dies; first move {first:?}");
    arm(c, node, point);
    let before = last_job_id(c).await;
    // The answer may be lost with a dying leader; the job is in the log.
    let _ = c.client().shards_rebalance(&request(exclude, false)).await;
    exited(c, node, point).await;
    let id = wait_until(Duration::from_secs(30), "the job recorded", || async move {
        let id = last_job_id(c).await;
        (id > before).then_some(id)
    })
    .await;
    if matches!(victim, Victim::Target) {
        // Left down, the target stalls and its move is undone; the node
        // comes back to a group it no longer joins.
        wait_until(
            Duration::from_secs(90),
            "the move rolled back",
            || async move {
                let j = job(c, id).await?;
                (j.moves[0].phase == MovePhase::RolledBack).then_some(())
            },
        )
        .await;
    }
    restart(c);
    let ended = job_ended(c, id).await;
    settle(c, point).await;
    ended
}

/// Balanced again over every node, with no fault.
async fn rebalance_back(c: &Cluster) {
    tokio::task::block_in_place(|| c.dsync_ok(&["shard", "rebalance", "--timeout", "120"]));
    settle(c, "rebalance back").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_dying_at_any_step_of_a_move_leaves_no_half_done_move_and_loses_nothing() {
    let c = Cluster::up_with(NODES as usize, &[], &["--shards", "3"]);
    c.wait_leader(3).await;
    let plan = Plan {
        topics: (0..TOPICS).map(|i| format!("faults-{i}")).collect(),
        messages: MESSAGES,
        batch: 2,
        visibility_ms: 3_000,
    };
    let run = start(&plan, |_| c.client(), |_| c.client());
    run.published_at_least(100).await;

    for point in ["move-start", "move-learner-added", "move-voters-set"] {
        let j = scenario(&c, point, Victim::Driver).await;
        assert_eq!(j.state, JobState::Done, "{point}: {j:?}");
        rebalance_back(&c).await;
    }
    let j = scenario(&c, "move-target-opened", Victim::Target).await;
    assert_eq!(j.moves[0].phase, MovePhase::RolledBack, "{j:?}");
    assert_eq!(j.state, JobState::Failed, "{j:?}");
    assert!(j.error.is_some(), "a failed job says why: {j:?}");
    rebalance_back(&c).await;
    let j = scenario(&c, "move-source-closed", Victim::Source).await;
    assert_eq!(j.state, JobState::Done, "{j:?}");
    rebalance_back(&c).await;

    let total = TOPICS as u64 * MESSAGES;
    let history = run.history.clone();
    // No FIFO check here: a consume whose answer died with its node took
    // messages in flight unseen, and they come back after later ones once
    // their visibility lapses, as at-least-once allows.
    let (report, stats) = run.drain(&c.client(), Duration::from_secs(180)).await;
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.acknowledged_enqueues, total as usize);
    for (t, s) in &stats {
        assert_eq!(s.enqueued_total, MESSAGES, "{t}: {s:?}");
        assert_eq!(first_deliveries(&history, t).len() as u64, MESSAGES, "{t}");
    }
    println!(
        "{total} messages through five deaths mid-move, {} redeliveries",
        report.duplicates
    );
}
