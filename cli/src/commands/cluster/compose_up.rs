//! `dsync cluster up --runtime compose`: the nodes as containers of the
//! `dsync` image under Docker Compose, with the cluster file recording the
//! project so status, down and the other commands find it.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

use super::up::Started;
use super::wait::{all_follow, Watched};
use crate::cluster_file::{now_ms, ClusterFile, NodeEntry, CLUSTER_FILE_VERSION};
use crate::compose::{
    compose, compose_yaml, node_config_yaml, project_name, published_addr, require_image,
    share_secrets, write_prometheus, ComposeInfo, Publish, COMPOSE_FILE, NODE_CONFIG,
};
use crate::local::free_ports;
use crate::progress::Progress;

/// Creates the compose project in `dir`, or brings an existing one back up
/// (`compose up -d` leaves running containers alone).
pub async fn up(
    dir: &Path,
    existing: Option<ClusterFile>,
    nodes: u8,
    image: &str,
    auth: bool,
    timeout: Duration,
    progress: &mut Progress,
) -> anyhow::Result<Started> {
    let (mut file, fresh) = match existing {
        Some(file) => {
            let Some(info) = &file.compose else {
                bail!(
                    "{} holds a {} cluster; stop it with `dsync cluster down` or use another --dir",
                    ClusterFile::path(dir).display(),
                    file.runtime
                );
            };
            file.ensure_here(dir)?;
            require_image(&info.image)?;
            (file, false)
        }
        None => (create_files(dir, nodes, image, auth)?, true),
    };
    let info = file
        .compose
        .clone()
        .context("compose cluster without compose info")?;
    progress.step(format!(
        "starting {} containers ({})",
        file.nodes.len(),
        info.image
    ));
    compose(&info, &["up", "-d"])?;
    let mut watched = Vec::new();
    for node in &mut file.nodes {
        node.addr = published_addr(&info, node.id)?;
        watched.push(Watched {
            id: node.id,
            addr: node.addr.clone(),
            log: node.log.clone(),
            child: None,
        });
    }
    file.save(dir)?;
    let n = file.nodes.len();
    let what = "waiting for every container to join";
    let hint = |e: anyhow::Error| {
        anyhow::anyhow!(
            "{e:#}\nthe containers keep running: see `docker compose -p {} logs`, \
             stop them with `dsync cluster down`",
            info.project
        )
    };
    let statuses = all_follow(&mut watched, n, timeout, progress, what)
        .await
        .map_err(hint)?;
    for s in &statuses {
        if let Some(node) = file.node_mut(s.id) {
            node.version.clone_from(&s.version);
        }
    }
    file.save(dir)?;
    let state = if fresh { "started" } else { "running" };
    let states: HashMap<u64, &'static str> = file.nodes.iter().map(|n| (n.id, state)).collect();
    Ok((file, states, statuses))
}

/// Writes the compose and Prometheus files (and, with auth, the secrets and
/// the node config the containers mount) and a cluster file naming the
/// project, before anything starts, so `cluster down` can always clean up.
fn create_files(dir: &Path, nodes: u8, image: &str, auth: bool) -> anyhow::Result<ClusterFile> {
    require_image(image)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let n = u64::from(nodes);
    let compose_file = dir.join(COMPOSE_FILE);
    if auth {
        // The same layout as a local secured cluster, so the CLI finds the
        // admin token in <DIR>/secrets/ by itself.
        share_secrets(&crate::secrets::Secrets::create(&dir)?)?;
        let config = dir.join(NODE_CONFIG);
        std::fs::write(&config, node_config_yaml())
            .with_context(|| format!("cannot write {}", config.display()))?;
    }
    let ports = free_ports(n as usize)?;
    std::fs::write(
        &compose_file,
        compose_yaml(n, image, Publish::Loopback(&ports), auth),
    )
    .with_context(|| format!("cannot write {}", compose_file.display()))?;
    let ids: Vec<u64> = (1..=n).collect();
    write_prometheus(&dir, &ids)?;
    let info = ComposeInfo {
        project: project_name(&dir),
        file: compose_file.clone(),
        image: image.to_string(),
        auth,
    };
    let file = ClusterFile {
        version: CLUSTER_FILE_VERSION,
        compose: Some(info),
        runtime: "compose".into(),
        binary: "/dsync".into(),
        created_at_ms: now_ms(),
        nodes: (1..=n)
            .map(|id| NodeEntry {
                id,
                addr: String::new(),
                pid: None,
                dir: dir.clone(),
                data_dir: "/data".into(),
                config: compose_file.clone(),
                log: Default::default(),
                version: String::new(),
                binary: None,
            })
            .collect(),
    };
    file.save(&dir)?;
    Ok(file)
}
