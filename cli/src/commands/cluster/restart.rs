//! `dsync cluster up` on a folder that already holds a local cluster.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;

use super::create::start;
use super::up::{keep_running_hint, record_versions, Started};
use super::wait::{all_follow, healthy, Watched};
use crate::cluster_file::ClusterFile;
use crate::node_process::owner;
use crate::progress::Progress;

/// An existing cluster: leave healthy nodes alone, start the others again
/// from their node.yaml and data.
pub(super) async fn restart(
    dir: &Path,
    mut file: ClusterFile,
    binary: PathBuf,
    nodes: Option<u8>,
    timeout: Duration,
    progress: &mut Progress,
) -> anyhow::Result<Started> {
    if file.runtime != "local" {
        bail!(
            "{} uses the {} runtime, which this build cannot run",
            ClusterFile::path(dir).display(),
            file.runtime
        );
    }
    if let Some(n) = nodes.filter(|n| *n as usize != file.nodes.len()) {
        bail!(
            "the cluster in {} has {} nodes, not {n}; change its size with `dsync cluster scale --nodes {n}`",
            dir.display(),
            file.nodes.len()
        );
    }
    file.ensure_here(dir)?;
    file.binary = binary;
    let mut states = HashMap::new();
    let mut watched = Vec::new();
    let ids: Vec<u64> = file.nodes.iter().map(|n| n.id).collect();
    for id in ids {
        let Some(node) = file.nodes.iter().find(|n| n.id == id).cloned() else {
            continue;
        };
        if let Some(pid) = owner(dir, &node).ours().map(|h| h.pid()) {
            if healthy(node.id, &node.addr).await {
                progress.note(format!("node {id} running on {} (pid {pid})", node.addr));
                states.insert(id, "running");
                watched.push(Watched {
                    id,
                    addr: node.addr.clone(),
                    log: node.log.clone(),
                    child: None,
                });
                continue;
            }
            bail!(
                "node {id} (pid {pid}) is running but {} does not answer /health; see {} or stop it with `dsync cluster down`",
                node.addr,
                node.log.display()
            );
        }
        watched.push(start(dir, &mut file, id, progress)?);
        states.insert(id, "restarted");
    }
    let n = file.nodes.len();
    let statuses = all_follow(
        &mut watched,
        n,
        timeout,
        progress,
        "waiting for the cluster",
    )
    .await
    .map_err(keep_running_hint)?;
    record_versions(&mut file, &statuses);
    file.save(dir)?;
    Ok((file, states, statuses))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_file::CLUSTER_FILE_VERSION;

    #[tokio::test]
    async fn a_different_size_points_to_scale() {
        let tmp = tempfile::tempdir().unwrap();
        let file = ClusterFile {
            version: CLUSTER_FILE_VERSION,
            compose: None,
            runtime: "local".into(),
            binary: PathBuf::from("/bin/true"),
            created_at_ms: 0,
            nodes: vec![],
        };
        let mut progress = Progress::new();
        let err = restart(
            tmp.path(),
            file,
            PathBuf::from("/bin/true"),
            Some(5),
            Duration::from_secs(1),
            &mut progress,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("dsync cluster scale --nodes 5"), "{err}");
    }
}
