//! `dsync node`: operations on one node of the cluster, named by id.

pub mod drain;
pub mod ready;
pub mod restart;

use anyhow::Context;
use clap::Subcommand;

use crate::context::{GlobalArgs, RequestExt};

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Stop a node taking client requests and move leadership off it.
    ///
    /// The node answers client routes with 503 and Retry-After, so clients
    /// move to other nodes; Raft traffic, status and admin routes keep
    /// working. If it leads, leadership is transferred to the most caught-up
    /// follower first. Restarting the node ends the drain. Safe to repeat.
    Drain(drain::DrainArgs),
    /// Wait until a node is ready: it knows a leader, has applied everything
    /// it knows committed, and is not draining.
    ///
    /// Exits 0 once ready, 1 if --timeout passes first (with the reason).
    Ready(ready::ReadyArgs),
    /// Restart one node of the local cluster, optionally from another binary.
    ///
    /// Stops it (SIGTERM, SIGKILL after 10 s), starts it again from --binary
    /// (recorded in cluster.yaml for later restarts) or from the binary it
    /// ran, and waits until it follows the leader and has caught up. Drain it
    /// first to move clients and leadership off it.
    Restart(restart::RestartArgs),
}

pub async fn run(global: &GlobalArgs, cmd: NodeCommand) -> anyhow::Result<i32> {
    match cmd {
        NodeCommand::Drain(args) => drain::run(global, args).await,
        NodeCommand::Ready(args) => ready::run(global, args).await,
        NodeCommand::Restart(args) => restart::run(global, args).await,
    }
}

/// The address of node `id`: from the cluster file, else from the
/// membership any reachable endpoint reports.
pub async fn address_of(global: &GlobalArgs, id: u64) -> anyhow::Result<String> {
    let targets = global.targets()?;
    if let Some(t) = targets.iter().find(|t| t.id == Some(id)) {
        return Ok(t.addr.clone());
    }
    let status = global
        .client()?
        .status()
        .await
        .api()
        .context("cannot read the membership")?;
    status
        .members
        .iter()
        .find(|m| m.id == id)
        .map(|m| m.addr.clone())
        .with_context(|| format!("node {id} is not a member of the cluster"))
}
