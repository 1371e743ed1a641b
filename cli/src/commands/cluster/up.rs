//! `dsync cluster up`: start N local nodes, or bring the stopped nodes of an
//! existing cluster back, and wait until they form one cluster.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use dsync_api::types::NodeStatus;
use serde::Serialize;

use super::wait::{all_agree, leader_is, wait_for, Watched};
use crate::cluster_file::{now_ms, ClusterFile, NodeEntry, CLUSTER_FILE_VERSION};
use crate::commands::shard::init::MapReport;
use crate::context::GlobalArgs;
use crate::local::{free_ports, spawn_node, NodeYaml};
use crate::output::Table;
use crate::progress::Progress;

const DEFAULT_NODES: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    /// `dsync server` processes on 127.0.0.1.
    Local,
    /// Containers of the dsync image under Docker Compose (build the image
    /// first with scripts/build-image.sh).
    Compose,
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Number of nodes, 1 to 9 [default: 3]. An existing cluster keeps its
    /// size: change it with `dsync cluster scale`.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub nodes: Option<u8>,

    /// Where the nodes run.
    #[arg(long, value_enum, default_value_t = Runtime::Local)]
    pub runtime: Runtime,

    /// Authentication of a new cluster [default: none]: `token` creates
    /// <DIR>/secrets/ (JWT secret, cluster secret, an admin token the CLI
    /// then uses by itself) and starts the nodes with auth on and an audit
    /// log. An existing cluster starts as it was created; asking it for
    /// other auth is refused (docs/operations.md, "Securing an existing
    /// cluster").
    #[arg(long, value_enum)]
    pub auth: Option<UpAuth>,

    /// Serve clients over TLS and peers over mutual TLS: creates <DIR>/tls/
    /// (`dsync cert init`); Raft RPCs then need a certificate of that CA.
    /// New clusters only: refused on a cluster created without TLS.
    #[arg(long)]
    pub tls: bool,

    /// The image for --runtime compose.
    #[arg(long, default_value = "dsync:latest", value_name = "IMAGE")]
    pub image: String,

    /// Queue groups to spread the topics over, 0 to 1024 [default for a new
    /// cluster: one per node with 3 nodes or more, else 0; an existing
    /// cluster is left as it is]: once the nodes have formed the cluster,
    /// commits the first shard map (`dsync shard init`) and waits until
    /// every group has a leader. 0 keeps every topic in the control group,
    /// as clusters made before shards do. On an existing cluster: one that
    /// already has G groups is left as it is; another G is refused (change
    /// it with `dsync shard reshard --groups G`).
    #[arg(long, value_name = "G",
          value_parser = clap::value_parser!(u64).range(0..=dsync_api::shards::MAX_GROUPS))]
    pub shards: Option<u64>,

    /// Replicas per queue group with --shards [default: 3, or the node
    /// count if smaller].
    #[arg(long, value_name = "R", requires = "shards",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub shard_replicas: Option<u64>,

    /// Seconds to wait for a leader and for every node to become a voter
    /// (and, with --shards, for every queue group to elect a leader).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpAuth {
    /// No authentication (loopback development).
    None,
    /// JWT bearer tokens for clients, a cluster secret for peers.
    Token,
}

/// One line of the result.
#[derive(Debug, Serialize)]
struct UpNode {
    id: u64,
    addr: String,
    role: Option<String>,
    pid: Option<u32>,
    /// `started`, `running` (left alone) or `restarted`.
    state: &'static str,
}

#[derive(Debug, Serialize)]
struct UpReport {
    dir: PathBuf,
    leader: Option<u64>,
    nodes: Vec<UpNode>,
    /// With --shards: the shard map and each group's leader.
    #[serde(skip_serializing_if = "Option::is_none")]
    shards: Option<MapReport>,
}

/// Queue groups for `cluster up` without --shards: one per node on a new
/// cluster of 3 nodes or more, so each node leads one group (measured and
/// modelled in docs/benchmarks.md, "Queue groups"); none below 3 nodes,
/// where a group has no replicas to spread over, and none added to an
/// existing cluster.
fn default_shards(new_cluster: bool, nodes: usize) -> u64 {
    if new_cluster && nodes >= 3 {
        nodes as u64
    } else {
        0
    }
}

