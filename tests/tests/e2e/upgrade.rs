//! Issue 7, acceptance 3 (rolling upgrade, rollback of a broken binary) and
//! `dsync node drain` / `dsync node ready`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dsync_api::locks::{AcquireRequest, LockMode};
use dsync_api::types::Consistency;
use dsync_api::{Client, ClientConfig, ErrorCode};
use dsync_tests::{dsync_bin, Cluster};
use serde_json::json;

/// A "second build" of the same code: a wrapper that runs the binary under
/// test reporting another version (DSYNC_VERSION_OVERRIDE is a testing aid
/// that changes only the reported version string).
fn wrapper(dir: &Path, name: &str, version: &str, broken: bool) -> PathBuf {
    let path = dir.join(name);
    let crash = if broken {
        "case \"$1\" in server) echo 'this build crashes at start' >&2; exit 1;; esac\n"
    } else {
        ""
    };
    let script = format!(
        "#!/bin/sh\n{crash}DSYNC_VERSION_OVERRIDE='{version}' exec '{}' \"$@\"\n",
        dsync_bin().display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_turns_clients_away_and_moves_leadership_and_ready_reports_it() {
    let c = Cluster::up(3, &[]);
    let leader = c.wait_leader(3).await;
    let out = c.dsync_ok(&["node", "drain", &leader.to_string(), "--output", "json"]);
    let v = json_of(&out);
    assert_eq!(v["was_leader"], json!(true));
    assert_ne!(v["leader"], json!(leader));
    assert_ne!(v["leader"], json!(null));

    // The drained node answers client routes with 503 + Retry-After …
    let resp = reqwest::Client::new()
        .put(format!("http://{}/v1/kv/x", c.node(leader).addr))
        .json(&json!({"value": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let mut cfg = ClientConfig::new(vec![c.node(leader).addr]);
    cfg.retry_for = Duration::from_millis(300);
    let err = Client::new(cfg)
        .unwrap()
        .kv_put("x", json!(1), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unavailable));
    // … while its status still answers and clients of the cluster move on.
    assert_eq!(
        c.client_for(leader)
            .node_status(&c.node(leader).addr)
            .await
            .unwrap()
            .id,
        leader
    );
    c.client()
        .kv_put("x", json!(2), None)
        .await
        .expect("write through the others");

    let out = c.dsync(&[
        "node",
        "ready",
        &leader.to_string(),
        "--timeout",
        "0",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert!(v["reason"].as_str().unwrap().contains("draining"), "{v}");

    // DELETE ends the drain (so does a restart).
    let resp = reqwest::Client::new()
        .delete(format!("http://{}/v1/node/drain", c.node(leader).addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let out = c.dsync_ok(&[
        "node",
        "ready",
        &leader.to_string(),
        "--timeout",
        "30",
        "--output",
        "json",
    ]);
    assert_eq!(json_of(&out)["ready"], json!(true));
}

/// What one load worker did: requests that succeeded, failures, and the
/// last value it wrote under its lock.
type LoadResult = (u64, Vec<String>, Option<(String, u64)>);

/// Lock + fenced-write load until `stop`.
fn spawn_load(c: &Cluster, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<LoadResult>> {
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let client = c.client();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ops, mut failed, mut last) = (0u64, Vec::new(), None);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let lock = format!("job-{w}");
                let req = AcquireRequest {
                    owner: format!("worker-{w}"),
                    mode: LockMode::Exclusive,
                    ttl_ms: 10_000,
                    wait_ms: 0,
                };
                let step = async {
                    let g = client
                        .lock_acquire(&lock, &req)
                        .await
                        .map_err(|e| format!("acquire: {e}"))?;
                    client
                        .kv_put_fenced(&format!("data/{w}"), json!(i), None, &lock, g.token)
                        .await
                        .map_err(|e| format!("fenced put: {e}"))?;
                    client
                        .lock_release(&lock, &req.owner, g.token)
                        .await
                        .map_err(|e| format!("release: {e}"))?;
                    Ok::<_, String>(())
                };
                match step.await {
                    Ok(()) => {
                        ops += 3;
                        last = Some((format!("data/{w}"), i));
                    }
                    Err(e) => failed.push(e),
                }
                i += 1;
            }
            (ops, failed, last)
        }));
    }
    tasks
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_upgrade_under_load_fails_no_request_and_ends_on_the_new_version() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    let next = wrapper(c.dir.path(), "dsync-next", "0.1.0-next", false);
    let next_s = next.to_str().unwrap();

    let out = c.dsync_ok(&[
        "cluster",
        "upgrade",
        "--binary",
        next_s,
        "--dry-run",
        "--output",
        "json",
    ]);
    let plan = json_of(&out);
    assert_eq!(plan["ok"], json!(true), "{plan}");
    assert_eq!(plan["target"]["version"], json!("0.1.0-next"));
    let steps = plan["plan"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(
        steps[2]["role"],
        json!("leader"),
        "the leader goes last: {plan}"
    );
    assert!(
        c.statuses().await.iter().all(|s| s.version != "0.1.0-next"),
        "dry run changed nothing"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let load = spawn_load(&c, stop.clone());
    let out = c.dsync_ok(&["cluster", "upgrade", "--binary", next_s, "--output", "json"]);
    let report = json_of(&out);
    assert_eq!(report["ok"], json!(true), "{report}");
    let results: Vec<&str> = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, vec!["upgraded"; 3]);
    stop.store(true, Ordering::Relaxed);
    let mut ops = 0;
    let mut lasts = Vec::new();
    for t in load {
        let (n, failed, last) = t.await.unwrap();
        assert!(
            failed.is_empty(),
            "failed requests during the upgrade: {failed:?}"
        );
        ops += n;
        lasts.extend(last);
    }
    assert!(ops > 30, "too little load: {ops}");
    println!("rolling upgrade: {ops} lock/KV requests, none failed");

    let statuses = c.statuses().await;
    assert_eq!(statuses.len(), 3);
    for s in &statuses {
        assert_eq!(s.version, "0.1.0-next", "node {}", s.id);
    }
    let client = c.client();
    for (key, i) in lasts {
        assert_eq!(
            client
                .kv_get(&key, Consistency::Linearizable)
                .await
                .unwrap()
                .value,
            json!(i)
        );
    }
    // Re-running is a no-op: every node is skipped.
    let report =
        json_of(&c.dsync_ok(&["cluster", "upgrade", "--binary", next_s, "--output", "json"]));
    assert!(
        report["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["result"] == json!("skipped")),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_binary_is_rolled_back_on_the_first_node_and_the_upgrade_stops() {
    let c = Cluster::up(3, &[]);
    let leader = c.wait_leader(3).await;
    let broken = wrapper(c.dir.path(), "dsync-broken", "0.1.0-broken", true);
    let out = c.dsync(&[
        "cluster",
        "upgrade",
        "--binary",
        broken.to_str().unwrap(),
        "--timeout",
        "20",
        "--output",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json_of(&out);
    assert_eq!(report["ok"], json!(false));
    let nodes = report["nodes"].as_array().unwrap();
    assert_eq!(nodes[0]["result"], json!("rolled_back"), "{report}");
    assert_ne!(nodes[0]["id"], json!(leader), "a follower goes first");
    assert!(
        nodes[1..]
            .iter()
            .all(|n| n["result"] == json!("not_reached")),
        "{report}"
    );
    let first = nodes[0]["id"].as_u64().unwrap();
    assert_ne!(c.node(first).pid, None);

    c.wait_leader(3).await;
    let statuses = c.statuses().await;
    assert_eq!(statuses.len(), 3, "every node runs again");
    assert!(
        statuses.iter().all(|s| s.version == dsync_server_version()),
        "{statuses:?}"
    );
    c.client_for(first)
        .kv_put("after-rollback", json!(1), None)
        .await
        .expect("write");
}

fn dsync_server_version() -> String {
    let out = std::process::Command::new(dsync_bin())
        .args(["version", "--output", "json"])
        .output()
        .unwrap();
    json_of(&out)["version"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rolling_upgrade_script_upgrades_and_rolls_back_from_primitives() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/rolling-upgrade.sh");
    let run = |binary: &Path| {
        let out = std::process::Command::new("bash")
            .arg(&script)
            .arg("--binary")
            .arg(binary)
            .arg("--dsync")
            .arg(dsync_bin())
            .args(["--timeout", "20"])
            .env("DSYNC_DIR", c.cluster_dir())
            .env_remove("DSYNC_ENDPOINTS")
            .output()
            .unwrap();
        (out.status.code(), json_of(&out))
    };
    let next = wrapper(c.dir.path(), "dsync-next", "0.1.0-next", false);
    let (code, report) = run(&next);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["ok"], json!(true));
    let results: Vec<&str> = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, vec!["upgraded"; 3]);
    assert!(c.statuses().await.iter().all(|s| s.version == "0.1.0-next"));

    // A broken build: the first node is rolled back to what it ran before.
    let broken = wrapper(c.dir.path(), "dsync-broken", "0.1.0-broken", true);
    let (code, report) = run(&broken);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(
        report["nodes"][0]["result"],
        json!("rolled_back"),
        "{report}"
    );
    c.wait_leader(3).await;
    let statuses = c.statuses().await;
    assert_eq!(statuses.len(), 3);
    assert!(
        statuses.iter().all(|s| s.version == "0.1.0-next"),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn draining_the_only_voter_is_refused_and_it_keeps_serving() {
    let c = Cluster::up(1, &[]);
    c.wait_leader(1).await;
    let out = c.dsync(&["node", "drain", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only voter"), "{err}");
    c.client()
        .kv_put("k", json!(1), None)
        .await
        .expect("still serving");
    c.dsync_ok(&["node", "ready", "1", "--timeout", "5"]);
}
