//! Compose clusters for the docker tests (issue 8): `dsync cluster up
//! --runtime compose` in a temp dir, found again through its cluster file,
//! taken down with its volumes on drop. They run only with
//! DSYNC_DOCKER_TESTS=1 and the image in DSYNC_IMAGE (scripts/test.sh
//! builds it); otherwise each test says so and passes.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use dsync_api::{Client, ClientConfig};
use serde_json::{json, Value};

use crate::{dsync_bin, wait_until};

pub fn enabled() -> bool {
    let on = std::env::var("DSYNC_DOCKER_TESTS").is_ok_and(|v| v == "1");
    if !on {
        eprintln!("skipped: set DSYNC_DOCKER_TESTS=1 (needs Docker and the dsync image)");
    }
    on
}

pub fn image() -> String {
    std::env::var("DSYNC_IMAGE").unwrap_or_else(|_| "dsync:latest".into())
}

/// Runs a command that must succeed; returns its output.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub struct ComposeCluster {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub file: Value,
}

impl ComposeCluster {
    /// `cluster up --runtime compose --image $DSYNC_IMAGE` plus `extra` flags.
    pub fn up(extra: &[&str]) -> ComposeCluster {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cluster");
        let out = Command::new(dsync_bin())
            .arg("--dir")
            .arg(&dir)
            .args(["cluster", "up", "--runtime", "compose", "--image", &image()])
            .args(extra)
            // As `Cluster::up_with`: no queue groups unless a test asks.
            .args(if extra.contains(&"--shards") {
                &[][..]
            } else {
                &["--shards", "0"][..]
            })
            .output()
            .expect("run dsync");
        let mut c = ComposeCluster {
            _tmp: tmp,
            dir,
            file: Value::Null,
        };
        if c.dir.join("cluster.yaml").exists() {
            c.reload();
        }
        assert!(
            out.status.success(),
            "cluster up --runtime compose failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            c.compose_logs()
        );
        c
    }

    /// Reads the cluster file again (after scale or upgrade changed it).
    pub fn reload(&mut self) {
        let text = std::fs::read_to_string(self.dir.join("cluster.yaml")).expect("cluster.yaml");
        self.file = serde_yaml::from_str(&text).expect("cluster.yaml parses");
    }

    /// `dsync --dir <cluster> ARGS` (the CLI finds endpoints and any admin
    /// token in the folder).
    pub fn dsync(&self, args: &[&str]) -> Output {
        Command::new(dsync_bin())
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .env_remove("DSYNC_ENDPOINTS")
            .env_remove("DSYNC_TOKEN")
            .output()
            .expect("run dsync")
    }

    pub fn dsync_ok(&self, args: &[&str]) -> Output {
        let out = self.dsync(args);
        assert!(
            out.status.success(),
            "dsync {args:?} failed: {}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.compose_logs()
        );
        out
    }

    pub fn project(&self) -> String {
        self.file["compose"]["project"]
            .as_str()
            .expect("project")
            .to_string()
    }

    /// The compose network every node is on.
    pub fn network(&self) -> String {
        format!("{}_dsync", self.project())
    }

    pub fn compose_logs(&self) -> String {
        if self.file.is_null() {
            return String::new();
        }
        let mut logs = String::new();
        for id in self.ids() {
            let Some(c) = self.find_container(id) else {
                continue;
            };
            if let Ok(o) = Command::new("docker")
                .args(["logs", "--tail", "20", &c])
                .output()
            {
                logs.push_str(&format!("--- dsync-{id}\n"));
                logs.push_str(&String::from_utf8_lossy(&o.stdout));
                logs.push_str(&String::from_utf8_lossy(&o.stderr));
            }
        }
        logs
    }