pub async fn run(global: &GlobalArgs, args: UpArgs) -> anyhow::Result<i32> {
    let dir = global.dir()?;
    let binary = std::env::current_exe().context("cannot locate the dsync binary")?;
    let timeout = Duration::from_secs(args.timeout);
    let mut progress = Progress::new();
    let existing = ClusterFile::load(&dir)?;
    let compose =
        args.runtime == Runtime::Compose || existing.as_ref().is_some_and(|f| f.compose.is_some());
    if let Some(file) = &existing {
        let created = super::as_created::created_with(file);
        let tls = args.tls && !compose;
        for note in super::as_created::check(&dir, created, args.auth, tls)? {
            progress.note(note);
        }
    }
    let new_cluster = existing.is_none();
    let (file, states, statuses) = match existing {
        existing if compose => {
            if args.tls {
                bail!("--tls is not available with --runtime compose yet; use --auth token, or the local runtime for TLS");
            }
            let n = args.nodes.unwrap_or(DEFAULT_NODES);
            let auth = args.auth == Some(UpAuth::Token);
            super::compose_up::up(&dir, existing, n, &args.image, auth, timeout, &mut progress)
                .await?
        }
        Some(file) => {
            super::restart::restart(&dir, file, binary, args.nodes, timeout, &mut progress).await?
        }
        None => {
            let n = args.nodes.unwrap_or(DEFAULT_NODES);
            create(
                &dir,
                binary,
                n,
                (args.auth.unwrap_or(UpAuth::None), args.tls),
                timeout,
                &mut progress,
            )
            .await?
        }
    };
    let shards = super::shards::ensure_groups(
        global,
        &dir,
        &file,
        (
            args.shards
                .unwrap_or_else(|| default_shards(new_cluster, file.nodes.len())),
            args.shard_replicas,
        ),
        timeout,
        &mut progress,
    )
    .await
    .map_err(keep_running_hint)?;
    progress.finish();
    let roles: HashMap<u64, &NodeStatus> = statuses.iter().map(|s| (s.id, s)).collect();
    let report = UpReport {
        dir: dir.clone(),
        leader: statuses.iter().find_map(|s| s.leader),
        nodes: file
            .nodes
            .iter()
            .map(|n| UpNode {
                id: n.id,
                addr: n.addr.clone(),
                role: roles.get(&n.id).map(|s| s.role.to_string()),
                pid: n.pid,
                state: states.get(&n.id).copied().unwrap_or("started"),
            })
            .collect(),
        shards,
    };
    global.output.print(&report, || {
        let mut t = Table::new(["ID", "ADDR", "ROLE", "PID", "STATE"]);
        for n in &report.nodes {
            t.row([
                n.id.to_string(),
                n.addr.clone(),
                n.role.clone().unwrap_or_else(|| "-".into()),
                n.pid.map_or("-".into(), |p| p.to_string()),
                n.state.to_string(),
            ]);
        }
        match &report.shards {
            Some(s) => format!("{}\n{}", t.render(), s.render()),
            None => t.render(),
        }
    })?;
    eprintln!("export DSYNC_ENDPOINTS={}", file.endpoints().join(","));
    let ca = dir.join("tls").join("ca.pem");
    if ca.exists() {
        eprintln!("export DSYNC_CA_CERT={}", ca.display());
    }
    let token = crate::secrets::Secrets::at(&dir).admin_token;
    if token.exists() {
        eprintln!("export DSYNC_TOKEN=$(cat {})", token.display());
    }
    Ok(crate::commands::EXIT_OK)
}

