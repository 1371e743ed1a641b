//! The compose runtime's half of `cluster scale`: a new node is a service
//! with its own volume and published port in the project's compose file; a
//! removed one loses its container, its volume and its service.

use std::path::Path;

use anyhow::{bail, Context};

use crate::cluster_file::{ClusterFile, NodeEntry};
use crate::commands::cluster::wait::Watched;
use crate::compose::{
    publish_entry, published_addr, remove_node, start_nodes, volume_exists, ComposeDoc,
    ComposeInfo, NodeService, Publish,
};
use crate::progress::Progress;

/// Adds the new services and starts their containers; each node joins
/// through the current members as a learner and the leader promotes it to
/// voter once it has caught up (the server's join does both).
pub(super) fn grow(
    dir: &Path,
    info: &ComposeInfo,
    file: &mut ClusterFile,
    additions: Vec<(u64, u16)>,
    progress: &mut Progress,
) -> anyhow::Result<Vec<Watched>> {
    let members: Vec<u64> = file.nodes.iter().map(|n| n.id).collect();
    let mut doc = ComposeDoc::load(&info.file)?;
    // New nodes run what the existing ones run (an upgraded cluster keeps
    // its image when it grows).
    let image = members
        .first()
        .and_then(|id| doc.image(*id))
        .unwrap_or_else(|| info.image.clone());
    let version = file.nodes.first().map(|n| n.version.clone());
    let mut added = Vec::new();
    for (id, port) in additions {
        if volume_exists(info, id)? {
            bail!(
                "the volume of a former node {id} still exists ({}_dsync-{id}-data): remove it first",
                info.project
            );
        }
        doc.add_node(&NodeService {
            id,
            image: &image,
            port: publish_entry(Publish::Loopback(&[port]), 1),
            bootstrap: false,
            join: members.clone(),
            auth: info.auth,
        })?;
        file.nodes.push(NodeEntry {
            id,
            addr: format!("127.0.0.1:{port}"),
            pid: None,
            dir: dir.to_path_buf(),
            data_dir: "/data".into(),
            config: info.file.clone(),
            log: Default::default(),
            version: version.clone().unwrap_or_default(),
            binary: None,
        });
        added.push(id);
    }
    doc.save(&info.file)?;
    let ids: Vec<u64> = file.nodes.iter().map(|n| n.id).collect();
    write_prometheus(info, &ids)?;
    // Recorded before anything starts so `cluster down` finds them.
    file.save(dir)?;
    progress.step(format!("starting containers of node {added:?} ({image})"));
    start_nodes(info, &added)?;
    let mut watched = Vec::new();
    for id in &added {
        let addr = published_addr(info, *id)?;
        let node = file.node_mut(*id).context("node just added")?;
        node.addr.clone_from(&addr);
        watched.push(Watched {
            id: *id,
            addr,
            log: Default::default(),
            child: None,
        });
    }
    file.save(dir)?;
    Ok(watched)
}

/// Removes node `id`'s container and volume, then its service; the caller
/// has already taken it out of the Raft membership.
pub(super) fn remove(info: &ComposeInfo, file: &ClusterFile, id: u64) -> anyhow::Result<()> {
    remove_node(info, id)?;
    let mut doc = ComposeDoc::load(&info.file)?;
    doc.remove_node(id);
    doc.save(&info.file)?;
    let rest: Vec<u64> = file
        .nodes
        .iter()
        .map(|n| n.id)
        .filter(|n| *n != id)
        .collect();
    write_prometheus(info, &rest)
}

fn write_prometheus(info: &ComposeInfo, ids: &[u64]) -> anyhow::Result<()> {
    let dir = info
        .file
        .parent()
        .context("compose file without a folder")?;
    crate::compose::write_prometheus(dir, ids)
}
