//! Issue 17, acceptance 4: a cluster created by the release before queue
//! groups (commit 137f8b3: format 3 snapshots, no `SetShards`, no shard
//! map in the state) starts under this binary with its topics intact.
//!
//! The fixture, tests/fixtures/pre-shards-3node.tar.gz, is a stopped 3-node
//! local cluster that release made with `cluster up` and its own CLI; its
//! state is half in a snapshot, half in the log after it (README.md there
//! says how it was made and how to make it again). The nodes keep the ports
//! it was created on, and run under libfaketime so its leases and
//! visibility deadlines have not lapsed (`dsync_tests::fixture` says why).

use std::collections::BTreeMap;
use std::time::Duration;

use dsync_api::queue::{ConsumeRequest, Delivered, NewMessage, ReceiptsRequest, TopicStats};
use dsync_api::shards::{ShardMap, HEADER_GROUP};
use dsync_api::types::Consistency;
use dsync_api::{Client, ErrorCode};
use dsync_tests::fixture::{snapshot_format, Manifest, OldCluster};
use dsync_tests::{wait_ok, Cluster};
use serde_json::{json, Value};

const ARCHIVE: &str = "pre-shards-3node.tar.gz";
/// Messages the fixture holds unacked: orders 30 ready + 3 in flight,
/// emails 10, jobs 2, jobs.dlq 1, audit 1.
const HELD: u64 = 47;
const TOPICS: [&str; 5] = ["audit", "emails", "jobs", "jobs.dlq", "orders"];

/// A message with no delay and no dedup id.
fn message(payload: Value) -> NewMessage {
    NewMessage {
        payload,
        delay_ms: None,
        dedup_id: None,
    }
}

/// Pushes one message through `addr` and returns the `x-dsync-group` it
/// was answered with.
async fn push_via(addr: &str, topic: &str, payload: Value) -> String {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/v1/queues/{topic}/messages"))
        .json(&json!({ "payload": payload }))
        .send()
        .await
        .expect("push");
    assert_eq!(r.status().as_u16(), 201, "push to {topic}: {r:?}");
    r.headers()
        .get(HEADER_GROUP)
        .unwrap_or_else(|| panic!("push to {topic} without {HEADER_GROUP}"))
        .to_str()
        .unwrap()
        .to_string()
}

async fn consume(client: &Client, topic: &str, max: usize) -> Vec<Delivered> {
    let req = ConsumeRequest {
        consumer: "upgraded".into(),
        max,
        visibility_ms: Some(60_000),
        wait_ms: 0,
    };
    client
        .queue_consume(topic, &req)
        .await
        .unwrap_or_else(|e| panic!("consume {topic}: {e}"))
        .messages
}

async fn ack(client: &Client, topic: &str, receipts: Vec<String>) -> usize {
    let req = ReceiptsRequest {
        receipts,
        delay_ms: None,
        visibility_ms: None,
    };
    client
        .queue_receipts(topic, "ack", &req)
        .await
        .unwrap_or_else(|e| panic!("ack {topic}: {e}"))
        .count
}

/// The counters and settings of a topic (not its age, not its group).
fn counts(t: &TopicStats) -> [u64; 11] {
    [
        t.ready,
        t.in_flight,
        t.delayed,
        t.dead_lettered,
        t.enqueued_total,
        t.acked_total,
        t.redelivered_total,
        t.max_attempts as u64,
        t.visibility_ms,
        t.max_message_bytes,
        t.retention_ms,
    ]
}

