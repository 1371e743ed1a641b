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
    let log = c.node(1).data_dir.join("raft-log.redb");
    assert!(
        flip_all(&log, b"log-marker-value-0123456789") > 0,
        "marker not found in the log"
    );

    let out = start_server(&c, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "node started from a corrupt log");
    assert!(
        stderr.contains("raft-log.redb"),
        "error does not name the file: {stderr}"
    );
}
