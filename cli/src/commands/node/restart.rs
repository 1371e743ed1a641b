//! `dsync node restart ID [--binary PATH]` (local runtime): the primitive
//! scripted upgrades use to swap one node's binary.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::cluster_file::ClusterFile;
use crate::commands::cluster::upgrade::restart;
use crate::context::GlobalArgs;
use crate::node_process::owner;
use crate::process_handle::STOP_GRACE;
use crate::progress::Progress;

#[derive(Debug, clap::Args)]
pub struct RestartArgs {
    /// Id of the node to restart.
    pub id: u64,

    /// Start it from this binary from now on (default: the one it runs).
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,

    /// Seconds the node gets to follow the leader and catch up.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub timeout: u64,
}

#[derive(Debug, Serialize)]
struct Restarted {
    id: u64,
    pid: Option<u32>,
    binary: PathBuf,
    version: String,
}

pub async fn run(global: &GlobalArgs, args: RestartArgs) -> anyhow::Result<i32> {
    let dir = global.dir()?;
    let Some(mut file) = ClusterFile::load(&dir)? else {
        bail!("no cluster in {} (no cluster.yaml)", dir.display());
    };
    if file.runtime != "local" {
        bail!(
            "node restart drives the local runtime; this cluster uses {}",
            file.runtime
        );
    }
    file.ensure_here(&dir)?;
    let node = file
        .nodes
        .iter()
        .find(|n| n.id == args.id)
        .cloned()
        .with_context(|| format!("no node {} in {}", args.id, dir.display()))?;
    let binary = match &args.binary {
        Some(b) => std::path::absolute(b)?,
        None => node.binary.clone().unwrap_or_else(|| file.binary.clone()),
    };
    if !binary.is_file() {
        bail!("{} is not a file", binary.display());
    }
    let mut progress = Progress::new();
    if let Some(handle) = owner(&dir, &node).ours() {
        let pid = handle.pid();
        progress.step(format!("stopping node {} (pid {pid})", args.id));
        handle.stop(STOP_GRACE).await?;
    }
    progress.step(format!(
        "starting node {} from {}",
        args.id,
        binary.display()
    ));
    let timeout = Duration::from_secs(args.timeout);
    let version = restart(
        &dir,
        &mut file,
        args.id,
        &binary,
        None,
        timeout,
        &mut progress,
    )
    .await?;
    progress.finish();
    let report = Restarted {
        id: args.id,
        pid: file
            .nodes
            .iter()
            .find(|n| n.id == args.id)
            .and_then(|n| n.pid),
        binary,
        version,
    };
    global.output.print(&report, || {
        format!(
            "node {} runs {} (pid {}) from {}\n",
            report.id,
            report.version,
            report.pid.map_or("-".into(), |p| p.to_string()),
            report.binary.display()
        )
    })?;
    Ok(crate::commands::EXIT_OK)
}