/// Every key, lock and topic is as the old leader last answered, with
/// `more_orders` messages pushed to `orders` since; the control group
/// holds the topics and there are no queue groups.
async fn as_created(c: &Cluster, m: &Manifest, more_orders: u64) {
    let client = c.client();
    let kv = client
        .kv_list("", None, Consistency::Linearizable)
        .await
        .expect("kv list");
    let kv: BTreeMap<_, _> = kv.items.iter().map(|i| (i.key.as_str(), i)).collect();
    for old in &m.api.kv.items {
        let now = kv
            .get(old.key.as_str())
            .unwrap_or_else(|| panic!("key {} is gone", old.key));
        assert_eq!((&now.value, now.version), (&old.value, old.version));
    }
    assert_eq!(
        kv["app/config"].value,
        json!({"retries": 3, "mode": "fast"})
    );
    assert_eq!(kv["app/late"].value, json!("after-snapshot"));
    assert_eq!(kv["counter"].value, json!(12));
    let gone = client.kv_get("tmp/gone", Consistency::Linearizable).await;
    assert_eq!(gone.unwrap_err().code(), Some(ErrorCode::NotFound));

    for old in &m.api.locks.locks {
        let now = client.lock_get(&old.name).await.expect("lock");
        assert_eq!(now.holders.len(), old.holders.len(), "{now:?}");
        for (h, o) in now.holders.iter().zip(&old.holders) {
            assert_eq!(
                (&h.owner, h.mode, h.token, h.ttl_ms),
                (&o.owner, o.mode, o.token, o.ttl_ms)
            );
            // The lease ends when it did (plus a new leader's grace, once
            // per start), neither reset by the restart nor lapsed.
            assert!(
                h.expires_in_ms <= o.expires_in_ms + 10_000
                    && h.expires_in_ms + 600_000 >= o.expires_in_ms,
                "lease of {} on {}: {} ms left, {} at the stop",
                h.owner,
                old.name,
                h.expires_in_ms,
                o.expires_in_ms
            );
        }
    }
    let owners: Vec<String> = client
        .lock_get("reports")
        .await
        .unwrap()
        .holders
        .into_iter()
        .map(|h| h.owner)
        .collect();
    assert_eq!(owners, ["reader-a", "reader-b", "reader-c"]);

    for old in &m.api.queues.topics {
        let now = client.queue_stats(&old.topic).await.expect("topic stats");
        let mut want = counts(old);
        if old.topic == "orders" {
            want[0] += more_orders;
            want[4] += more_orders;
        }
        assert_eq!(counts(&now), want, "topic {}", old.topic);
        assert_eq!(now.group, 0, "{} is in the control group", old.topic);
    }
    let orders = client.queue_stats("orders").await.unwrap();
    assert_eq!((orders.in_flight, orders.acked_total), (3, 2));
    let emails = client.queue_stats("emails").await.unwrap();
    assert_eq!(
        (emails.ready, emails.max_attempts, emails.visibility_ms),
        (10, 5, 45_000)
    );
    assert_eq!(
        (emails.max_message_bytes, emails.retention_ms),
        (4096, 240 * 3_600_000)
    );
    let jobs = client.queue_stats("jobs").await.unwrap();
    assert_eq!(
        (jobs.ready, jobs.dead_lettered, jobs.max_attempts),
        (2, 1, 1)
    );

    let s = client.shards().await.expect("shards");
    assert!(s.map.groups.is_empty(), "{:?}", s.map);
    assert_eq!(s.map.epoch, 0);
    assert_eq!(s.groups.len(), 1, "only the control group: {s:?}");
    let g = &s.groups[0];
    assert_eq!((g.id, g.holds_topics), (0, true));
    assert_eq!(
        (g.topics, g.depth),
        (TOPICS.len() as u64, HELD + more_orders)
    );
    assert!(g.leader.is_some());
}

/// Waits until every node's control-group snapshot is `format`.
async fn snapshots_are(c: &Cluster, format: u32) {
    wait_ok(Duration::from_secs(30), "new snapshots", || async {
        for n in c.nodes() {
            let path = n.data_dir.join("snapshot.bin");
            match snapshot_format(&path) {
                Some(f) if f == format => {}
                other => return Err(format!("{}: format {other:?}", path.display())),
            }
        }
        Ok(())
    })
    .await
}

