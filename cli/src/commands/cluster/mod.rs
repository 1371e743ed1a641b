//! `dsync cluster`: local clusters (start, inspect, stop).

mod compose_up;
pub mod down;
pub mod status;
pub mod up;
mod wait;

use clap::Subcommand;

use crate::context::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start a local cluster in --dir, or restart the stopped nodes of an existing one.
    ///
    /// A new cluster gets N `dsync server` processes on free 127.0.0.1 ports,
    /// each with its folder <DIR>/node-<i> (node.yaml, data/, server.log):
    /// node 1 bootstraps, the others join it. The command returns once every
    /// node follows one leader as a voter, and writes <DIR>/cluster.yaml,
    /// which other commands use to find the cluster. The nodes keep running
    /// after it exits; stop them with `dsync cluster down`.
    ///
    /// On a folder that already holds a cluster, nodes that still run are
    /// left alone and stopped ones are started again on their data.
    /// DSYNC_* server settings in the environment (e.g. DSYNC_SNAPSHOT_EVERY)
    /// are passed on to the nodes.
    Up(up::UpArgs),
    /// Show every node's role, term, indexes and lag, and whether there is a quorum.
    ///
    /// Asks every node for its own view. LAG is the leader's commit index
    /// minus the node's applied index. Exits 1 (after printing) when no
    /// majority of the voters is reachable and agrees on a leader.
    Status(status::StatusArgs),
    /// Stop the nodes of the local cluster in --dir (optionally deleting its files).
    ///
    /// Each node gets SIGTERM, then SIGKILL if it has not exited after the
    /// grace period. A recorded pid that now belongs to another program is
    /// never signalled. Without --purge the data stays, and `dsync cluster up`
    /// starts the same cluster again.
    Down(down::DownArgs),
}

pub async fn run(global: &GlobalArgs, cmd: ClusterCommand) -> anyhow::Result<i32> {
    match cmd {
        ClusterCommand::Up(args) => up::run(global, args).await,
        ClusterCommand::Status(args) => status::run(global, args).await,
        ClusterCommand::Down(args) => down::run(global, args).await,
    }
}
