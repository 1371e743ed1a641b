//! Issue 21: a real Prometheus (Debian's, as in scripts/ensure-tools.sh)
//! loads compose/prometheus/alerts.yml, evaluates every rule against a
//! live local cluster without error, and a killed node turns DsyncNodeDown
//! active for that node only.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dsync_tests::{wait_until, Cluster};
use serde_json::Value;

/// Stops the Prometheus this test started, however the test ends.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(targets: &[String]) -> Prometheus {
        let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../compose/prometheus/alerts.yml")
            .canonicalize()
            .expect("compose/prometheus/alerts.yml");
        let dir = tempfile::tempdir().expect("tempdir");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: ['{}']\n\
             scrape_configs:\n  - job_name: dsync\n    static_configs:\n      - targets: [{}]\n",
            rules.display(),
            targets.join(", ")
        );
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).expect("config");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (scripts/ensure-tools.sh installs it)");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    async fn api(&self, path: &str) -> Option<Value> {
        let v: Value = reqwest::get(format!("http://127.0.0.1:{}/api/v1/{path}", self.port))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["status"] == "success").then(|| v["data"].clone())
    }
}

/// Every rule of the loaded groups, once each has been evaluated.
async fn evaluated_rules(p: &Prometheus) -> Option<Vec<Value>> {
    let data = p.api("rules").await?;
    let rules: Vec<Value> = data["groups"]
        .as_array()?
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    let done = !rules.is_empty() && rules.iter().all(|r| r["health"] != "unknown");
    done.then_some(rules)
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_evaluates_every_rule_and_a_dead_node_raises_node_down() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    let nodes = c.nodes();
    let targets: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let p = Prometheus::start(&targets);

    let rules = wait_until(Duration::from_secs(60), "every rule evaluated", || {
        evaluated_rules(&p)
    })
    .await;
    assert!(rules.len() >= 15, "loaded rules: {rules:?}");
    for r in &rules {
        assert_eq!(
            r["health"], "ok",
            "rule {} failed: {}",
            r["name"], r["lastError"]
        );
    }
    // What DsyncNoLeader watches sees the leader, once every node is scraped.
    let scalar = |q: &'static str| {
        let p = &p;
        async move {
            let data = p.api(&format!("query?query={q}")).await?;
            let v = data["result"].as_array()?.first()?["value"][1].clone();
            v.as_str().map(str::to_string)
        }
    };
    wait_until(Duration::from_secs(30), "every node scraped", || async {
        (scalar("count(dsync_raft_is_leader)").await? == "3").then_some(())
    })
    .await;
    let leader = scalar("max%20by%20(job)%20(dsync_raft_is_leader)").await;
    assert_eq!(leader.as_deref(), Some("1"), "max(dsync_raft_is_leader)");

    let victim = nodes.last().expect("a node");
    c.kill9(victim.id);
    let active = wait_until(Duration::from_secs(30), "DsyncNodeDown pending", || async {
        let data = p.api("alerts").await?;
        let down: Vec<String> = data["alerts"]
            .as_array()?
            .iter()
            .filter(|a| a["labels"]["alertname"] == "DsyncNodeDown")
            .filter_map(|a| a["labels"]["instance"].as_str().map(str::to_string))
            .collect();
        (!down.is_empty()).then_some(down)
    })
    .await;
    assert_eq!(active, vec![victim.addr.clone()], "DsyncNodeDown instances");
}
