//! Issue 17, acceptance 5: a backup of a cluster with queue groups holds
//! every group; restored into a cluster of another size, every topic's
//! messages are back, ready and in flight as they were, and each topic is
//! served by the group that holds its messages.

use std::collections::BTreeMap;
use std::time::Duration;

use dsync_api::queue::{ConsumeRequest, NewMessage};
use dsync_api::shards::ShardMap;
use dsync_tests::{wait_until, Cluster};
use serde_json::{json, Value};

const TOPICS: usize = 24;
const PER_TOPIC: usize = 5;

fn consume(max: usize) -> ConsumeRequest {
    ConsumeRequest {
        consumer: "c".into(),
        max,
        visibility_ms: Some(600_000),
        wait_ms: 0,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sharded_backup_restores_every_groups_messages() {
    let c = Cluster::up_with(3, &[], &["--shards", "3"]);
    c.wait_leader(3).await;
    let client = c.client();
    for t in 0..TOPICS {
        let msgs = (0..PER_TOPIC)
            .map(|i| NewMessage {
                payload: json!({ "t": t, "i": i }),
                delay_ms: None,
                dedup_id: None,
            })
            .collect();
        client.queue_push(&format!("t{t}"), msgs).await.unwrap();
    }
    // One message of each topic in flight at the backup.
    for t in 0..TOPICS {
        let got = client
            .queue_consume(&format!("t{t}"), &consume(1))
            .await
            .unwrap();
        assert_eq!(got.messages.len(), 1);
    }
    let file = c.dir.path().join("sharded.backup");
    let out = c.dsync_ok(&[
        "backup",
        "create",
        "--out",
        file.to_str().unwrap(),
        "-o",
        "json",
    ]);
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["header"]["format"], json!(2));
    assert_eq!(created["header"]["groups"].as_array().unwrap().len(), 3);
    let s = &created["summary"];
    assert_eq!(s["topics"], json!(TOPICS));
    assert_eq!(s["messages_ready"], json!(TOPICS * (PER_TOPIC - 1)));
    assert_eq!(s["messages_in_flight"], json!(TOPICS));
    let old_map = client.shards().await.unwrap().map;
    // After the backup: none of this may come back.
    client
        .queue_push(
            "t0",
            vec![NewMessage {
                payload: json!("late"),
                delay_ms: None,
                dedup_id: None,
            }],
        )
        .await
        .unwrap();
    c.dsync_ok(&["cluster", "down", "--purge"]);

    let restored_dir = tempfile::Builder::new()
        .prefix("dsync-restore-")
        .tempdir()
        .unwrap();
    let into = restored_dir.path().join("cluster");
    let out = c.dsync_ok(&[
        "backup",
        "restore",
        file.to_str().unwrap(),
        "--into",
        into.to_str().unwrap(),
        "--nodes",
        "4",
        "-o",
        "json",
    ]);
    let restored: Value = serde_json::from_slice(&out.stdout).unwrap();
    let placed: BTreeMap<String, Vec<u64>> =
        serde_json::from_value(restored["groups"].clone()).unwrap();
    assert_eq!(placed.len(), 3, "{restored}");
    let r = Cluster::adopt(restored_dir, &[]);
    r.dsync_ok(&["cluster", "up"]);
    r.wait_leader(4).await;
    let rc = r.client();

    // The same groups and routes, placed over the four new nodes.
    let map: ShardMap = wait_for_groups(&r).await;
    assert_eq!(map.groups.len(), 3);
    for (old, new) in old_map.groups.iter().zip(&map.groups) {
        assert_eq!((old.id, old.vnodes), (new.id, new.vnodes));
        assert_eq!(placed[&new.id.to_string()], new.replicas);
    }
    assert!(map.epoch > old_map.epoch);
    for t in 0..TOPICS {
        let topic = format!("t{t}");
        assert_eq!(map.group_of(&topic), old_map.group_of(&topic));
        let stats = rc.queue_stats(&topic).await.unwrap();
        assert_eq!(
            (stats.ready, stats.in_flight, stats.group),
            ((PER_TOPIC - 1) as u64, 1, map.group_of(&topic)),
            "{topic}"
        );
        let got = rc.queue_consume(&topic, &consume(100)).await.unwrap();
        let seen: Vec<Value> = got.messages.iter().map(|m| m.payload.clone()).collect();
        let want: Vec<Value> = (1..PER_TOPIC).map(|i| json!({ "t": t, "i": i })).collect();
        assert_eq!(seen, want, "{topic}: the ready messages, in order");
    }
}

/// The restored cluster's map once every queue group has a leader.
async fn wait_for_groups(r: &Cluster) -> ShardMap {
    let client = r.client();
    wait_until(
        Duration::from_secs(60),
        "every restored group to elect",
        || async {
            let s = client.shards().await.ok()?;
            let led = s.groups.iter().skip(1).all(|g| g.leader.is_some());
            (!s.map.groups.is_empty() && led && s.groups.len() == s.map.groups.len() + 1)
                .then_some(s.map)
        },
    )
    .await
}
