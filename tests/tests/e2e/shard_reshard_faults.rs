//! Issue 18, acceptance 3 for resharding: the node driving a reshard dies
//! at each step of it (a failpoint makes it exit there, as `kill -9`
//! would), and the leader of a topic's target group is killed mid-move.
//! Each time the cluster comes back and finishes the job; every topic is
//! in exactly one group (the one the ring names), no retired group's data
//! is left, and no message acknowledged to the producers running
//! throughout is lost.

use std::time::Duration;

use dsync_api::shards::{JobState, ReshardRequest, ShardJob, TopicPhase};
use dsync_tests::shard_faults::{arm, exited, job, last_job_id, restart};
use dsync_tests::shard_workload::{first_deliveries, misplaced, start, view, Plan};
use dsync_tests::{wait_ok, wait_until, Cluster};

const NODES: u64 = 3;
const TOPICS: usize = 12;
const MESSAGES: u64 = 1_500;

fn all() -> Vec<u64> {
    (1..=NODES).collect()
}

/// Every node routes by the same map, every group has a leader, each
/// topic is counted in one group only, and the data folders are as the
/// map says (no group folder that the map does not place).
async fn converged(c: &Cluster, topics: &[String]) -> Result<String, String> {
    let first = view(c, 1).await?;
    for n in all() {
        let s = view(c, n).await?;
        if s.map != first.map {
            return Err(format!(
                "node {n} has epoch {}, node 1 {}",
                s.map.epoch, first.map.epoch
            ));
        }
    }
    if let Some(g) = first.groups.iter().find(|g| g.leader.is_none()) {
        return Err(format!("group {} has no leader", g.id));
    }
    let held: u64 = first
        .groups
        .iter()
        .filter(|g| g.id != 0)
        .map(|g| g.topics)
        .sum();
    if held != topics.len() as u64 {
        return Err(format!("{held} topics held for {} topics", topics.len()));
    }
    for t in topics {
        let s = c.client().queue_stats(t).await.map_err(|e| e.to_string())?;
        if s.group != first.map.group_of(t) {
            return Err(format!("{t} in group {}", s.group));
        }
    }
    if let Some(why) = misplaced(c, &first.map, &all()) {
        return Err(why);
    }
    for n in all() {
        let dir = c.node(n).data_dir.join("groups");
        for e in std::fs::read_dir(&dir).map_err(|e| e.to_string())? {
            let name = e.map_err(|e| e.to_string())?.file_name();
            let id: u64 = name.to_string_lossy().parse().unwrap_or(0);
            if first.map.group(id).is_none() {
                return Err(format!("node {n} still has retired group {id}"));
            }
        }
    }
    Ok(format!(
        "epoch {}, {} groups",
        first.map.epoch,
        first.map.groups.len()
    ))
}

async fn finished(c: &Cluster, id: u64, topics: &[String], what: &str) -> ShardJob {
    let ended = wait_until(
        Duration::from_secs(120),
        &format!("reshard job {id} to end"),
        || async move { job(c, id).await.filter(|j| j.state != JobState::Running) },
    )
    .await;
    assert_eq!(ended.state, JobState::Done, "{what}: {ended:?}");
    let at = wait_ok(
        Duration::from_secs(90),
        &format!("convergence after {what}"),
        || converged(c, topics),
    )
    .await;
    println!("{what}: job {id} done, converged at {at}");
    ended
}

/// Starts a reshard to `groups`, tolerating an answer lost with a dying
/// leader (the job is in the log); returns the new job's id.
async fn begin(c: &Cluster, groups: u64, before: u64) -> u64 {
    let req = ReshardRequest {
        groups,
        dry_run: false,
    };
    let _ = c.client().shards_reshard(&req).await;
    wait_until(Duration::from_secs(30), "the job recorded", || async move {
        let id = last_job_id(c).await;
        (id > before).then_some(id)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_dying_at_any_step_of_a_reshard_leaves_every_topic_in_one_group() {
    let c = Cluster::up_with(NODES as usize, &[], &["--shards", "2"]);
    c.wait_leader(3).await;
    let plan = Plan {
        topics: (0..TOPICS).map(|i| format!("refault-{i:02}")).collect(),
        messages: MESSAGES,
        batch: 2,
        visibility_ms: 3_000,
    };
    let run = start(&plan, |_| c.client(), |_| c.client());
    run.published_at_least(200).await;

    // Alternating 4 and 2 groups, so each reshard has topics to move.
    let steps = [
        "reshard-begun",
        "reshard-frozen",
        "reshard-copied",
        "reshard-dropped",
    ];
    for (i, point) in steps.iter().enumerate() {
        let groups = if i % 2 == 0 { 4 } else { 2 };
        let leader = c.wait_leader(3).await;
        println!("{point}: the driver, node {leader}, dies; resharding to {groups}");
        arm(&c, leader, point);
        let before = last_job_id(&c).await;
        let id = begin(&c, groups, before).await;
        exited(&c, leader, point).await;
        restart(&c);
        finished(&c, id, &plan.topics, point).await;
    }

    // The leader of a topic's target group killed while the job moves
    // topics (as soon as they are listed: the moves take a second or two).
    let before = last_job_id(&c).await;
    let id = begin(&c, 4, before).await;
    let cr = &c;
    let (topic, group) = wait_until(
        Duration::from_secs(60),
        "the topics listed",
        || async move {
            let j = job(cr, id).await?;
            let t = j.topics.iter().rev().find(|t| t.phase < TopicPhase::Done)?;
            Some((t.topic.clone(), t.to))
        },
    )
    .await;
    let victim = wait_until(
        Duration::from_secs(30),
        "the target group's leader",
        || async move {
            let status = view(cr, 1).await.ok()?;
            status.groups.iter().find(|g| g.id == group)?.leader
        },
    )
    .await;
    println!("{topic} to move to group {group}: killing its leader, node {victim}");
    c.kill9(victim);
    restart(&c);
    finished(&c, id, &plan.topics, "target leader killed").await;

    let total = TOPICS as u64 * MESSAGES;
    let history = run.history.clone();
    let (report, stats) = run.drain(&c.client(), Duration::from_secs(180)).await;
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.acknowledged_enqueues, total as usize);
    for (t, s) in &stats {
        assert_eq!(s.enqueued_total, MESSAGES, "{t}: {s:?}");
        assert_eq!(first_deliveries(&history, t).len() as u64, MESSAGES, "{t}");
    }
    println!(
        "{total} messages through five deaths mid-reshard, {} redeliveries",
        report.duplicates
    );
}
