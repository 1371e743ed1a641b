//! Issue 4, acceptance 2–4: the message queue on a real 3-node cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dsync_api::queue::{ConsumeRequest, NewMessage, ReceiptsRequest, TopicSettings};
use dsync_api::{Client, ErrorCode};
use dsync_tests::{wait_until, Cluster};
use serde_json::json;

const PRODUCERS: u64 = 4;
const PER_PRODUCER: u64 = 2_500;
const BATCH: u64 = 100;

#[derive(Default)]
struct Seen {
    /// (producer, i) → deliveries.
    deliveries: BTreeMap<(u64, u64), u32>,
}

/// Pushes PER_PRODUCER messages in batches; a failed batch is retried with
/// the same dedup ids, so a retry never duplicates. Returns the
/// acknowledged messages.
async fn produce(client: Client, p: u64) -> BTreeSet<(u64, u64)> {
    let mut acked = BTreeSet::new();
    let mut start = 0;
    while start < PER_PRODUCER {
        let msgs: Vec<NewMessage> = (start..(start + BATCH).min(PER_PRODUCER))
            .map(|i| NewMessage {
                payload: json!({"p": p, "i": i, "pad": "x".repeat(64)}),
                delay_ms: None,
                dedup_id: Some(format!("p{p}-{i}")),
            })
            .collect();
        let n = msgs.len() as u64;
        match client.queue_push("jobs", msgs).await {
            Ok(r) => {
                assert_eq!(r.ids.len() as u64, n);
                acked.extend((start..start + n).map(|i| (p, i)));
                start += n;
            }
            Err(_) => continue, // unknown outcome or no leader: retry, dedup keeps it exactly-once
        }
    }
    acked
}

/// Consumes and acks until `stop` says so.
async fn consume(
    client: Client,
    c: u64,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let req = ConsumeRequest {
            consumer: format!("c{c}"),
            max: 100,
            visibility_ms: Some(3_000),
            wait_ms: 500,
        };
        let Ok(got) = client.queue_consume("jobs", &req).await else {
            continue;
        };
        let receipts: Vec<String> = got.messages.iter().map(|m| m.receipt.clone()).collect();
        {
            let mut s = seen.lock().unwrap();
            for m in &got.messages {
                let key = (
                    m.payload["p"].as_u64().unwrap(),
                    m.payload["i"].as_u64().unwrap(),
                );
                *s.deliveries.entry(key).or_default() += 1;
            }
        }
        if !receipts.is_empty() {
            // A lost ack only means a redelivery, counted as a duplicate.
            let _ = client
                .queue_receipts(
                    "jobs",
                    "ack",
                    &ReceiptsRequest {
                        receipts,
                        delay_ms: None,
                        visibility_ms: None,
                    },
                )
                .await;
        }
    }
}

