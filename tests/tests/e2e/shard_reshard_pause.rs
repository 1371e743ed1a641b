//! Issue 18, acceptance 4 for resharding: while `shard reshard` moves a
//! topic of 100,000 ready messages to a new group, a producer keeps
//! publishing to it (its writes wait in the server while the topic is
//! frozen, they are not refused), and a consumer long-polling another
//! moving topic follows it to its new group and receives every message.
//! The longest publish is printed for docs/benchmarks.md, never asserted:
//! this machine's speed drifts.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dsync_api::queue::{ConsumeRequest, NewMessage, ReceiptsRequest};
use dsync_api::shards::{reshard_target, JobState, ReshardRequest};
use dsync_api::Client;
use dsync_tests::shard_workload::view;
use dsync_tests::{wait_until, Cluster};
use serde_json::json;

const READY: usize = 100_000;

fn messages(from: usize, n: usize) -> Vec<NewMessage> {
    (from..from + n)
        .map(|i| NewMessage {
            payload: json!(i),
            delay_ms: None,
            dedup_id: Some(format!("m-{i}")),
        })
        .collect()
}

/// Publishes one message at a time to `topic` until `stop`, timing each.
fn producer(
    client: Client,
    topic: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Vec<(Instant, Duration)>)> {
    tokio::spawn(async move {
        let mut sent = 0;
        let mut times = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            client
                .queue_push(topic, messages(sent, 1))
                .await
                .expect("publish");
            times.push((t, t.elapsed()));
            sent += 1;
        }
        (sent, times)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_topic_of_100k_moves_between_groups_while_its_producer_and_a_long_poller_go_on() {
    let c = Cluster::up_with(3, &[], &["--shards", "1"]);
    c.wait_leader(3).await;
    let map = view(&c, 1).await.expect("shards").map;
    let target = reshard_target(&map, 0, &[1, 2, 3], 2, 3).unwrap();
    // Both topics are ones the new group takes.
    let moving = |prefix: &str| {
        (0..)
            .map(|i| format!("{prefix}-{i}"))
            .find(|t| target.group_of(t) == 2)
            .unwrap()
    };
    let backlog: &'static str = Box::leak(moving("backlog").into_boxed_str());
    let live: &'static str = Box::leak(moving("live").into_boxed_str());
    let client = c.client();
    for i in (0..READY).step_by(1000) {
        client
            .queue_push(backlog, messages(i, 1000))
            .await
            .expect("fill");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let into_backlog = producer(c.client_for(2), backlog, stop.clone());
    let into_live = producer(c.client_for(3), live, stop.clone());
    let consumer = {
        let (client, stop) = (c.client_for(1), stop.clone());
        tokio::spawn(async move {
            let req = ConsumeRequest {
                consumer: "poller".into(),
                max: 100,
                visibility_ms: Some(10_000),
                wait_ms: 5_000,
            };
            let mut got = BTreeSet::new();
            loop {
                let batch = client.queue_consume(live, &req).await.expect("consume");
                if batch.messages.is_empty() && stop.load(Ordering::Relaxed) {
                    return got;
                }
                for m in &batch.messages {
                    got.insert(m.payload.as_u64().expect("number") as usize);
                }
                if !batch.messages.is_empty() {
                    let ack = ReceiptsRequest {
                        receipts: batch.messages.iter().map(|m| m.receipt.clone()).collect(),
                        delay_ms: None,
                        visibility_ms: None,
                    };
                    client.queue_receipts(live, "ack", &ack).await.expect("ack");
                }
            }
        })
    };
    wait_until(
        Duration::from_secs(30),
        "the producers under way",
        || async {
            let s = client.queue_stats(live).await.ok()?;
            (s.enqueued_total >= 20).then_some(())
        },
    )
    .await;

    let started = Instant::now();
    let req = ReshardRequest {
        groups: 2,
        dry_run: false,
    };
    let plan = client.shards_reshard(&req).await.expect("reshard");
    let id = plan.job.expect("a job");
    let job = wait_until(Duration::from_secs(180), "the reshard done", || async {
        let jobs = client.shard_jobs().await.ok()?;
        jobs.into_iter()
            .find(|j| j.id == id && j.state != JobState::Running)
    })
    .await;
    let took = started.elapsed();
    assert_eq!(job.state, JobState::Done, "{job:?}");
    let names: Vec<&str> = job.topics.iter().map(|t| t.topic.as_str()).collect();
    assert!(
        names.contains(&backlog) && names.contains(&live),
        "{names:?}"
    );

    let at = client
        .queue_stats(live)
        .await
        .expect("stats")
        .enqueued_total;
    wait_until(
        Duration::from_secs(30),
        "publishes after the move",
        || async {
            let s = client.queue_stats(live).await.ok()?;
            (s.enqueued_total >= at + 20).then_some(())
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let (to_backlog, times) = into_backlog.await.expect("producer");
    let (to_live, _) = into_live.await.expect("producer");
    let got = consumer.await.expect("consumer");
    assert_eq!(
        got,
        (0..to_live).collect::<BTreeSet<_>>(),
        "every message published to {live} consumed"
    );
    let s = client.queue_stats(backlog).await.expect("stats");
    assert_eq!(s.group, 2);
    // The producer's first ids repeat the fill's dedup ids (m-0, m-1, ...)
    // and are answered as those: the backlog grows by the rest.
    assert_eq!(
        s.ready as usize,
        READY.max(to_backlog),
        "the backlog moved whole"
    );
    let ended = started + took;
    let (when, worst) = times
        .iter()
        .filter(|(t, d)| *t + *d >= started && *t <= ended)
        .max_by_key(|(_, d)| *d)
        .copied()
        .expect("publishes during the reshard");
    println!(
        "reshard 1 -> 2 groups moving {} topics, one of {READY} ready messages: {:.1} s; \
         the longest publish to it {} ms ({:.1} s in)",
        job.topics.len(),
        took.as_secs_f64(),
        worst.as_millis(),
        when.saturating_duration_since(started).as_secs_f64()
    );
}
