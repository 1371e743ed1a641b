//! Issue 7, acceptance 2: backup under load, destroy, restore, compare; a
//! damaged backup is refused.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dsync_api::locks::{AcquireRequest, LockMode};
use dsync_api::queue::{ConsumeRequest, NewMessage};
use dsync_api::types::Consistency;
use dsync_tests::Cluster;
use serde_json::json;

fn acquire(owner: &str, mode: LockMode) -> AcquireRequest {
    AcquireRequest {
        owner: owner.into(),
        mode,
        ttl_ms: 600_000,
        wait_ms: 0,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_under_load_restores_into_a_new_cluster_at_its_point_in_time() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    let client = c.client();

    // State before the backup: keys, an exclusive and a shared lock, a
    // queue with ready and in-flight messages.
    for i in 0..30 {
        client
            .kv_put(&format!("a/{i:02}"), json!(i), None)
            .await
            .unwrap();
    }
    let l1 = client
        .lock_acquire("L1", &acquire("o1", LockMode::Exclusive))
        .await
        .unwrap();
    client
        .lock_acquire("L2", &acquire("s1", LockMode::Shared))
        .await
        .unwrap();
    client
        .lock_acquire("L2", &acquire("s2", LockMode::Shared))
        .await
        .unwrap();
    let msgs = (0..10)
        .map(|i| NewMessage {
            payload: json!({ "n": i }),
            delay_ms: None,
            dedup_id: None,
        })
        .collect();
    client.queue_push("jobs", msgs).await.unwrap();
    let consume = ConsumeRequest {
        consumer: "c1".into(),
        max: 3,
        visibility_ms: Some(600_000),
        wait_ms: 0,
    };
    let got = client.queue_consume("jobs", &consume).await.unwrap();
    assert_eq!(got.messages.len(), 3);

    // Writers keep going while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3 {
        let client = c.client();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("load/{w}/{i:06}");
                let v = client
                    .kv_put(&key, json!(i), None)
                    .await
                    .expect("load write");
                acked.push((key, i, v.version));
                i += 1;
            }
            acked
        }));
    }
    while writers.iter().all(|w| !w.is_finished())
        && client.status().await.unwrap().applied_index < 200
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let file = c.dir.path().join("cluster.backup");
    let out = c.dsync_ok(&[
        "backup",
        "create",
        "--out",
        file.to_str().unwrap(),
        "--output",
        "json",
    ]);
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let revision = created["summary"]["revision"].as_u64().unwrap();
    let old_cluster_id = created["header"]["cluster_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Keep writing a little after the point in time, then change the
    // pre-backup state: none of that may come back.
    let after_backup = client.status().await.unwrap().applied_index + 50;
    while client.status().await.unwrap().applied_index < after_backup {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut load = Vec::new();
    for w in writers {
        load.extend(w.await.unwrap());
    }
    client.kv_put("a/00", json!("changed"), None).await.unwrap();
    client.lock_release("L1", "o1", l1.token).await.unwrap();
    client.kv_put("late", json!(1), None).await.unwrap();
    let before: Vec<_> = load.iter().filter(|(_, _, v)| *v <= revision).collect();
    let after: Vec<_> = load.iter().filter(|(_, _, v)| *v > revision).collect();
    assert!(
        !before.is_empty() && !after.is_empty(),
        "the load must straddle the backup"
    );

    let out = c.dsync_ok(&[
        "backup",
        "inspect",
        file.to_str().unwrap(),
        "--output",
        "json",
    ]);
    let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspected["valid"], json!(true));
    assert_eq!(inspected["summary"]["locks_held"], json!(3));
    assert_eq!(inspected["summary"]["messages_in_flight"], json!(3));

    // Destroy the cluster entirely.
    c.dsync_ok(&["cluster", "down", "--purge"]);
    assert!(!c.cluster_dir().exists());

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
        "3",
        "--output",
        "json",
    ]);
    let restored: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(restored["cluster_id"], json!(old_cluster_id));
    let r = Cluster::adopt(restored_dir, &[]);
    r.dsync_ok(&["cluster", "up"]);
    r.wait_leader(3).await;
    let rc = r.client();

    // KV: the pre-backup keys as they were, the load up to the backup's
    // revision, nothing written after it.
    let a = rc
        .kv_list("a/", None, Consistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(a.items.len(), 30);
    assert_eq!(
        a.items[0].value,
        json!(0),
        "a/00 must predate its later change"
    );
    for (key, i, _) in &before {
        let got = rc.kv_get(key, Consistency::Linearizable).await.unwrap();
        assert_eq!(got.value, json!(i), "{key}");
    }
    for (key, _, _) in after.iter().take(50) {
        let err = rc.kv_get(key, Consistency::Linearizable).await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(dsync_api::ErrorCode::NotFound),
            "{key} is after the backup"
        );
    }
    assert!(rc.kv_get("late", Consistency::Linearizable).await.is_err());
    let n_load = rc
        .kv_list("load/", None, Consistency::Linearizable)
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(n_load, before.len());

    // Locks: the same holders and the same fencing token.
    let l1r = rc.lock_get("L1").await.unwrap();
    assert_eq!(l1r.holders.len(), 1);
    assert_eq!(l1r.holders[0].owner, "o1");
    assert_eq!(l1r.holders[0].token, l1.token);
    let mut shared: Vec<String> = rc
        .lock_get("L2")
        .await
        .unwrap()
        .holders
        .into_iter()
        .map(|h| h.owner)
        .collect();
    shared.sort();
    assert_eq!(shared, vec!["s1", "s2"]);
    // New grants continue above every token handed out before.
    let l3 = rc
        .lock_acquire("L3", &acquire("o3", LockMode::Exclusive))
        .await
        .unwrap();
    assert!(l3.token > revision);

    // Queue: 7 ready, 3 in flight.
    let stats = rc.queue_stats("jobs").await.unwrap();
    assert_eq!((stats.ready, stats.in_flight), (7, 3));
    let next = rc
        .queue_consume("jobs", &ConsumeRequest { max: 10, ..consume })
        .await
        .unwrap();
    assert_eq!(next.messages.len(), 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_backup_is_refused_by_inspect_and_restore() {
    let c = Cluster::up(1, &[]);
    c.wait_leader(1).await;
    c.client().kv_put("k", json!("v"), None).await.unwrap();
    let file = c.dir.path().join("b.backup");
    c.dsync_ok(&["backup", "create", "--out", file.to_str().unwrap()]);
    c.dsync_ok(&["backup", "inspect", file.to_str().unwrap()]);

    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x40;
    let bad = c.dir.path().join("bad.backup");
    std::fs::write(&bad, &bytes).unwrap();

    let out = c.dsync(&["backup", "inspect", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("damaged") && err.contains("SHA-256"), "{err}");

    let into = c.dir.path().join("restored");
    let out = c.dsync(&[
        "backup",
        "restore",
        bad.to_str().unwrap(),
        "--into",
        into.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !into.exists(),
        "nothing may be written from a damaged backup"
    );

    // A truncated file is refused as well.
    std::fs::write(&bad, &std::fs::read(&file).unwrap()[..100]).unwrap();
    assert_eq!(
        c.dsync(&["backup", "inspect", bad.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_quorum_is_recovered_from_a_stopped_nodes_data_folder() {
    // Frequent snapshots, so the state is a snapshot plus a log tail.
    let c = Cluster::up(3, &[("DSYNC_SNAPSHOT_EVERY", "50")]);
    let leader = c.wait_leader(3).await;
    let client = c.client();
    for i in 0..180 {
        client
            .kv_put(&format!("k/{i:03}"), json!(i), None)
            .await
            .unwrap();
    }
    // Every node is lost but the old leader's disk.
    for id in 1..=3 {
        c.kill9(id);
    }
    let data = c.node(leader).data_dir;
    let file = c.dir.path().join("salvaged.backup");
    let out = c.dsync_ok(&[
        "backup",
        "create",
        "--from-data-dir",
        data.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
        "--output",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["salvaged"]["snapshot_index"].as_u64().unwrap() > 0, "{v}");
    assert!(
        v["salvaged"]["last_index"].as_u64().unwrap()
            > v["salvaged"]["snapshot_index"].as_u64().unwrap(),
        "{v}"
    );

    let restored_dir = tempfile::Builder::new()
        .prefix("dsync-dr-")
        .tempdir()
        .unwrap();
    let into = restored_dir.path().join("cluster");
    c.dsync_ok(&[
        "backup",
        "restore",
        file.to_str().unwrap(),
        "--into",
        into.to_str().unwrap(),
        "--nodes",
        "3",
    ]);
    let r = Cluster::adopt(restored_dir, &[]);
    r.dsync_ok(&["cluster", "up"]);
    r.wait_leader(3).await;
    let items = r
        .client()
        .kv_list("k/", None, Consistency::Linearizable)
        .await
        .unwrap()
        .items;
    assert_eq!(items.len(), 180, "every acknowledged write survives");
    assert_eq!(items[179].value, json!(179));
}

#[tokio::test(flavor = "multi_thread")]
async fn schedule_takes_backups_and_keeps_the_newest() {
    let c = Cluster::up(1, &[]);
    c.wait_leader(1).await;
    let out_dir = c.dir.path().join("backups");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(out_dir.join("README"), "not ours").unwrap();
    let out = c.dsync_ok(&[
        "backup",
        "schedule",
        "--every",
        "50ms",
        "--keep",
        "2",
        "--count",
        "4",
        "--out-dir",
        out_dir.to_str().unwrap(),
        "--output",
        "json",
    ]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert!(lines.iter().all(|l| l["ok"] == json!(true)), "{lines:?}");
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names.len(),
        3,
        "two backups and the foreign file: {names:?}"
    );
    assert_eq!(names[0], "README");
    // The survivors are the last two taken, and valid.
    let last = lines[3]["file"].as_str().unwrap();
    assert!(last.ends_with(&names[2]), "{last} vs {names:?}");
    c.dsync_ok(&[
        "backup",
        "inspect",
        out_dir.join(&names[1]).to_str().unwrap(),
    ]);
}