    /// The container of node `id` (by compose's labels: works with v1 and v2).
    pub fn find_container(&self, id: u64) -> Option<String> {
        let out = run(Command::new("docker").args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project()),
            "--filter",
            &format!("label=com.docker.compose.service=dsync-{id}"),
        ]));
        Some(stdout(&out)).filter(|c| !c.is_empty())
    }

    pub fn container(&self, id: u64) -> String {
        self.find_container(id)
            .unwrap_or_else(|| panic!("no container for node {id}"))
    }

    /// The id of the image node `id`'s container was created from.
    pub fn container_image(&self, id: u64) -> String {
        stdout(&run(Command::new("docker").args([
            "inspect",
            "--format",
            "{{.Image}}",
            &self.container(id),
        ])))
    }

    pub fn addr(&self, id: u64) -> String {
        self.file["nodes"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["id"] == json!(id)))
            .and_then(|n| n["addr"].as_str())
            .expect("node addr")
            .to_string()
    }

    pub fn ids(&self) -> Vec<u64> {
        self.file["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter_map(|n| n["id"].as_u64())
            .collect()
    }

    /// The admin token `cluster up --auth token` left, if any.
    pub fn admin_token(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("secrets/admin.token"))
            .ok()
            .map(|t| t.trim().to_string())
    }

    fn config(&self, endpoints: Vec<String>) -> ClientConfig {
        let mut cfg = ClientConfig::new(endpoints);
        cfg.retry_for = Duration::from_secs(30);
        cfg.token = self.admin_token();
        cfg
    }

    pub fn client(&self) -> Client {
        let endpoints = self.ids().iter().map(|id| self.addr(*id)).collect();
        Client::new(self.config(endpoints)).expect("client")
    }

    /// A client of these nodes only (e.g. the majority side of a partition).
    pub fn client_among(&self, ids: &[u64]) -> Client {
        let endpoints = ids.iter().map(|id| self.addr(*id)).collect();
        Client::new(self.config(endpoints)).expect("client")
    }

    pub fn client_for(&self, id: u64) -> Client {
        Client::new(self.config(vec![self.addr(id)])).expect("client")
    }

    /// Waits until every node of `among` follows the same leader, one of them.
    pub async fn leader(&self, among: &[u64]) -> u64 {
        wait_until(Duration::from_secs(30), "a leader", || async {
            let mut seen = Vec::new();
            for id in among {
                if let Ok(s) = self.client_for(*id).node_status(&self.addr(*id)).await {
                    seen.push(s.leader);
                }
            }
            let first = *seen.first()?;
            let leader = first?;
            (seen.len() == among.len()
                && seen.iter().all(|l| *l == first)
                && among.contains(&leader))
            .then_some(leader)
        })
        .await
    }
}

impl Drop for ComposeCluster {
    fn drop(&mut self) {
        let _ = self.dsync(&["cluster", "down", "--purge", "--grace", "2"]);
    }
}

/// A Docker network of the test's own, so the host reaches a container cut
/// off from the cluster's network (published ports go through that one).
/// Only the probed container is on it: it gives no path to the peers.
pub struct ProbeNetwork {
    name: String,
    container: String,
}

impl ProbeNetwork {
    /// Attaches `container` to a new network; returns it and the node's
    /// address on it.
    pub fn attach(container: &str) -> (ProbeNetwork, String) {
        let name = format!("dsyncprobe{:08x}", rand::random::<u32>());
        run(Command::new("docker").args(["network", "create", &name]));
        let probe = ProbeNetwork {
            name,
            container: container.to_string(),
        };
        run(Command::new("docker").args(["network", "connect", &probe.name, container]));
        let ip = stdout(&run(Command::new("docker").args([
            "inspect",
            "--format",
            &format!(
                "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
                probe.name
            ),
            container,
        ])));
        assert!(!ip.is_empty(), "no address on {}", probe.name);
        (probe, format!("{ip}:7000"))
    }
}

impl Drop for ProbeNetwork {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args([
                "network",
                "disconnect",
                "--force",
                &self.name,
                &self.container,
            ])
            .output();
        let _ = Command::new("docker")
            .args(["network", "rm", &self.name])
            .output();
    }
}
