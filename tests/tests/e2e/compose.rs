//! Issue 8: the image and the compose runtime, with containers killed and
//! partitioned. Runs only with DSYNC_DOCKER_TESTS=1 (scripts/test.sh builds
//! the image first); otherwise each test says so and passes.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dsync_api::cache::LineState;
use dsync_api::types::Consistency;
use dsync_api::{Client, ClientConfig};
use dsync_tests::compose::{enabled, run, ComposeCluster, ProbeNetwork};
use dsync_tests::{fetch_metrics, wait_until};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn compose_cluster_survives_a_killed_leader_container_and_it_catches_up() {
    if !enabled() {
        return;
    }
    let c = ComposeCluster::up(&[]);
    assert_eq!(c.file["runtime"], json!("compose"));
    let ids = c.ids();
    assert_eq!(ids, vec![1, 2, 3]);
    let leader = c.leader(&ids).await;

    // Writes through every node (followers forward over the compose network,
    // which resolves the service names inside the scratch image).
    for id in &ids {
        c.client_for(*id)
            .kv_put(&format!("via/{id}"), json!(id), None)
            .await
            .unwrap_or_else(|e| panic!("write through node {id}: {e}\n{}", c.compose_logs()));
    }

    run(Command::new("docker").args(["kill", &c.container(leader)]));
    let survivors: Vec<u64> = ids.iter().copied().filter(|i| *i != leader).collect();
    let new_leader = c.leader(&survivors).await;
    assert_ne!(new_leader, leader);
    let client = c.client();
    for i in 0..20 {
        client
            .kv_put(&format!("after/{i}"), json!(i), None)
            .await
            .expect("write after the leader container died");
    }

    run(Command::new("docker").args(["start", &c.container(leader)]));
    let back = c.client_for(leader);
    wait_until(
        Duration::from_secs(60),
        "the restarted node to catch up",
        || async {
            let item = back.kv_get("after/19", Consistency::Stale).await.ok()?;
            (item.value == json!(19)).then_some(())
        },
    )
    .await;
    for id in &ids {
        let item = back
            .kv_get(&format!("via/{id}"), Consistency::Stale)
            .await
            .expect("old write on the restarted node");
        assert_eq!(item.value, json!(id));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partitioned_leader_loses_leadership_and_refuses_writes_then_converges() {
    if !enabled() {
        return;
    }
    let c = ComposeCluster::up(&[]);
    let ids = c.ids();
    let leader = c.leader(&ids).await;
    let client = c.client();
    for i in 0..10 {
        client
            .kv_put(&format!("before/{i}"), json!(i), None)
            .await
            .expect("write before the partition");
    }

    // The node about to be cut off holds a cache line.
    client
        .cache_put(KEY, json!("old"))
        .await
        .expect("seed the cache");
    let line = c
        .client_for(leader)
        .cache_get(KEY)
        .await
        .expect("cache read on the leader");
    assert_eq!(line.value, json!("old"));
    assert_ne!(line.state, LineState::I, "the leader holds no line");

    let network = c.network();
    let container = c.container(leader);
    run(Command::new("docker").args(["network", "disconnect", &network, &container]));
    // Every grant or renewal of that line was confirmed by a quorum before
    // the cut, so its lease ends by this instant.
    let lease_end =
        Instant::now() + Duration::from_millis(dsync_server::Config::default().cache.lease_ms);
    let (_probe, isolated) = ProbeNetwork::attach(&container);
    let reads = IsolatedReads::start(&isolated).await;
    let majority: Vec<u64> = ids.iter().copied().filter(|i| *i != leader).collect();
    let new_leader = c.leader(&majority).await;
    assert_ne!(new_leader, leader, "the majority elected a new leader");
    // Writes go to the majority only: one sent to the cut-off node would
    // time out with an unknown outcome.
    let majority_client = c.client_among(&majority);
    majority_client
        .cache_put(KEY, json!("new"))
        .await
        .expect("cache write through the majority");
    let written = Instant::now();
    reads.check(lease_end, written).await;

    let mut acked = Vec::new();
    for i in 0..20 {
        majority_client
            .kv_put(&format!("during/{i}"), json!(i), None)
            .await
            .expect("the majority keeps serving writes");
        acked.push(format!("during/{i}"));
    }

    // The isolated node cannot commit: asked from inside its container (the
    // only place that still reaches it), the write ends in 503 unavailable.
    let out = Command::new("docker")
        .args([
            "exec",
            &container,
            "/dsync",
            "--endpoints",
            "127.0.0.1:7000",
            "kv",
            "put",
            "isolated",
            "1",
        ])
        .output()
        .expect("docker exec");
    assert!(!out.status.success(), "the isolated node accepted a write");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unavailable"), "stderr: {err}");

    run(Command::new("docker").args(["network", "connect", &network, &container]));
    drop(_probe);
    let all = c.leader(&ids).await;
    assert_ne!(all, 0);
    let back = c.client_for(leader);
    wait_until(
        Duration::from_secs(60),
        "the healed node to converge",
        || async {
            let item = back.kv_get("during/19", Consistency::Stale).await.ok()?;
            (item.value == json!(19)).then_some(())
        },
    )
    .await;
    for key in acked {
        let item = client
            .kv_get(&key, Consistency::Linearizable)
            .await
            .expect("acknowledged write present");
        assert!(item.version > 0, "{key} lost");
    }
    assert!(
        client
            .kv_get("isolated", Consistency::Linearizable)
            .await
            .is_err(),
        "the refused write must not appear after the partition heals"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_every_node() {
    if !enabled() {
        return;
    }
    let Ok(prometheus) = which("prometheus") else {
        panic!("DSYNC_DOCKER_TESTS=1 but the prometheus binary is missing (apt-get install prometheus)");
    };
    let c = ComposeCluster::up(&[]);
    let ids = c.ids();
    c.leader(&ids).await;
    for id in &ids {
        let text = fetch_metrics(&c.addr(*id)).await;
        assert!(text.contains("dsync_raft_term"), "node {id} /metrics");
    }

    let tmp = tempfile::tempdir().expect("tempdir");
    let targets: Vec<String> = ids.iter().map(|id| format!("'{}'", c.addr(*id))).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: dsync\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    std::fs::write(tmp.path().join("prometheus.yml"), config).expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut child = Command::new(prometheus)
        .arg(format!(
            "--config.file={}",
            tmp.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            tmp.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start prometheus");
    let http = reqwest::Client::new();
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        wait_until(
            Duration::from_secs(60),
            "prometheus to scrape every node",
            || {
                let http = http.clone();
                async move {
                    let v: Value = http
                        .get(format!("http://127.0.0.1:{port}/api/v1/targets"))
                        .send()
                        .await
                        .ok()?
                        .json()
                        .await
                        .ok()?;
                    let active = v["data"]["activeTargets"].as_array()?.clone();
                    let up = active.iter().filter(|t| t["health"] == json!("up")).count();
                    (active.len() == 3 && up == 3).then_some(())
                }
            },
        ),
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        result.is_ok(),
        "prometheus did not report 3 healthy targets"
    );
}

const KEY: &str = "cfg";

/// When a read started, and the value it returned or why it failed.
type Sample = (Instant, Result<Value, String>);

/// Reads of [`KEY`] through the cache of the cut-off node, polled from the
/// moment of the cut: the host reaches it over a probe network only.
struct IsolatedReads {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl IsolatedReads {
    async fn start(addr: &str) -> IsolatedReads {
        let mut cfg = ClientConfig::new(vec![addr.to_string()]);
        cfg.retry_for = Duration::from_millis(1);
        cfg.request_timeout = Duration::from_millis(500);
        let quick = Client::new(cfg).expect("client");
        wait_until(
            Duration::from_secs(10),
            "the cut-off node to answer on the probe network",
            || async { quick.node_status(addr).await.ok() },
        )
        .await;
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (samples.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !st.load(Ordering::Relaxed) {
                let started = Instant::now();
                let read = quick
                    .cache_get(KEY)
                    .await
                    .map(|r| r.value)
                    .map_err(|e| e.to_string());
                s.lock().unwrap().push((started, read));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        IsolatedReads {
            samples,
            stop,
            task,
        }
    }

    /// Waits for a refused read that started after the lease ended and the
    /// new value was written, then checks that no read started after the
    /// lease ended returned the old value.
    async fn check(self, lease_end: Instant, written: Instant) {
        let after = lease_end.max(written);
        let refusal = wait_until(
            Duration::from_secs(30),
            "a refused cache read on the cut-off node",
            || async {
                self.samples
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|(t, r)| *t >= after && r.is_err())
                    .map(|(_, r)| r.clone())
            },
        )
        .await;
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("poller");
        let samples = self.samples.lock().unwrap();
        let stale: Vec<_> = samples
            .iter()
            .filter(|(t, r)| *t >= lease_end && r.as_ref().is_ok_and(|v| *v == json!("old")))
            .collect();
        assert!(
            stale.is_empty(),
            "the cut-off node served its line after the lease ended: {} reads",
            stale.len()
        );
        let served = samples.iter().filter(|(_, r)| r.is_ok()).count();
        println!(
            "cut-off node: {served} cache reads served during its lease, then refused: {refusal:?}"
        );
    }
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|f| f.is_file())
        })
        .ok_or(())
}