async fn restart(c: &Cluster) {
    c.dsync_ok(&["cluster", "down"]);
    c.dsync_ok(&["cluster", "up"]);
    c.wait_leader(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_release_before_queue_groups_reopens_with_every_key_lock_and_message() {
    // Snapshots often, so this binary writes its own over the old ones.
    let old = OldCluster::unpack(ARCHIVE, &[("DSYNC_SNAPSHOT_EVERY", "20")]);
    let (c, m) = (&old.cluster, &old.manifest);
    assert_eq!(m.commit, "137f8b3");
    assert!(
        m.snapshot_index_max < m.first_log_only_index && m.first_log_only_index <= m.last_index,
        "the fixture's state spans its snapshots and the log after them: {m:?}"
    );
    snapshots_are(c, 3).await;

    c.dsync_ok(&["cluster", "up"]);
    let leader = c.wait_leader(3).await;
    as_created(c, m, 0).await;

    // The dedup window came along: a retried push gets the first id back.
    let client = c.client();
    let retry = NewMessage {
        dedup_id: Some("evt-1".into()),
        ..message(json!({"event": "login"}))
    };
    let ids = client.queue_push("audit", vec![retry]).await.unwrap().ids;
    assert_eq!(ids, [m.audit_id]);

    // An old topic takes new messages, in the control group.
    let group = push_via(&c.node(leader).addr, "orders", json!({"order": 36})).await;
    assert_eq!(group, "0");

    // Enough writes for every node to snapshot (format 6, this binary's) over the old
    // data; then it all opens again, snapshot and log of this binary.
    for i in 0..25 {
        client
            .kv_put(&format!("new/{i}"), json!(i), None)
            .await
            .unwrap();
    }
    snapshots_are(c, 6).await;
    restart(c).await;
    as_created(c, m, 1).await;
    let item = client
        .kv_get("new/24", Consistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(item.value, json!(24));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_groups_wait_until_the_old_topics_are_drained() {
    let old = OldCluster::unpack(ARCHIVE, &[]);
    let (c, m) = (&old.cluster, &old.manifest);
    c.dsync_ok(&["cluster", "up"]);
    c.wait_leader(3).await;

    let out = c.dsync(&["shard", "init", "--groups", "2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "init over held messages: {err}");
    assert!(
        err.contains(&format!(
            "the control group still holds {HELD} unacked messages"
        )) && err.contains("Drain them"),
        "{err}"
    );
    let client = c.client();
    assert!(client.shards().await.unwrap().map.groups.is_empty());

    // FIFO with the payloads pushed by the old release: orders 1 and 2 were
    // acked, 3 to 5 are in flight, 6 to 35 ready.
    let got = consume(&client, "orders", 100).await;
    let payloads: Vec<Value> = got.iter().map(|d| d.payload.clone()).collect();
    let want: Vec<Value> = (6..=35).map(|i| json!({ "order": i })).collect();
    assert_eq!(payloads, want);
    assert!(got.iter().all(|d| d.attempt == 1));
    assert_eq!(
        ack(
            &client,
            "orders",
            got.into_iter().map(|d| d.receipt).collect()
        )
        .await,
        30
    );
    // The old deliveries settle with the receipts the old release gave.
    let settled = ack(&client, "orders", m.orders_receipts[2..].to_vec()).await;
    assert_eq!(settled, 3);
    let acked = client
        .queue_receipts(
            "orders",
            "ack",
            &ReceiptsRequest {
                receipts: vec![m.orders_receipts[0].clone()],
                delay_ms: None,
                visibility_ms: None,
            },
        )
        .await;
    assert_eq!(acked.unwrap_err().code(), Some(ErrorCode::StaleReceipt));

    let fifo: [(&str, Vec<Value>); 4] = [
        ("emails", (1..=10).map(|i| json!({ "email": i })).collect()),
        ("jobs", vec![json!("test"), json!("deploy")]),
        ("jobs.dlq", vec![json!("build")]),
        ("audit", vec![json!({"event": "login"})]),
    ];
    for (topic, want) in fifo {
        let got = consume(&client, topic, 100).await;
        let payloads: Vec<Value> = got.iter().map(|d| d.payload.clone()).collect();
        assert_eq!(payloads, want, "{topic}");
        let n = ack(&client, topic, got.into_iter().map(|d| d.receipt).collect()).await;
        assert_eq!(n, want.len());
    }
    for topic in TOPICS {
        let t = client.queue_stats(topic).await.unwrap();
        assert_eq!(
            (t.ready, t.in_flight, t.delayed, t.dead_lettered),
            (0, 0, 0, 0)
        );
    }

    let out = c.dsync_ok(&["shard", "init", "--groups", "2", "-o", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("init json");
    let map: ShardMap = serde_json::from_value(report["map"].clone()).expect("map");
    assert_eq!(map.groups.len(), 2);

    // The old topics' settings moved with them into their queue groups,
    // and each topic is listed once, by the group that now holds it.
    let emails = client.queue_stats("emails").await.unwrap();
    assert_eq!(
        (emails.group, emails.max_attempts, emails.visibility_ms),
        (map.group_of("emails"), 5, 45_000)
    );
    assert_eq!(
        (emails.max_message_bytes, emails.retention_ms),
        (4096, 240 * 3_600_000)
    );
    assert_eq!(client.queue_stats("jobs").await.unwrap().max_attempts, 1);
    let listed = client.queues().await.unwrap();
    let names: Vec<&str> = listed.topics.iter().map(|t| t.topic.as_str()).collect();
    assert_eq!(
        names, TOPICS,
        "each old topic once, none left in the control group"
    );
    assert!(listed.topics.iter().all(|t| t.group != 0), "{names:?}");

    // New topics go to the queue groups, where the ring puts them.
    let leader = c.wait_leader(3).await;
    let mut placed = BTreeMap::new();
    for i in 0..8 {
        let topic = format!("fresh-{i}");
        let group = push_via(&c.node(leader).addr, &topic, json!({ "fresh": i })).await;
        assert_eq!(group, map.group_of(&topic).to_string(), "{topic}");
        let stats = client.queue_stats(&topic).await.unwrap();
        assert_eq!((stats.group.to_string(), stats.ready), (group.clone(), 1));
        placed.insert(topic, stats.group);
    }
    assert!(placed.values().all(|g| [1, 2].contains(g)), "{placed:?}");

    // The map, the new topics and the old keys and locks survive a restart.
    restart(c).await;
    let s = wait_ok(Duration::from_secs(30), "the map on every node", || async {
        let s = client.shards().await.map_err(|e| e.to_string())?;
        let led = s.groups.iter().filter(|g| g.leader.is_some()).count();
        (s.map == map && led == 3)
            .then_some(s)
            .ok_or_else(|| "map or group leaders not back yet".to_string())
    })
    .await;
    assert!(!s.groups[0].holds_topics);
    for (topic, group) in &placed {
        let got = consume(&client, topic, 10).await;
        assert_eq!(got.len(), 1, "{topic} in group {group}");
    }
    let counter = client
        .kv_get("counter", Consistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(counter.value, json!(12));
    let lock = client.lock_get("db-migration").await.unwrap();
    assert_eq!(lock.holders[0].owner, "migrator-1");
}
