//! `dsync cluster`: clusters of local processes or compose containers
//! (start, inspect, resize, upgrade, stop).

mod as_created;
mod compose_up;
pub(crate) mod create;
pub mod down;
mod preflight;
mod purge;
mod restart;
pub mod scale;
mod shards;
pub mod status;
mod status_groups;
mod status_warnings;
pub mod up;
pub mod upgrade;
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
    /// left alone and stopped ones are started again on their data, with
    /// the auth and TLS the cluster was created with: --auth or --tls that
    /// differ from those are refused (exit 1, nothing started). A folder
    /// whose cluster.yaml names another folder's files (a copy) is refused.
    /// DSYNC_* server settings in the environment (e.g. DSYNC_SNAPSHOT_EVERY)
    /// are passed on to the nodes.
    ///
    /// With --shards G the queue topics are spread over G Raft groups: once
    /// the cluster has a leader the first shard map is committed (as `dsync
    /// shard init` does) and the command returns when every group has a
    /// leader. Without it (G = 0) every topic lives in the control group.
    Up(up::UpArgs),
    /// Show every node's role, term, indexes and lag, and whether there is a quorum.
    ///
    /// Asks every node for its own view. LAG is the leader's commit index
    /// minus the node's applied index. Exits 1 (after printing) when no
    /// majority of the voters is reachable and agrees on a leader, or a
    /// queue group has no leader. Warns on stderr, exit code unchanged,
    /// when a queue group has fewer healthy replicas than the shard map's R
    /// or one node leads more queue groups than its share.
    Status(status::StatusArgs),
    /// Stop the nodes of the local cluster in --dir (optionally deleting its files).
    ///
    /// Each node gets SIGTERM, then SIGKILL if it has not exited after the
    /// grace period. A recorded pid is signalled only if it runs
    /// `dsync server --config <this folder's node-N/node.yaml>` for that
    /// node's id (read from /proc); otherwise (a reused pid, or the node of
    /// the folder this one was copied from) it is left alone, said so, and
    /// dropped from cluster.yaml. Nodes of a folder moved while they ran
    /// (their log, not their arguments, is in this folder) are stopped. On the compose runtime, a folder whose
    /// cluster.yaml names another folder's docker-compose.yml (a copy) runs
    /// no compose command: the project is left alone, and --purge deletes
    /// only this folder's files. Without --purge the data stays, and
    /// `dsync cluster up` starts the same cluster again.
    Down(down::DownArgs),
    /// Grow or shrink the cluster to N voters, one member at a time.
    ///
    /// Growing starts new nodes (processes, or containers with their own
    /// volume on the compose runtime) that join as learners and are promoted
    /// to voters once caught up. Shrinking removes members (nodes that are
    /// down first, then the highest ids, never the leader: a leader picked
    /// hands off first) from the Raft membership, and only then stops their
    /// processes and deletes their folders (or removes their containers and
    /// volumes). The leader refuses a removal
    /// that would leave fewer healthy voters than a quorum of the rest.
    /// Even sizes are allowed but warned about.
    Scale(scale::ScaleArgs),
    /// Rolling upgrade to another dsync binary (local) or image (compose).
    ///
    /// Preflight: every node reachable, one leader, every node a voter, more
    /// than a quorum healthy (so one node can be down), and the new release
    /// (`<PATH> version`, or `version` in a throwaway container of the image)
    /// speaks the nodes' wire protocol. Then one node at a time, followers
    /// first and the leader last: drain (the leader hands off), stop, start
    /// from the new binary (or recreate the container from the new image on
    /// the same volume), wait until it reports the new version, follows the
    /// leader as a voter and has caught up. If a node fails to come back, it
    /// is started again from its previous binary or image and the upgrade
    /// stops (exit 1) with a report. Nodes already on the new release are
    /// skipped, so re-running resumes. Old and new nodes work together while
    /// the upgrade runs. --binary is for local clusters, --image for compose
    /// ones; the other is refused.
    Upgrade(upgrade::UpgradeArgs),
}

pub async fn run(global: &GlobalArgs, cmd: ClusterCommand) -> anyhow::Result<i32> {
    match cmd {
        ClusterCommand::Up(args) => up::run(global, args).await,
        ClusterCommand::Status(args) => status::run(global, args).await,
        ClusterCommand::Down(args) => down::run(global, args).await,
        ClusterCommand::Scale(args) => scale::run(global, args).await,
        ClusterCommand::Upgrade(args) => upgrade::run(global, args).await,
    }
}
