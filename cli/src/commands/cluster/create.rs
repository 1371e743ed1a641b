//! A new local cluster for `dsync cluster up`: node 1 bootstraps, the others
//! join through the nodes before them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use super::up::{keep_running_hint, record_versions, Started, UpAuth};
use super::wait::{all_follow, leader_is, wait_for, Watched};
use crate::cluster_file::{now_ms, ClusterFile, NodeEntry, CLUSTER_FILE_VERSION};
use crate::local::{free_ports, spawn_node, NodeYaml};
use crate::progress::Progress;

/// A fresh cluster: node 1 bootstraps, the others join through the nodes
/// before them once node 1 leads.
pub(super) async fn create(
    dir: &Path,
    binary: PathBuf,
    n: u8,
    (auth, tls): (UpAuth, bool),
    timeout: Duration,
    progress: &mut Progress,
) -> anyhow::Result<Started> {
    refuse_leftovers(dir)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let auth = match auth {
        UpAuth::None => None,
        UpAuth::Token => {
            let s = crate::secrets::Secrets::create(dir)?;
            Some(dsync_server::auth::AuthConfig {
                mode: dsync_server::auth::AuthMode::Token,
                jwt_secret_file: Some(s.jwt_secret),
                cluster_secret_file: Some(s.cluster_secret),
                ..Default::default()
            })
        }
    };
    let tls_dir = dir.join("tls");
    if tls {
        crate::commands::cert::init::init(
            &tls_dir,
            n,
            &["127.0.0.1".into(), "localhost".into()],
            Default::default(),
        )?;
    }
    let ports = free_ports(n as usize)?;
    let mut file = ClusterFile {
        version: CLUSTER_FILE_VERSION,
        compose: None,
        runtime: "local".into(),
        binary,
        created_at_ms: now_ms(),
        nodes: Vec::new(),
    };
    for (i, port) in (1u64..).zip(&ports) {
        let node = NodeEntry::local(i, dir.join(format!("node-{i}")), *port, tls);
        std::fs::create_dir_all(&node.data_dir)
            .with_context(|| format!("cannot create {}", node.data_dir.display()))?;
        NodeYaml {
            id: i,
            listen: ([127, 0, 0, 1], *port).into(),
            data_dir: node.data_dir.clone(),
            bootstrap: i == 1,
            join: file
                .nodes
                .iter()
                .map(|n: &NodeEntry| n.addr.clone())
                .collect(),
            audit_log: auth.as_ref().map(|_| node.dir.join("audit.log")),
            auth: auth.clone(),
            tls: tls.then(|| {
                let (cert_file, key_file) = crate::commands::cert::init::node_files(&tls_dir, i);
                dsync_server::tls::TlsConfig {
                    cert_file,
                    key_file,
                    ca_file: tls_dir.join("ca.pem"),
                }
            }),
            worker_threads: crate::local::worker_share(n as usize),
        }
        .write(&node.config)?;
        file.nodes.push(node);
    }
    // Written before anything starts so `cluster down` can always clean up.
    file.save(dir)?;
    let mut watched = Vec::new();
    let ids: Vec<u64> = file.nodes.iter().map(|n| n.id).collect();
    for (k, id) in ids.iter().enumerate() {
        watched.push(start(dir, &mut file, *id, progress)?);
        if k == 0 {
            wait_for(
                &mut watched,
                timeout,
                progress,
                "waiting for node 1 to lead",
                |o| leader_is(*id, o),
            )
            .await
            .map_err(keep_running_hint)?;
        }
    }
    let statuses = all_follow(
        &mut watched,
        n as usize,
        timeout,
        progress,
        "waiting for every node to join",
    )
    .await
    .map_err(keep_running_hint)?;
    record_versions(&mut file, &statuses);
    file.save(dir)?;
    let states = ids.iter().map(|id| (*id, "started")).collect();
    Ok((file, states, statuses))
}

/// Spawns node `id` and records its pid at once.
pub(crate) fn start(
    dir: &Path,
    file: &mut ClusterFile,
    id: u64,
    progress: &mut Progress,
) -> anyhow::Result<Watched> {
    let default_binary = file.binary.clone();
    let node = file
        .node_mut(id)
        .context("node missing from the cluster file")?;
    let binary = node.binary.clone().unwrap_or(default_binary);
    progress.note(format!("starting node {id} on {}", node.addr));
    let child = spawn_node(&binary, &node.config, &node.log)?;
    node.pid = Some(child.id());
    let watched = Watched {
        id,
        addr: node.addr.clone(),
        log: node.log.clone(),
        child: Some(child),
    };
    file.save(dir)?;
    Ok(watched)
}

/// A folder with node data but no cluster file would make new nodes start
/// on old logs; refuse instead of guessing.
fn refuse_leftovers(dir: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let leftover = entries
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("node-"));
    if leftover {
        bail!(
            "{} holds node folders but no cluster.yaml; remove it or pick another --dir",
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_node_folders_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        refuse_leftovers(tmp.path()).unwrap();
        refuse_leftovers(&tmp.path().join("missing")).unwrap();
        std::fs::create_dir(tmp.path().join("node-1")).unwrap();
        let err = refuse_leftovers(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("no cluster.yaml"), "{err}");
    }
}
