//! The `local` runtime: nodes are `dsync server` processes on loopback,
//! started detached and found again by pid.

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use serde::Serialize;

/// Variables naming one node's identity. A child must take these from its
/// node.yaml, not from whatever the user exported for some other node.
const NODE_IDENTITY_ENV: &[&str] = &[
    "DSYNC_CONFIG",
    "DSYNC_ID",
    "DSYNC_LISTEN",
    "DSYNC_ADVERTISE",
    "DSYNC_DATA_DIR",
    "DSYNC_BOOTSTRAP",
    "DSYNC_JOIN",
];

/// The fields of `node.yaml` that `cluster up` decides. Everything else is
/// left out so the server's defaults and inherited `DSYNC_*` variables
/// (e.g. `DSYNC_SNAPSHOT_EVERY`) apply.
#[derive(Debug, Serialize)]
pub struct NodeYaml {
    pub id: u64,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bootstrap: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub join: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<dsync_server::auth::AuthConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_log: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<dsync_server::tls::TlsConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_threads: Option<usize>,
}

/// Runtime threads for each of `nodes` local nodes: they share this
/// machine's cores. Two worker threads per node, each node on two cores
/// with three nodes and a client, made the nodes wake each other's threads
/// for every hop; one each gave 20-30% more puts and lock handoffs
/// (docs/benchmarks.md, "Worker threads"). A lone node keeps every core.
pub fn worker_share(nodes: usize) -> Option<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (nodes > 1).then(|| (cores / nodes).max(1))
}

/// The auth, audit and TLS settings of an existing node's `node.yaml`, for
/// a node added beside it (all local nodes share the secrets and the CA; a
/// new node reuses that node's certificate, which names the same hosts).
pub fn security_of(existing: &Path, node_dir: &Path) -> NodeSecurity {
    let config = dsync_server::Config::from_yaml_file(existing).unwrap_or_default();
    NodeSecurity {
        auth: (config.auth != Default::default()).then_some(config.auth),
        audit_log: config.audit_log.map(|_| node_dir.join("audit.log")),
        tls: config.tls,
    }
}

pub struct NodeSecurity {
    pub auth: Option<dsync_server::auth::AuthConfig>,
    pub audit_log: Option<PathBuf>,
    pub tls: Option<dsync_server::tls::TlsConfig>,
}

impl NodeYaml {
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_yaml::to_string(self)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Lowest port picked for a node.
const FIRST_NODE_PORT: u16 = 10_000;

/// Free loopback ports, all held open at once so none is handed out twice.
///
/// They are picked below the kernel's ephemeral range when it leaves room:
/// a port inside that range can be taken by the local end of any outgoing
/// connection while its node is stopped, and the node's restart (upgrade,
/// `cluster up`) would then fail with "address in use".
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    use rand::Rng;
    let ephemeral_start = ephemeral_range_start().unwrap_or(32_768);
    let mut listeners = Vec::with_capacity(n);
    if ephemeral_start > FIRST_NODE_PORT + 100 {
        let mut rng = rand::thread_rng();
        for _ in 0..n * 100 {
            if listeners.len() == n {
                break;
            }
            let port = rng.gen_range(FIRST_NODE_PORT..ephemeral_start);
            if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
                listeners.push(l);
            }
        }
    }
    while listeners.len() < n {
        listeners.push(
            TcpListener::bind("127.0.0.1:0").context("cannot find a free port on 127.0.0.1")?,
        );
    }
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// First port of the kernel's ephemeral range (Linux), if readable.
fn ephemeral_range_start() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Starts `binary server --config <config>` in its own process group (so a
/// Ctrl-C of the CLI does not reach it), output appended to `log`.
pub fn spawn_node(binary: &Path, config: &Path, log: &Path) -> anyhow::Result<Child> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(binary);
    cmd.arg("server")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    for var in NODE_IDENTITY_ENV {
        cmd.env_remove(var);
    }
    cmd.spawn()
        .with_context(|| format!("cannot start {}", binary.display()))
}

/// Whether `pid` names a live process. Zombies count as gone: when no init
/// reaps them (some containers), they would otherwise look alive forever.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name, which may
        // itself contain spaces and parentheses.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        return !matches!(state, Some("Z" | "X" | "x"));
    }
    if Path::new("/proc/self").exists() {
        return false;
    }
    matches!(
        signal::kill(Pid::from_raw(raw), None),
        Ok(()) | Err(nix::errno::Errno::EPERM)
    )
}

pub fn send_signal(pid: u32, sig: Signal) -> anyhow::Result<()> {
    let raw = i32::try_from(pid).context("pid out of range")?;
    match signal::kill(Pid::from_raw(raw), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot send {sig} to pid {pid}")),
    }
}

/// The last `n` lines of a log file (empty if it cannot be read).
pub fn log_tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_nodes_share_the_cores_and_a_lone_node_keeps_them() {
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(worker_share(1), None);
        assert_eq!(worker_share(3), Some((cores / 3).max(1)));
        assert_eq!(worker_share(cores * 2), Some(1));
    }

    #[test]
    fn node_yaml_is_a_valid_server_config_with_only_decided_fields() {
        let node = NodeYaml {
            id: 2,
            listen: "127.0.0.1:7002".parse().unwrap(),
            data_dir: PathBuf::from("/tmp/x/node-2/data"),
            bootstrap: false,
            join: vec!["127.0.0.1:7001".into()],
            auth: None,
            audit_log: None,
            tls: None,
            worker_threads: Some(1),
        };
        let text = serde_yaml::to_string(&node).unwrap();
        assert!(!text.contains("bootstrap"), "{text}");
        assert!(!text.contains("snapshot_every"), "{text}");
        let config: dsync_server::Config = serde_yaml::from_str(&text).unwrap();
        assert_eq!(config.id, 2);
        assert_eq!(config.join, vec!["127.0.0.1:7001"]);
        assert_eq!(
            config.snapshot_every,
            dsync_server::Config::default().snapshot_every
        );
        config.validate().unwrap();
    }

    #[test]
    fn free_ports_are_distinct_and_nonzero() {
        let ports = free_ports(5).unwrap();
        let mut unique = ports.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 5);
        assert!(ports.iter().all(|p| *p != 0));
        if let Some(start) = ephemeral_range_start().filter(|s| *s > FIRST_NODE_PORT + 100) {
            assert!(ports.iter().all(|p| *p < start), "{ports:?} below {start}");
        }
    }

    #[test]
    fn own_process_is_alive_and_gone_pids_are_not() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(u32::MAX));
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        // Reaped: the pid is free (and almost surely not reused this fast).
        assert!(!pid_alive(pid));
    }

    #[test]
    fn unreaped_children_count_as_gone() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while pid_alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(!pid_alive(pid), "a zombie must not look alive");
        child.wait().unwrap();
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("server.log");
        std::fs::write(&path, "a\nb\nc\nd\n").unwrap();
        assert_eq!(log_tail(&path, 2), vec!["c", "d"]);
        assert_eq!(log_tail(&path, 10).len(), 4);
        assert!(log_tail(&tmp.path().join("missing"), 3).is_empty());
    }
}
