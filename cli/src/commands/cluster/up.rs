//! `dsync cluster up`: start N local nodes, or bring the stopped nodes of an
//! existing cluster back, and wait until they form one cluster.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use dsync_api::types::NodeStatus;
use serde::Serialize;

use crate::cluster_file::ClusterFile;
use crate::commands::shard::init::MapReport;
use crate::context::GlobalArgs;
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
            super::create::create(
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
}
