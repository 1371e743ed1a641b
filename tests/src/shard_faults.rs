//! Killing nodes at a shard job's steps: arming the debug build's
//! failpoints (`server/src/failpoint.rs`), waiting for the death, bringing
//! the node back, and reading the jobs.

use std::time::Duration;

use dsync_api::shards::ShardJob;

use crate::{is_dsync_process, wait_until, Cluster};

/// Makes `node` exit (as `kill -9` would) the next time it reaches `point`.
pub fn arm(c: &Cluster, node: u64, point: &str) {
    let dir = c.node(node).data_dir.join("failpoints");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(point), b"").unwrap();
}

/// Waits (up to a minute) until `node` has died.
pub async fn exited(c: &Cluster, node: u64, what: &str) {
    let pid = c.node(node).pid.expect("pid");
    wait_until(
        Duration::from_secs(60),
        &format!("node {node} to die at {what}"),
        || async move { (!is_dsync_process(pid)).then_some(()) },
    )
    .await;
}

/// `cluster up` starts the stopped nodes again from their data.
pub fn restart(c: &Cluster) {
    tokio::task::block_in_place(|| c.dsync_ok(&["cluster", "up", "--timeout", "60"]));
}

/// Shard job `id` as some node last applied it.
pub async fn job(c: &Cluster, id: u64) -> Option<ShardJob> {
    c.client().shard_job(id).await.ok()
}

/// The id of the newest shard job (0: none yet).
pub async fn last_job_id(c: &Cluster) -> u64 {
    let jobs = c.client().shard_jobs().await.expect("jobs");
    jobs.iter().map(|j| j.id).max().unwrap_or(0)
}
