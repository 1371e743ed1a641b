//! Issue 2, acceptance 2 and 6: acknowledged writes survive kill -9 of every
//! node; corrupted files stop a node with a message naming the file.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dsync_api::types::Consistency;
use dsync_tests::Cluster;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_kill_9_of_all_nodes() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    let client = c.client();
    let mut tasks = Vec::new();
    for w in 0..16u64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = BTreeMap::new();
            for i in 0..25u64 {
                let key = format!("d/{w}/{i}");
                let r = client
                    .kv_put(&key, json!({"w": w, "i": i}), None)
                    .await
                    .expect("write");
                acked.insert(key, r.version);
            }
            acked
        }));
    }
    let mut acked = BTreeMap::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    for n in c.nodes() {
        c.kill9(n.id);
    }
    c.dsync_ok(&["cluster", "up"]);
    c.wait_leader(3).await;
    let client = c.client();
    for (key, version) in &acked {
        let got = client
            .kv_get(key, Consistency::Linearizable)
            .await
            .expect("read after restart");
        assert_eq!(got.version, *version, "{key}");
    }
    assert_eq!(acked.len(), 400);
}

/// A write acknowledged an instant before every node dies must be what the
/// first linearizable read after the restart returns, on every node. The
/// nodes restart with a commit index that may predate that write (it is
/// persisted lazily), so a node must not serve reads from a leadership it
/// held before the crash. Several rounds, because how far the stored commit
/// index lags depends on timing.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_acknowledged_just_before_every_node_dies_is_read_first_after_restart() {
    let c = std::sync::Arc::new(Cluster::up(3, &[]));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for round in 0..8u64 {
        c.wait_leader(3).await;
        c.client()
            .kv_put("last", json!(round), None)
            .await
            .expect("write");
        for n in c.nodes() {
            c.kill9(n.id);
        }
        let addrs: Vec<(u64, String)> = c.nodes().into_iter().map(|n| (n.id, n.addr)).collect();
        let restart = {
            let c = c.clone();
            tokio::task::spawn_blocking(move || c.dsync_ok(&["cluster", "up"]))
        };
        // Poll every node from the moment they start; the first read each
        // one answers is the one that matters.
        let reads = addrs.into_iter().map(|(id, addr)| {
            let http = http.clone();
            async move {
                let url = format!(
                    "http://{addr}{}?consistency=linearizable",
                    dsync_api::routes::kv_key("last")
                );
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    assert!(Instant::now() < deadline, "node {id} never answered a read");
                    if let Ok(r) = http.get(&url).send().await {
                        if r.status().is_success() {
                            let body: serde_json::Value = r.json().await.unwrap();
                            return (id, body["value"].clone());
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        });
        for (id, value) in futures::future::join_all(reads).await {
            assert_eq!(value, json!(round), "round {round}: node {id}'s first read");
        }
        restart.await.unwrap();
    }
}

/// Starts one node by hand and returns its output once it exits. A node
/// that keeps running has accepted the damaged data: it is killed and the
/// test fails.
fn start_server(c: &Cluster, id: u64) -> std::process::Output {
    let node = c.node(id);
    let mut child = Command::new(&c.bin)
        .args(["server", "--config"])
        .arg(&node.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run dsync server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "node {id} kept running on damaged data:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn flip_all(path: &std::path::Path, marker: &[u8]) -> usize {
    let mut bytes = std::fs::read(path).unwrap();
    let mut hits = 0;
    let mut i = 0;
    while i + marker.len() <= bytes.len() {
        if &bytes[i..i + marker.len()] == marker {
            bytes[i + marker.len() / 2] ^= 0x55;
            hits += 1;
            i += marker.len();
        } else {
            i += 1;
        }
    }
    std::fs::write(path, bytes).unwrap();
    hits
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_snapshot_stops_the_node_naming_the_file() {
    let c = Cluster::up(1, &[("DSYNC_SNAPSHOT_EVERY", "20")]);
    let client = c.client();
    for i in 0..60 {
        client
            .kv_put(&format!("s/{i}"), json!("snapshot-marker-value"), None)
            .await
            .unwrap();
    }
    c.dsync_ok(&["cluster", "down"]);
    let snap = c.node(1).data_dir.join("snapshot.bin");
    assert!(snap.exists(), "expected a snapshot after 60 writes");
    assert!(flip_all(&snap, b"snapshot-marker-value") > 0);

    let out = start_server(&c, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "node started from a corrupt snapshot"
    );
    assert!(
        stderr.contains("snapshot.bin"),
        "error does not name the file: {stderr}"
    );
    assert!(
        stderr.contains("checksum"),
        "error does not say why: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_log_stops_the_node_naming_the_file() {
    let c = Cluster::up(1, &[]);
    c.client()
        .kv_put("victim", json!("log-marker-value-0123456789"), None)
        .await
        .unwrap();
    c.dsync_ok(&["cluster", "down"]);
    // The log is a folder of segment files; the entry is in one of them.
    let log = c.node(1).data_dir.join("raft-log");
    let hits: usize = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| flip_all(&p, b"log-marker-value-0123456789"))
        .sum();
    assert!(hits > 0, "marker not found in the log");

    let out = start_server(&c, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "node started from a corrupt log");
    assert!(
        stderr.contains("raft-log/") && stderr.contains(".seg"),
        "error does not name the segment file: {stderr}"
    );
}
