//! `<dir>/cluster.yaml`: what `dsync cluster up` started, so later commands
//! find the endpoints and `cluster down` finds the processes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// Format version of the file; bumped on incompatible changes.
pub const CLUSTER_FILE_VERSION: u32 = 1;
pub const CLUSTER_FILE_NAME: &str = "cluster.yaml";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterFile {
    pub version: u32,
    /// How the nodes run: `local` (processes on this machine) or `compose`
    /// (containers; for those, `pid` is null, `data_dir` is the path inside
    /// the container and `log` is empty: use `docker logs`).
    pub runtime: String,
    /// The `dsync` binary the nodes were started from.
    pub binary: PathBuf,
    pub created_at_ms: u64,
    pub nodes: Vec<NodeEntry>,
    /// Set for the `compose` runtime: the project, its file and image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose: Option<crate::compose::ComposeInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeEntry {
    pub id: u64,
    /// `host:port` clients and peers use.
    pub addr: String,
    /// Process id while the node runs; null once stopped.
    pub pid: Option<u32>,
    /// The node's own folder (config, log, data).
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    /// The node's `node.yaml`.
    pub config: PathBuf,
    /// Where the node's stdout and stderr are appended.
    pub log: PathBuf,
    /// dsync version the node runs.
    pub version: String,
    /// The binary this node runs when it differs from the cluster's
    /// (set by `cluster upgrade`, node by node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<PathBuf>,
}

impl NodeEntry {
    /// A local node in `node_dir` (its data, node.yaml and log below it),
    /// stopped, on this build's version and the cluster's binary.
    pub fn local(id: u64, node_dir: PathBuf, port: u16, tls: bool) -> NodeEntry {
        let scheme = if tls { "https://" } else { "" };
        NodeEntry {
            id,
            addr: format!("{scheme}127.0.0.1:{port}"),
            pid: None,
            log: node_dir.join("server.log"),
            data_dir: node_dir.join("data"),
            config: node_dir.join("node.yaml"),
            dir: node_dir,
            version: env!("CARGO_PKG_VERSION").to_string(),
            binary: None,
        }
    }
}

impl ClusterFile {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(CLUSTER_FILE_NAME)
    }

    /// Loads `<dir>/cluster.yaml`; `Ok(None)` when there is none.
    pub fn load(dir: &Path) -> anyhow::Result<Option<ClusterFile>> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let file: ClusterFile = serde_yaml::from_str(&text)
            .with_context(|| format!("{} is not a valid cluster file", path.display()))?;
        if file.version != CLUSTER_FILE_VERSION {
            bail!(
                "{} has format version {}, this dsync understands version {}",
                path.display(),
                file.version,
                CLUSTER_FILE_VERSION
            );
        }
        Ok(Some(file))
    }

    /// Writes `<dir>/cluster.yaml` through a temporary file and a rename, so
    /// a crash never leaves a half-written file that would orphan the nodes.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let path = Self::path(dir);
        let tmp = dir.join(format!(".{CLUSTER_FILE_NAME}.tmp"));
        let text = serde_yaml::to_string(self)?;
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        Ok(())
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    pub fn node_mut(&mut self, id: u64) -> Option<&mut NodeEntry> {
        self.nodes.iter_mut().find(|n| n.id == id)
    }

    /// Refuses a cluster file that names files outside `dir`: a copied or
    /// moved folder still names the original's, and starting, stopping or
    /// deleting through it would act on that cluster's nodes (or, on the
    /// compose runtime, its project: containers and volumes).
    pub fn ensure_here(&self, dir: &Path) -> anyhow::Result<()> {
        let Some(Elsewhere { what, origin }) = self.elsewhere(dir) else {
            return Ok(());
        };
        let head = format!(
            "{} names {what}, outside {}",
            Self::path(dir).display(),
            dir.display()
        );
        if Self::path(&origin).exists() {
            bail!(
                "{head}: the folder was copied from {o}; run the command against that folder (--dir {o}), or start a new cluster in an empty folder",
                o = origin.display()
            );
        }
        // Node configs name their data by absolute path: the nodes would
        // start empty here.
        bail!(
            "{head}: the folder was moved from {o}, where its node configs still point; move it back (mv {} {o})",
            dir.display(),
            o = origin.display()
        )
    }

    /// What of another folder's cluster this file names, if anything: the
    /// first node file (local) or the compose file (compose) outside `dir`.
    pub fn elsewhere(&self, dir: &Path) -> Option<Elsewhere> {
        let here = canonical(dir);
        let outside = |path: &Path| !canonical(path).starts_with(&here);
        let folder_of = |path: &Path| path.parent().unwrap_or(path).to_path_buf();
        if let Some(info) = &self.compose {
            // The nodes' paths are the container's; the project is named
            // after the folder that wrote this compose file.
            return outside(&info.file).then(|| Elsewhere {
                what: format!("compose project {}'s {}", info.project, info.file.display()),
                origin: folder_of(&info.file),
            });
        }
        self.nodes.iter().find_map(|n| {
            [&n.dir, &n.config, &n.data_dir]
                .into_iter()
                .find(|p| outside(p))
                .map(|p| Elsewhere {
                    what: format!("node {}'s files in {}", n.id, p.display()),
                    origin: folder_of(&n.dir),
                })
        })
    }
}

