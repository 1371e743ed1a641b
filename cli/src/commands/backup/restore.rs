//! `dsync backup restore FILE --into DIR [--nodes N]`: data folders and a
//! cluster file for a new cluster that starts from the backup's state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::cluster_file::{now_ms, ClusterFile, NodeEntry, CLUSTER_FILE_VERSION};
use crate::context::GlobalArgs;
use crate::local::{free_ports, NodeYaml};
use crate::output::Table;

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup file (verified before anything is written).
    pub file: PathBuf,

    /// Folder of the new cluster; must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub into: PathBuf,

    /// Number of voters of the new cluster, 1 to 9.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub nodes: u8,
}

#[derive(Debug, Serialize)]
struct Restored {
    dir: PathBuf,
    cluster_id: String,
    from_cluster_id: Option<String>,
    index: u64,
    term: u64,
    /// Queue groups restored, each on the nodes listed.
    groups: BTreeMap<u64, Vec<u64>>,
    nodes: Vec<RestoredNode>,
    next: String,
}

#[derive(Debug, Serialize)]
struct RestoredNode {
    id: u64,
    addr: String,
    data_dir: PathBuf,
}

pub fn run(global: &GlobalArgs, args: RestoreArgs) -> anyhow::Result<i32> {
    let backup = super::load(&args.file)?;
    let header = backup.header.clone();
    let dir = std::path::absolute(&args.into)?;
    refuse_non_empty(&dir)?;
    let n = args.nodes as usize;
    let ports = free_ports(n)?;
    let members: BTreeMap<u64, String> = (1u64..)
        .zip(&ports)
        .map(|(id, port)| (id, format!("127.0.0.1:{port}")))
        .collect();
    let cluster_id = dsync_server::backup::new_cluster_id();
    let (seeded, groups) = dsync_server::backup::seed_groups(backup, &members, cluster_id.clone());
    let bytes = seeded.encode()?;

    let mut file = ClusterFile {
        version: CLUSTER_FILE_VERSION,
        runtime: "local".into(),
        binary: std::env::current_exe().context("cannot locate the dsync binary")?,
        created_at_ms: now_ms(),
        nodes: Vec::new(),
        compose: None,
    };
    for (id, addr) in &members {
        let node_dir = dir.join(format!("node-{id}"));
        let data_dir = node_dir.join("data");
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        write_snapshot(&data_dir, &bytes)?;
        for g in groups.iter().filter(|g| g.replicas.contains(id)) {
            let dir = dsync_server::groups::group_dir(&data_dir, g.id);
            write_snapshot(&dir, &g.snapshot.encode()?)?;
        }
        let config = node_dir.join("node.yaml");
        NodeYaml {
            id: *id,
            listen: addr.parse().context("restored address")?,
            data_dir: data_dir.clone(),
            // The snapshot carries the membership: nothing to bootstrap or join.
            bootstrap: false,
            join: vec![],
            // A restored cluster starts open; secure it by editing node.yaml.
            auth: None,
            audit_log: None,
            tls: None,
            worker_threads: crate::local::worker_share(members.len()),
        }
        .write(&config)?;
        file.nodes.push(NodeEntry {
            id: *id,
            addr: addr.clone(),
            pid: None,
            log: node_dir.join("server.log"),
            dir: node_dir,
            data_dir,
            config,
            version: dsync_server::version().to_string(),
            binary: None,
        });
    }
    file.save(&dir)?;
    let report = Restored {
        next: format!("dsync cluster up --dir {}", dir.display()),
        nodes: file
            .nodes
            .iter()
            .map(|n| RestoredNode {
                id: n.id,
                addr: n.addr.clone(),
                data_dir: n.data_dir.clone(),
            })
            .collect(),
        dir,
        cluster_id,
        from_cluster_id: header.cluster_id,
        index: header.index,
        term: header.term,
        groups: groups.iter().map(|g| (g.id, g.replicas.clone())).collect(),
    };
    global.output.print(&report, || {
        let mut t = Table::new(["ID", "ADDR", "DATA"]);
        for n in &report.nodes {
            t.row([
                n.id.to_string(),
                n.addr.clone(),
                n.data_dir.display().to_string(),
            ]);
        }
        format!(
            "{}restored index {} (term {}) of cluster {} as new cluster {}{}\n",
            t.render(),
            report.index,
            report.term,
            report.from_cluster_id.as_deref().unwrap_or("-"),
            report.cluster_id,
            match report.groups.len() {
                0 => String::new(),
                n => format!(", with its {n} queue groups placed over the new nodes"),
            }
        )
    })?;
    eprintln!("start it with: {}", report.next);
    Ok(crate::commands::EXIT_OK)
}

fn write_snapshot(dir: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    dsync_server::raft::snapshot::write_atomic(dir, bytes)
        .with_context(|| format!("cannot write the snapshot into {}", dir.display()))
}

fn refuse_non_empty(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty; restore into a new folder (an existing cluster is never overwritten)",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_missing_or_empty_folders_are_accepted() {
        let tmp = tempfile::tempdir().unwrap();
        refuse_non_empty(&tmp.path().join("new")).unwrap();
        refuse_non_empty(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("x"), "").unwrap();
        assert!(refuse_non_empty(tmp.path()).is_err());
    }
}
