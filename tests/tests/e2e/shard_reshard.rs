//! Issue 18, acceptance 2: `shard reshard --groups 2 → 5 → 3` while
//! producers and consumers run on 32 topics. The topics whose place on
//! the ring changes move, and only those; no acknowledged message is lost,
//! FIFO holds for first deliveries, every topic ends in exactly one group
//! (the one the ring names) and the groups that went have no data left.

use std::collections::BTreeSet;
use std::time::Duration;

use dsync_api::shards::{JobState, ShardJob, ShardMap, TopicPhase};
use dsync_api::ErrorCode;
use dsync_tests::shard_workload::{delivered_once, first_deliveries, misplaced, start, view, Plan};
use dsync_tests::{wait_ok, Cluster};

const TOPICS: usize = 32;
const MESSAGES: u64 = 500;

fn dsync_ok(c: &Cluster, args: &[&str]) -> String {
    let out = tokio::task::block_in_place(|| c.dsync_ok(args));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The topics a change from `before` to `after` reroutes, by the ring.
fn rerouted(topics: &[String], before: &ShardMap, after: &ShardMap) -> BTreeSet<String> {
    topics
        .iter()
        .filter(|t| before.group_of(t) != after.group_of(t))
        .cloned()
        .collect()
}

/// The last reshard job, finished, as the list and its own route give it.
async fn last_job(c: &Cluster) -> ShardJob {
    let client = c.client();
    let jobs = client.shard_jobs().await.expect("jobs");
    let job = jobs.into_iter().next().expect("a job");
    assert_eq!(job.kind, "reshard");
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert!(job.topics.iter().all(|t| t.phase == TopicPhase::Done));
    assert_eq!(client.shard_job(job.id).await.expect("one job"), job);
    job
}

/// `dsync shard jobs ID` prints job `job` alone; an id no node applied is
/// `not_found`.
async fn one_job_by_id(c: &Cluster, job: &ShardJob) {
    let out = tokio::task::block_in_place(|| {
        c.dsync_ok(&["shard", "jobs", &job.id.to_string(), "--output", "json"])
    });
    let printed: Vec<ShardJob> = serde_json::from_slice(&out.stdout).expect("jobs as JSON");
    assert_eq!(printed, vec![job.clone()]);
    let unknown = c
        .client()
        .shard_job(job.id + 1000)
        .await
        .expect_err("no such job");
    assert_eq!(unknown.code(), Some(ErrorCode::NotFound), "{unknown}");
}

/// Every topic in exactly one group, the one `map` routes it to, and no
/// group folder left that `map` does not place.
async fn one_home_each(c: &Cluster, map: &ShardMap, topics: &[String]) {
    let status = view(c, 1).await.expect("shards");
    assert_eq!(status.map.groups, map.groups);
    let held: u64 = status
        .groups
        .iter()
        .filter(|g| g.id != 0)
        .map(|g| g.topics)
        .sum();
    assert_eq!(
        held,
        topics.len() as u64,
        "a topic in two groups: {status:?}"
    );
    let client = c.client();
    for t in topics {
        let s = client.queue_stats(t).await.expect("stats");
        assert_eq!(s.group, map.group_of(t), "{t}");
    }
    let nodes = [1, 2, 3];
    wait_ok(
        Duration::from_secs(30),
        "data folders as the map says",
        || async {
            if let Some(m) = misplaced(c, map, &nodes) {
                return Err(m);
            }
            for n in nodes {
                let dir = c.node(n).data_dir.join("groups");
                for e in std::fs::read_dir(&dir).map_err(|e| e.to_string())? {
                    let name = e.map_err(|e| e.to_string())?.file_name();
                    let id: u64 = name.to_string_lossy().parse().unwrap_or(0);
                    if map.group(id).is_none() {
                        return Err(format!("node {n} still has group {id}"));
                    }
                }
            }
            Ok(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn resharding_2_5_3_under_load_moves_the_rings_share_and_loses_nothing() {
    let c = Cluster::up_with(3, &[], &["--shards", "2"]);
    c.wait_leader(3).await;
    let first = view(&c, 1).await.expect("shards").map;
    assert_eq!(first.groups.len(), 2);

    let plan = Plan {
        topics: (0..TOPICS).map(|i| format!("reshard-{i:02}")).collect(),
        messages: MESSAGES,
        batch: 1,
        visibility_ms: 3_000,
    };
    let total = TOPICS as u64 * MESSAGES;
    // Producers and consumers through every node.
    let run = start(
        &plan,
        |i| c.client_for(1 + (i % 3) as u64),
        |i| c.client_for(1 + ((i + 1) % 3) as u64),
    );
    run.published_at_least(total / 10).await;

    let mut before = first.clone();
    for groups in [5u64, 3] {
        let out = dsync_ok(&c, &["shard", "reshard", "--groups", &groups.to_string()]);
        let at = run.published.load(std::sync::atomic::Ordering::Relaxed);
        println!("resharded to {groups} at {at} of {total} published:\n{out}");
        assert!(
            at < total,
            "the producers finished before the reshard to {groups}"
        );
        let job = last_job(&c).await;
        let after = view(&c, 1).await.expect("shards").map;
        assert_eq!(after.groups.len() as u64, groups);
        let moved: BTreeSet<String> = job.topics.iter().map(|t| t.topic.clone()).collect();
        let expected = rerouted(&plan.topics, &before, &after);
        assert_eq!(
            moved, expected,
            "the topics the ring reroutes, and only those"
        );
        let share = moved.len() as f64 / TOPICS as f64;
        let ring = 1.0
            - before.groups.len().min(after.groups.len()) as f64
                / before.groups.len().max(after.groups.len()) as f64;
        println!(
            "{} -> {groups}: {} of {TOPICS} topics moved ({share:.2}; the ring's share about {ring:.2})",
            before.groups.len(),
            moved.len()
        );
        one_home_each(&c, &after, &plan.topics).await;
        before = after;
    }

    let history = run.history.clone();
    let (report, stats) = run.drain(&c.client_for(2), Duration::from_secs(180)).await;
    one_job_by_id(&c, &last_job(&c).await).await;
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.acknowledged_enqueues, total as usize);
    for (t, s) in &stats {
        assert_eq!(
            (s.enqueued_total, s.dead_lettered),
            (MESSAGES, 0),
            "{t}: {s:?}"
        );
        let order = first_deliveries(&history, t);
        assert_eq!(order.len() as u64, MESSAGES, "{t}");
        let once = delivered_once(&history, t);
        let kept: Vec<u64> = order.into_iter().filter(|s| once.contains(s)).collect();
        assert!(
            kept.windows(2).all(|w| w[0] < w[1]),
            "{t}: out of FIFO order: {kept:?}"
        );
    }
    println!(
        "{total} messages through 2 -> 5 -> 3 groups, {} redeliveries",
        report.duplicates
    );
}

/// Dead letters live in their topic's group, are read under `T.dlq` from
/// any node, and move with their topic.
#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_read_and_moved_with_their_topic() {
    use dsync_api::queue::{ConsumeRequest, NewMessage, ReceiptsRequest, TopicSettings};

    let c = Cluster::up_with(3, &[], &["--shards", "4"]);
    c.wait_leader(3).await;
    let client = c.client();
    let topics: Vec<String> = (0..8).map(|i| format!("dl-{i}")).collect();
    let once = TopicSettings {
        max_attempts: Some(1),
        ..Default::default()
    };
    let consume = ConsumeRequest {
        consumer: "c".into(),
        max: 1,
        visibility_ms: Some(60_000),
        wait_ms: 0,
    };
    for t in &topics {
        client.queue_settings(t, &once).await.expect("settings");
        let m = NewMessage {
            payload: serde_json::json!(t),
            delay_ms: None,
            dedup_id: None,
        };
        client.queue_push(t, vec![m]).await.expect("push");
        let got = client.queue_consume(t, &consume).await.expect("consume");
        let nack = ReceiptsRequest {
            receipts: vec![got.messages[0].receipt.clone()],
            delay_ms: None,
            visibility_ms: None,
        };
        client.queue_receipts(t, "nack", &nack).await.expect("nack");
    }
    let check = |map: ShardMap| {
        let (client, topics) = (c.client(), topics.clone());
        async move {
            for t in &topics {
                let dlq = client.queue_stats(&format!("{t}.dlq")).await.expect("dlq");
                assert_eq!(dlq.ready, 1, "{t}.dlq");
                assert_eq!(dlq.group, map.group_of(t), "{t}.dlq lives with {t}");
                let s = client.queue_stats(t).await.expect("stats");
                assert_eq!(s.dead_lettered, 1, "{t}");
            }
        }
    };
    let before = view(&c, 1).await.expect("shards").map;
    check(before).await;
    dsync_ok(&c, &["shard", "reshard", "--groups", "2"]);
    let after = view(&c, 1).await.expect("shards").map;
    check(after.clone()).await;
    let t = &topics[0];
    let got = client
        .queue_consume(&format!("{t}.dlq"), &consume)
        .await
        .expect("consume the dead letter");
    assert_eq!(got.messages[0].payload, serde_json::json!(t));
}
