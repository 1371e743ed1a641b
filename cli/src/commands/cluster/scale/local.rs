//! The local runtime's half of `cluster scale`: new nodes are `dsync server`
//! processes with their own folder beside the others.

use std::path::Path;

use anyhow::{bail, Context};

use crate::cluster_file::{ClusterFile, NodeEntry};
use crate::commands::cluster::create::start;
use crate::commands::cluster::wait::Watched;
use crate::local::NodeYaml;
use crate::progress::Progress;

/// Starts the new nodes; each joins as a learner and the leader promotes it
/// to voter once it has caught up (the server's join does both).
pub(super) fn grow(
    dir: &Path,
    file: &mut ClusterFile,
    additions: Vec<(u64, u16)>,
    progress: &mut Progress,
) -> anyhow::Result<Vec<Watched>> {
    // New nodes run what the existing ones run (an upgraded cluster keeps
    // its binary when it grows).
    let (version, binary) = file.nodes.first().map_or_else(
        || (env!("CARGO_PKG_VERSION").to_string(), None),
        |n| (n.version.clone(), n.binary.clone()),
    );
    let mut added = Vec::new();
    for (id, port) in additions {
        let node_dir = dir.join(format!("node-{id}"));
        if node_dir.exists() {
            bail!(
                "{} already exists: a node {id} left data behind; remove it first",
                node_dir.display()
            );
        }
        let security = file
            .nodes
            .first()
            .map(|n| crate::local::security_of(&n.config, &node_dir));
        let tls = security.as_ref().is_some_and(|s| s.tls.is_some());
        let node = NodeEntry {
            version: version.clone(),
            binary: binary.clone(),
            ..NodeEntry::local(id, node_dir, port, tls)
        };
        std::fs::create_dir_all(&node.data_dir)
            .with_context(|| format!("cannot create {}", node.data_dir.display()))?;
        NodeYaml {
            id,
            listen: ([127, 0, 0, 1], port).into(),
            data_dir: node.data_dir.clone(),
            bootstrap: false,
            join: file.endpoints(),
            auth: security.as_ref().and_then(|s| s.auth.clone()),
            audit_log: security.as_ref().and_then(|s| s.audit_log.clone()),
            tls: security.and_then(|s| s.tls),
            worker_threads: crate::local::worker_share(file.nodes.len() + 1),
        }
        .write(&node.config)?;
        file.nodes.push(node);
        file.save(dir)?;
        added.push(start(dir, file, id, progress)?);
    }
    Ok(added)
}