/// Files of another folder's cluster named by a cluster file.
#[derive(Debug, PartialEq)]
pub struct Elsewhere {
    pub what: String,
    /// The folder that wrote them.
    pub origin: PathBuf,
}

/// The real path of `path`, resolving symlinks in the part of it that
/// exists, so paths compare equal however they were spelled.
pub fn canonical(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = abs.as_path();
    let mut missing = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            return missing.iter().rev().fold(real, |p, name| p.join(name));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_owned());
                existing = parent;
            }
            _ => return abs,
        }
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> ClusterFile {
        ClusterFile {
            version: CLUSTER_FILE_VERSION,
            compose: None,
            runtime: "local".into(),
            binary: PathBuf::from("/usr/bin/dsync"),
            created_at_ms: 1_700_000_000_000,
            nodes: (1..=2)
                .map(|i| NodeEntry {
                    id: i,
                    addr: format!("127.0.0.1:{}", 7000 + i),
                    pid: if i == 1 { Some(42) } else { None },
                    dir: dir.join(format!("node-{i}")),
                    data_dir: dir.join(format!("node-{i}/data")),
                    config: dir.join(format!("node-{i}/node.yaml")),
                    log: dir.join(format!("node-{i}/server.log")),
                    version: "0.1.0".into(),
                    binary: None,
                })
                .collect(),
        }
    }

    #[test]
    fn save_then_load_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let file = sample(tmp.path());
        file.save(tmp.path()).unwrap();
        assert_eq!(ClusterFile::load(tmp.path()).unwrap(), Some(file.clone()));
        assert_eq!(file.endpoints(), vec!["127.0.0.1:7001", "127.0.0.1:7002"]);
        assert!(!tmp.path().join(".cluster.yaml.tmp").exists());
    }

    #[test]
    fn missing_file_is_none_and_garbage_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(ClusterFile::load(tmp.path()).unwrap(), None);
        std::fs::write(ClusterFile::path(tmp.path()), "nodes: 7\n").unwrap();
        let err = ClusterFile::load(tmp.path()).unwrap_err();
        assert!(
            format!("{err:#}").contains("not a valid cluster file"),
            "{err:#}"
        );
    }

    #[test]
    fn unknown_format_versions_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut file = sample(tmp.path());
        file.version = 99;
        file.save(tmp.path()).unwrap();
        let err = ClusterFile::load(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("format version 99"), "{err}");
    }

    #[test]
    fn a_copied_cluster_file_naming_another_folder_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (orig, copy) = (tmp.path().join("orig"), tmp.path().join("copy"));
        std::fs::create_dir_all(orig.join("node-1")).unwrap();
        std::fs::create_dir_all(&copy).unwrap();
        let file = sample(&orig);
        file.save(&orig).unwrap();
        file.ensure_here(&orig).unwrap();
        // Through a symlink the folder is still the same one.
        std::os::unix::fs::symlink(&orig, tmp.path().join("link")).unwrap();
        file.ensure_here(&tmp.path().join("link")).unwrap();
        let err = file.ensure_here(&copy).unwrap_err().to_string();
        assert!(err.contains("outside") && err.contains("copied"), "{err}");
        // Moved, the folder it names is gone: the way out is moving it back.
        let moved = tmp.path().join("moved");
        std::fs::rename(&orig, &moved).unwrap();
        let err = file.ensure_here(&moved).unwrap_err().to_string();
        assert!(
            err.contains(&format!("moved from {}", orig.display())) && err.contains("mv "),
            "{err}"
        );
    }

    #[test]
    fn a_copied_compose_folder_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (orig, copy) = (tmp.path().join("orig"), tmp.path().join("copy"));
        std::fs::create_dir_all(&orig).unwrap();
        std::fs::create_dir_all(&copy).unwrap();
        let mut file = sample(&orig);
        file.compose = Some(crate::compose::ComposeInfo {
            project: "dsyncorig123456".into(),
            file: orig.join("docker-compose.yml"),
            image: "dsync:latest".into(),
            auth: false,
        });
        for n in &mut file.nodes {
            // As compose_up records them: the container's data path.
            n.data_dir = "/data".into();
        }
        file.save(&orig).unwrap();
        file.ensure_here(&orig).unwrap();
        assert_eq!(file.elsewhere(&orig), None);
        let err = file.ensure_here(&copy).unwrap_err().to_string();
        assert!(
            err.contains("compose project dsyncorig123456's") && err.contains("copied"),
            "{err}"
        );
    }

    #[test]
    fn stopped_nodes_have_null_pids() {
        let tmp = tempfile::tempdir().unwrap();
        let text = serde_yaml::to_string(&sample(tmp.path())).unwrap();
        assert!(text.contains("pid: null"), "{text}");
    }
}