pub(super) type Started = (ClusterFile, HashMap<u64, &'static str>, Vec<NodeStatus>);

/// A fresh cluster: node 1 bootstraps, the others join through the nodes
/// before them once node 1 leads.
async fn create(
    dir: &Path,
    binary: PathBuf,
    n: u8,
    (auth, tls): (UpAuth, bool),
    timeout: Duration,
    progress: &mut Progress,
) -> anyhow::Result<Started> {
    refuse_leftovers(dir)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let auth = match auth {
        UpAuth::None => None,
        UpAuth::Token => {
            let s = crate::secrets::Secrets::create(dir)?;
            Some(dsync_server::auth::AuthConfig {
                mode: dsync_server::auth::AuthMode::Token,
                jwt_secret_file: Some(s.jwt_secret),
                cluster_secret_file: Some(s.cluster_secret),
                ..Default::default()
            })
        }
    };
    let tls_dir = dir.join("tls");
    if tls {
        crate::commands::cert::init::init(
            &tls_dir,
            n,
            &["127.0.0.1".into(), "localhost".into()],
            Default::default(),
        )?;
    }
    let ports = free_ports(n as usize)?;
    let mut file = ClusterFile {
        version: CLUSTER_FILE_VERSION,
        compose: None,
        runtime: "local".into(),
        binary,
        created_at_ms: now_ms(),
        nodes: Vec::new(),
    };
    for (i, port) in (1u64..).zip(&ports) {
        let node_dir = dir.join(format!("node-{i}"));
        let data_dir = node_dir.join("data");
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let config = node_dir.join("node.yaml");
        NodeYaml {
            id: i,
            listen: ([127, 0, 0, 1], *port).into(),
            data_dir: data_dir.clone(),
            bootstrap: i == 1,
            join: file
                .nodes
                .iter()
                .map(|n: &NodeEntry| n.addr.clone())
                .collect(),
            audit_log: auth.as_ref().map(|_| node_dir.join("audit.log")),
            auth: auth.clone(),
            tls: tls.then(|| {
                let (cert_file, key_file) = crate::commands::cert::init::node_files(&tls_dir, i);
                dsync_server::tls::TlsConfig {
                    cert_file,
                    key_file,
                    ca_file: tls_dir.join("ca.pem"),
                }
            }),
            worker_threads: crate::local::worker_share(n as usize),
        }
        .write(&config)?;
        let scheme = if tls { "https://" } else { "" };
        file.nodes.push(NodeEntry {
            id: i,
            addr: format!("{scheme}127.0.0.1:{port}"),
            pid: None,
            log: node_dir.join("server.log"),
            dir: node_dir,
            data_dir,
            config,
            version: env!("CARGO_PKG_VERSION").to_string(),
            binary: None,
        });
    }
    // Written before anything starts so `cluster down` can always clean up.
    file.save(dir)?;
    let mut watched = Vec::new();
    let ids: Vec<u64> = file.nodes.iter().map(|n| n.id).collect();
    for (k, id) in ids.iter().enumerate() {
        watched.push(start(dir, &mut file, *id, progress)?);
        if k == 0 {
            wait_for(
                &mut watched,
                timeout,
                progress,
                "waiting for node 1 to lead",
                |o| leader_is(*id, o),
            )
            .await
            .map_err(keep_running_hint)?;
        }
    }
    let statuses = wait_for(
        &mut watched,
        timeout,
        progress,
        "waiting for every node to join",
        |o| all_agree(n as usize, o),
    )
    .await
    .map_err(keep_running_hint)?;
    record_versions(&mut file, &statuses);
    file.save(dir)?;
    let states = ids.iter().map(|id| (*id, "started")).collect();
    Ok((file, states, statuses))
}

/// Spawns node `id` and records its pid at once.
pub(super) fn start(
    dir: &Path,
    file: &mut ClusterFile,
    id: u64,
    progress: &mut Progress,
) -> anyhow::Result<Watched> {
    let default_binary = file.binary.clone();
    let node = file
        .node_mut(id)
        .context("node missing from the cluster file")?;
    let binary = node.binary.clone().unwrap_or(default_binary);
    progress.note(format!("starting node {id} on {}", node.addr));
    let child = spawn_node(&binary, &node.config, &node.log)?;
    node.pid = Some(child.id());
    let watched = Watched {
        id,
        addr: node.addr.clone(),
        log: node.log.clone(),
        child: Some(child),
    };
    file.save(dir)?;
    Ok(watched)
}

/// A folder with node data but no cluster file would make new nodes start
/// on old logs; refuse instead of guessing.
fn refuse_leftovers(dir: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let leftover = entries
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("node-"));
    if leftover {
        bail!(
            "{} holds node folders but no cluster.yaml; remove it or pick another --dir",
            dir.display()
        );
    }
    Ok(())
}

pub(super) fn record_versions(file: &mut ClusterFile, statuses: &[NodeStatus]) {
    for s in statuses {
        if let Some(node) = file.node_mut(s.id) {
            node.version.clone_from(&s.version);
        }
    }
}

pub(super) fn keep_running_hint(e: anyhow::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}\nnodes that started keep running: inspect them with `dsync cluster status`, stop them with `dsync cluster down`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_cluster_of_three_or_more_gets_a_queue_group_per_node() {
        assert_eq!(default_shards(true, 3), 3);
        assert_eq!(default_shards(true, 5), 5);
        assert_eq!(default_shards(true, 1), 0);
        assert_eq!(default_shards(true, 2), 0);
        // A cluster that exists (perhaps made before shards) keeps its G.
        assert_eq!(default_shards(false, 3), 0);
    }

    #[test]
    fn leftover_node_folders_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        refuse_leftovers(tmp.path()).unwrap();
        refuse_leftovers(&tmp.path().join("missing")).unwrap();
        std::fs::create_dir(tmp.path().join("node-1")).unwrap();
        let err = refuse_leftovers(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("no cluster.yaml"), "{err}");
    }
}
