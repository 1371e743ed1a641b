//! Harness for end-to-end tests: real clusters of the built `dsync` binary,
//! each in its own temp dir on ephemeral loopback ports, always torn down.

pub mod chaos;
pub mod checkers;
pub mod compose;
pub mod fixture;
pub mod history;
pub mod kv_workload;
pub mod linearizability;
pub mod nemesis;
mod netcluster;
pub mod netns;
pub mod shard_faults;
pub mod shard_workload;
pub mod wait;
pub mod workloads;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use dsync_api::types::{NodeStatus, Role};
use dsync_api::{Client, ClientConfig};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Deserialize;

pub use wait::{wait_ok, wait_until};

/// Path of the `dsync` binary under test: `DSYNC_BIN`, else the workspace's
/// debug build.
pub fn dsync_bin() -> PathBuf {
    if let Ok(p) = std::env::var("DSYNC_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let p = root.join("target/debug/dsync");
    assert!(
        p.exists(),
        "no dsync binary at {}: run scripts/test.sh or set DSYNC_BIN",
        p.display()
    );
    p
}

#[derive(Debug, Clone, Deserialize)]
pub struct NodeInfo {
    pub id: u64,
    pub addr: String,
    pub pid: Option<u32>,
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
struct ClusterYaml {
    nodes: Vec<NodeInfo>,
}

/// A local cluster started with `dsync cluster up`.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub bin: PathBuf,
    env: Vec<(String, String)>,
    /// The namespaces of a partitionable cluster; dropped after the nodes
    /// are stopped (fields drop after `Drop::drop`).
    net: Option<netns::Net>,
}

impl Cluster {
    /// Starts `n` nodes; `env` is passed to the CLI and inherited by the servers.
    pub fn up(n: usize, env: &[(&str, &str)]) -> Cluster {
        Cluster::up_with(n, env, &[])
    }

    /// Like [`up`](Self::up), with more `cluster up` arguments (e.g. `--auth token`).
    /// Without `--shards` in `args` the cluster has no queue groups (G = 0):
    /// most tests are about something else, and a group per node on every
    /// test cluster would add its CPU to every test on two cores.
    /// [`up_as_a_user_would`](Self::up_as_a_user_would) takes the defaults.
    pub fn up_with(n: usize, env: &[(&str, &str)], args: &[&str]) -> Cluster {
        let mut args = args.to_vec();
        if !args.contains(&"--shards") {
            args.extend(["--shards", "0"]);
        }
        Cluster::start(n, env, &args)
    }

    /// `dsync cluster up --nodes n` with nothing else: the release's
    /// defaults, queue groups included.
    pub fn up_as_a_user_would(n: usize) -> Cluster {
        Cluster::start(n, &[], &[])
    }

    fn start(n: usize, env: &[(&str, &str)], args: &[&str]) -> Cluster {
        let c = Cluster {
            dir: tempfile::Builder::new()
                .prefix("dsync-e2e-")
                .tempdir()
                .expect("tempdir"),
            bin: dsync_bin(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            net: None,
        };
        let nodes = n.to_string();
        let mut up = vec!["cluster", "up", "--nodes", &nodes];
        up.extend_from_slice(args);
        c.dsync_ok(&up);
        c
    }

    /// A handle on a cluster folder prepared elsewhere (e.g. by `dsync
    /// backup restore` into `<dir>/cluster`); nothing is started.
    pub fn adopt(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Cluster {
        Cluster {
            dir,
            bin: dsync_bin(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            net: None,
        }
    }

    pub fn cluster_dir(&self) -> PathBuf {
        self.dir.path().join("cluster")
    }

    /// Runs the CLI against this cluster's directory.
    pub fn dsync(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--dir").arg(self.cluster_dir()).args(args);
        cmd.env_remove("DSYNC_ENDPOINTS");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().expect("run dsync")
    }

    /// Runs the CLI and fails the test with its output if it fails.
    pub fn dsync_ok(&self, args: &[&str]) -> Output {
        let out = self.dsync(args);
        assert!(
            out.status.success(),
            "dsync {args:?} failed ({}):\nstdout: {}\nstderr: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.server_logs()
        );
        out
    }

    pub fn nodes(&self) -> Vec<NodeInfo> {
        let path = self.cluster_dir().join("cluster.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_yaml::from_str::<ClusterYaml>(&text)
            .expect("cluster.yaml")
            .nodes
    }

    pub fn node(&self, id: u64) -> NodeInfo {
        self.nodes()
            .into_iter()
            .find(|n| n.id == id)
            .expect("node id")
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.nodes().into_iter().map(|n| n.addr).collect()
    }

    /// A client over every node (follows the leader).
    pub fn client(&self) -> Client {
        Client::new(ClientConfig::new(self.endpoints())).expect("client")
    }

    /// A client that talks to one node only.
    pub fn client_for(&self, id: u64) -> Client {
        let mut cfg = ClientConfig::new(vec![self.node(id).addr]);
        cfg.retry_for = Duration::from_secs(20);
        Client::new(cfg).expect("client")
    }

    /// `kill -9` of one node.
    pub fn kill9(&self, id: u64) {
        if let Some(pid) = self.node(id).pid {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            wait_dead(pid);
        }
    }

    pub fn signal(&self, id: u64, sig: Signal) {
        if let Some(pid) = self.node(id).pid {
            let _ = kill(Pid::from_raw(pid as i32), sig);
        }
    }

    /// Status of every reachable node.
    pub async fn statuses(&self) -> Vec<NodeStatus> {
        let client = self.client();
        let mut out = Vec::new();
        for n in self.nodes() {
            if let Ok(s) = client.node_status(&n.addr).await {
                out.push(s);
            }
        }
        out
    }

    /// Waits until the reachable nodes (at least `quorum` of them) agree on
    /// one leader, and returns it.
    pub async fn wait_leader(&self, quorum: usize) -> u64 {
        wait_until(
            Duration::from_secs(30),
            "a leader every live node agrees on",
            || async {
                let st = self.statuses().await;
                let leader = st.iter().find(|s| s.role == Role::Leader)?.id;
                (st.len() >= quorum && st.iter().all(|s| s.leader == Some(leader)))
                    .then_some(leader)
            },
        )
        .await
    }

    /// The tail of every node's server log, for failure messages.
    pub fn server_logs(&self) -> String {
        let mut out = String::new();
        let Ok(text) = std::fs::read_to_string(self.cluster_dir().join("cluster.yaml")) else {
            return out;
        };
        let Ok(file) = serde_yaml::from_str::<ClusterYaml>(&text) else {
            return out;
        };
        for n in file.nodes {
            let log = std::fs::read_to_string(&n.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            out.push_str(&format!(
                "--- node {} ({}) log tail ---\n",
                n.id,
                n.log.display()
            ));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    fn kill_all(&self) {
        let Ok(text) = std::fs::read_to_string(self.cluster_dir().join("cluster.yaml")) else {
            return;
        };
        let Ok(file) = serde_yaml::from_str::<ClusterYaml>(&text) else {
            return;
        };
        for n in file.nodes {
            if let Some(pid) = n.pid {
                if is_dsync_process(pid) {
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGCONT first: a paused node cannot act on SIGTERM.
        let Ok(text) = std::fs::read_to_string(self.cluster_dir().join("cluster.yaml")) else {
            return;
        };
        if let Ok(file) = serde_yaml::from_str::<ClusterYaml>(&text) {
            for n in file.nodes.iter().filter_map(|n| n.pid) {
                let _ = kill(Pid::from_raw(n as i32), Signal::SIGCONT);
            }
        }
        let _ = self.dsync(&["cluster", "down"]);
        self.kill_all();
    }
}

/// Whether `pid` is a live `dsync` process (never signal a recycled pid).
pub fn is_dsync_process(pid: u32) -> bool {
    // An empty command line is a process mid-exit: it has released its
    // memory but still holds its sockets, so it counts until it has ended
    // (else a restart right after a kill finds the ports taken).
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.is_empty() || String::from_utf8_lossy(&c).contains("dsync"))
        .unwrap_or(false)
        && !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Blocks until `pid` is gone (or a zombie), up to 10 s.
pub fn wait_dead(pid: u32) {
    for _ in 0..1000 {
        if !is_dsync_process(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("process {pid} did not exit");
}

/// Value of one Prometheus sample (first line starting with `name`).
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

pub async fn fetch_metrics(addr: &str) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body")
}