async fn run(c: &Cluster, faults: bool) {
    let nodes = c.nodes();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut producers = Vec::new();
    let mut consumers = Vec::new();
    for i in 0..PRODUCERS {
        let client = c.client();
        client.prefer(i as usize % nodes.len()); // through different nodes
        producers.push(tokio::spawn(produce(client, i)));
        let client = c.client();
        client.prefer((i as usize + 1) % nodes.len());
        consumers.push(tokio::spawn(consume(client, i, seen.clone(), stop.clone())));
    }
    if faults {
        let delivered = |n: usize| {
            let seen = seen.clone();
            move || {
                let seen = seen.clone();
                async move { (seen.lock().unwrap().deliveries.len() >= n).then_some(()) }
            }
        };
        wait_until(
            Duration::from_secs(60),
            "2,000 deliveries",
            delivered(2_000),
        )
        .await;
        let first = c.wait_leader(3).await;
        c.kill9(first);
        println!("killed leader {first}");
        wait_until(
            Duration::from_secs(60),
            "5,000 deliveries",
            delivered(5_000),
        )
        .await;
        c.dsync_ok(&["cluster", "up"]);
        let second = c.wait_leader(3).await;
        c.kill9(second);
        println!("killed leader {second}");
    }
    let mut acked = BTreeSet::new();
    for p in producers {
        acked.extend(p.await.unwrap());
    }
    let total = (PRODUCERS * PER_PRODUCER) as usize;
    assert_eq!(acked.len(), total);
    let client = c.client();
    wait_until(
        Duration::from_secs(120),
        "every acknowledged message delivered and acked",
        || async {
            let all_seen = {
                let s = seen.lock().unwrap();
                acked.iter().all(|k| s.deliveries.contains_key(k))
            };
            let stats = client.queue_stats("jobs").await.ok()?;
            (all_seen && stats.ready == 0 && stats.in_flight == 0 && stats.delayed == 0)
                .then_some(())
        },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in consumers {
        t.await.unwrap();
    }
    let duplicates: u32 = {
        let s = seen.lock().unwrap();
        let unexpected: Vec<_> = s.deliveries.keys().filter(|k| !acked.contains(k)).collect();
        assert!(
            unexpected.is_empty(),
            "messages nobody enqueued: {unexpected:?}"
        );
        s.deliveries.values().map(|d| d - 1).sum()
    };
    let stats = client.queue_stats("jobs").await.unwrap();
    assert_eq!(
        stats.enqueued_total as usize, total,
        "dedup kept retried batches exactly-once"
    );
    assert!(stats.acked_total as usize >= total);
    println!(
        "{total} messages acknowledged, all delivered and acked; {duplicates} duplicate deliveries; {} redeliveries",
        stats.redelivered_total
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_messages_from_four_producers_all_delivered() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    run(&c, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_acknowledged_message_lost_when_the_leader_is_killed_twice() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    run(&c, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redelivery_dead_letters_redrive_and_stale_receipts() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    let client = c.client();
    client
        .queue_settings(
            "slow",
            &TopicSettings {
                max_attempts: Some(2),
                visibility_ms: Some(300),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let msg = NewMessage {
        payload: json!("work"),
        delay_ms: None,
        dedup_id: None,
    };
    let id = client.queue_push("slow", vec![msg]).await.unwrap().ids[0];
    let take = |wait_ms| ConsumeRequest {
        consumer: "never-acks".into(),
        max: 1,
        visibility_ms: None,
        wait_ms,
    };

    let first = client
        .queue_consume("slow", &take(0))
        .await
        .unwrap()
        .messages;
    assert_eq!((first[0].id, first[0].attempt), (id, 1));
    // Not acked: redelivered after the visibility timeout, attempt + 1.
    let second = client
        .queue_consume("slow", &take(5_000))
        .await
        .unwrap()
        .messages;
    assert_eq!((second[0].id, second[0].attempt), (id, 2));
    // The first delivery's receipt is stale now.
    let stale = client
        .queue_receipts(
            "slow",
            "ack",
            &ReceiptsRequest {
                receipts: vec![first[0].receipt.clone()],
                delay_ms: None,
                visibility_ms: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Some(ErrorCode::StaleReceipt));
    // Past max_attempts it moves to the dead-letter topic.
    wait_until(
        Duration::from_secs(10),
        "the message to be dead-lettered",
        || async {
            let s = client.queue_stats("slow").await.ok()?;
            (s.dead_lettered == 1 && s.in_flight == 0 && s.ready == 0).then_some(())
        },
    )
    .await;
    let dlq = client.queue_stats("slow.dlq").await.unwrap();
    assert_eq!(dlq.ready, 1);
    // Every node's /metrics shows it once that node has applied it.
    for n in c.nodes() {
        wait_until(
            Duration::from_secs(10),
            "the dead letter in /metrics",
            || async {
                let text = dsync_tests::fetch_metrics(&n.addr).await;
                (dsync_tests::metric(
                    &text,
                    "dsync_topic_dead_lettered{topic=\"slow\",group=\"0\"}",
                ) == Some(1.0))
                .then_some(())
            },
        )
        .await;
    }
    // Redrive brings it back, fresh.
    assert_eq!(client.queue_redrive("slow").await.unwrap().moved, 1);
    let back = client
        .queue_consume("slow", &take(0))
        .await
        .unwrap()
        .messages;
    assert_eq!(
        (back[0].payload.clone(), back[0].attempt),
        (json!("work"), 1)
    );
    client
        .queue_receipts(
            "slow",
            "ack",
            &ReceiptsRequest {
                receipts: vec![back[0].receipt.clone()],
                delay_ms: None,
                visibility_ms: None,
            },
        )
        .await
        .unwrap();
    let s = client.queue_stats("slow").await.unwrap();
    assert_eq!(
        (s.ready, s.in_flight, s.dead_lettered, s.acked_total),
        (0, 0, 0, 1)
    );
}
