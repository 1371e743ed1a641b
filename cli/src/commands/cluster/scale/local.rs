//! The local runtime's half of `cluster scale`: new nodes are `dsync server`
//! processes with their own folder beside the others.

use std::path::Path;

use anyhow::{bail, Context};

use crate::cluster_file::{ClusterFile, NodeEntry};
use crate::commands::cluster::create::start;
use crate::commands::cluster::wait::Watched;
use crate::local::{free_ports, NodeYaml};
use crate::progress::Progress;

/// Starts the new nodes; each joins as a learner and the leader promotes it
/// to voter once it has caught up (the server's join does both).
pub(super) fn grow(
    dir: &Path,
    file: &mut ClusterFile,
    target: usize,
    progress: &mut Progress,
) -> anyhow::Result<Vec<Watched>> {
    let count = target - file.nodes.len();
    let ports = free_ports(count)?;
    let first = file.nodes.iter().map(|n| n.id).max().unwrap_or(0) + 1;
    // New nodes run what the existing ones run (an upgraded cluster keeps
    // its binary when it grows).
    let (version, binary) = file.nodes.first().map_or_else(
        || (env!("CARGO_PKG_VERSION").to_string(), None),
        |n| (n.version.clone(), n.binary.clone()),
    );
    let mut added = Vec::new();
    for (id, port) in (first..).zip(ports) {
        let node_dir = dir.join(format!("node-{id}"));
        if node_dir.exists() {
            bail!(
                "{} already exists: a node {id} left data behind; remove it first",
                node_dir.display()
            );
        }
        let data_dir = node_dir.join("data");
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let config = node_dir.join("node.yaml");
        let security = file
            .nodes
            .first()
            .map(|n| crate::local::security_of(&n.config, &node_dir));
        let scheme = match security.as_ref().and_then(|s| s.tls.as_ref()) {
            Some(_) => "https://",
            None => "",
        };
        NodeYaml {
            id,
            listen: ([127, 0, 0, 1], port).into(),
            data_dir: data_dir.clone(),
            bootstrap: false,
            join: file.endpoints(),
            auth: security.as_ref().and_then(|s| s.auth.clone()),
            audit_log: security.as_ref().and_then(|s| s.audit_log.clone()),
            tls: security.and_then(|s| s.tls),
            worker_threads: crate::local::worker_share(file.nodes.len() + 1),
        }
        .write(&config)?;
        file.nodes.push(NodeEntry {
            id,
            addr: format!("{scheme}127.0.0.1:{port}"),
            pid: None,
            log: node_dir.join("server.log"),
            dir: node_dir,
            data_dir,
            config,
            version: version.clone(),
            binary: binary.clone(),
        });
        file.save(dir)?;
        added.push(start(dir, file, id, progress)?);
    }
    Ok(added)
}
