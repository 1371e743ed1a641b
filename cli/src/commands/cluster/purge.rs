//! `cluster down --purge`: delete what dsync wrote into a cluster folder and
//! nothing else. What dsync writes is a fixed layout (`cluster up`, `scale`,
//! `backup restore`, `cert init`/`rotate`, the compose runtime), so the
//! names are recognised by that layout — which also covers folders made by
//! releases that recorded nothing about it. Anything else is kept and named.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cluster_file::CLUSTER_FILE_NAME;
use crate::compose::{ALERTS_FILE, COMPOSE_FILE, NODE_CONFIG, PROMETHEUS_FILE};

#[derive(Debug, Default)]
pub struct Purged {
    /// Entries left in place because dsync did not make them, relative to
    /// the cluster folder.
    pub kept: Vec<PathBuf>,
    /// Whether the folder itself is gone (it is removed only once empty).
    pub removed_dir: bool,
    /// Where the folder points when it is a symlink: the link and the
    /// folder it names are the operator's and stay.
    pub link_to: Option<PathBuf>,
}

/// The folders of the layout, each with the names dsync writes into it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Folder {
    Top,
    Node,
    Secrets,
    Tls,
    Prometheus,
}

/// What a name in a folder of the layout is.
#[derive(Debug, PartialEq)]
enum Entry {
    /// A file dsync wrote.
    File,
    /// A folder that is dsync's as a whole (a node's data: the server's).
    Tree,
    /// A folder of the layout, looked into.
    Folder(Folder),
}

fn classify(folder: Folder, name: &str, is_dir: bool) -> Option<Entry> {
    let numbered = |prefix: &str, rest: &str| {
        rest.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let entry = match (folder, is_dir) {
        (Folder::Top, true) => match name {
            "secrets" => Entry::Folder(Folder::Secrets),
            "tls" => Entry::Folder(Folder::Tls),
            "prometheus" => Entry::Folder(Folder::Prometheus),
            n if numbered("node-", n) => Entry::Folder(Folder::Node),
            _ => return None,
        },
        (Folder::Top, false) => {
            let tmp = |f: &str| format!(".{f}.tmp");
            let names = [
                CLUSTER_FILE_NAME.to_string(),
                tmp(CLUSTER_FILE_NAME),
                COMPOSE_FILE.to_string(),
                Path::new(COMPOSE_FILE)
                    .with_extension("yml.tmp")
                    .display()
                    .to_string(),
                NODE_CONFIG.to_string(),
                PROMETHEUS_FILE.to_string(),
            ];
            names.iter().any(|n| n == name).then_some(Entry::File)?
        }
        (Folder::Node, true) => (name == "data").then_some(Entry::Tree)?,
        (Folder::Node, false) => ["node.yaml", "server.log", "audit.log"]
            .contains(&name)
            .then_some(Entry::File)?,
        (Folder::Secrets, false) => ["jwt.secret", "cluster.secret", "admin.token"]
            .contains(&name)
            .then_some(Entry::File)?,
        (Folder::Tls, false) => {
            // cert init writes ca.* and node-<i>.*; rotate keeps the
            // previous node files as *.old and writes through *.new.
            let base = name
                .strip_suffix(".old")
                .or_else(|| name.strip_suffix(".new"))
                .unwrap_or(name);
            let (stem, ext) = base.rsplit_once('.')?;
            let known = matches!(ext, "pem" | "key") && (stem == "ca" || numbered("node-", stem));
            known.then_some(Entry::File)?
        }
        (Folder::Prometheus, false) => {
            let alerts = Path::new(ALERTS_FILE).file_name().and_then(|n| n.to_str());
            (Some(name) == alerts).then_some(Entry::File)?
        }
        _ => return None,
    };
    Some(entry)
}

/// Deletes dsync's files in `dir`, then `dir` itself if nothing is left.
pub fn purge(dir: &Path) -> anyhow::Result<Purged> {
    let mut purged = Purged {
        link_to: std::fs::read_link(dir).ok(),
        ..Purged::default()
    };
    sweep(dir, Path::new(""), Folder::Top, &mut purged)?;
    if purged.link_to.is_none() {
        purged.removed_dir = remove_if_empty(dir)?;
    }
    Ok(purged)
}

fn sweep(dir: &Path, rel: &Path, folder: Folder, purged: &mut Purged) -> anyhow::Result<()> {
    let here = dir.join(rel);
    let entries =
        std::fs::read_dir(&here).with_context(|| format!("cannot read {}", here.display()))?;
    let mut names: Vec<_> = entries.flatten().collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let name = e.file_name();
        let path = e.path();
        // A symlink is judged by its name and removed as a link: never
        // followed into whatever it points at.
        let kind = e
            .file_type()
            .with_context(|| format!("cannot inspect {}", path.display()))?;
        let is_dir = kind.is_dir();
        let sub = rel.join(&name);
        match classify(folder, &name.to_string_lossy(), is_dir) {
            Some(Entry::File) => remove(&path, std::fs::remove_file(&path))?,
            Some(Entry::Tree) => remove(&path, std::fs::remove_dir_all(&path))?,
            Some(Entry::Folder(inner)) => {
                sweep(dir, &sub, inner, purged)?;
                remove_if_empty(&path)?;
            }
            None => purged.kept.push(sub),
        }
    }
    Ok(())
}

fn remove(path: &Path, result: std::io::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn remove_if_empty(path: &Path) -> anyhow::Result<bool> {
    let empty = std::fs::read_dir(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .next()
        .is_none();
    if empty {
        remove(path, std::fs::remove_dir(path))?;
    }
    Ok(empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, rel: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "x").unwrap();
    }

    /// What `cluster up --auth token --tls` with two nodes leaves.
    fn dsync_layout(dir: &Path) {
        for f in [
            "cluster.yaml",
            "secrets/jwt.secret",
            "secrets/cluster.secret",
            "secrets/admin.token",
            "tls/ca.pem",
            "tls/ca.key",
            "tls/node-1.pem",
            "tls/node-1.key",
            "tls/node-2.pem.old",
            "node-1/node.yaml",
            "node-1/server.log",
            "node-1/audit.log",
            "node-1/data/raft/log.bin",
            "node-12/data/snapshot.bin",
        ] {
            touch(dir, f);
        }
    }

    #[test]
    fn a_folder_of_only_dsync_files_is_removed_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        dsync_layout(&dir);
        for f in [
            "docker-compose.yml",
            "node.yaml",
            "prometheus.yml",
            "prometheus/alerts.yml",
        ] {
            touch(&dir, f);
        }
        let p = purge(&dir).unwrap();
        assert!(p.kept.is_empty(), "{:?}", p.kept);
        assert!(p.removed_dir);
        assert!(!dir.exists());
    }

    #[test]
    fn a_symlinked_folder_is_emptied_of_dsyncs_files_and_kept_with_its_link() {
        let tmp = tempfile::tempdir().unwrap();
        let (real, link) = (tmp.path().join("real"), tmp.path().join("link"));
        dsync_layout(&real);
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let p = purge(&link).unwrap();
        assert!(p.kept.is_empty() && !p.removed_dir, "{p:?}");
        assert_eq!(p.link_to.as_deref(), Some(real.as_path()));
        assert!(link.exists() && std::fs::read_dir(&real).unwrap().next().is_none());
    }

    #[test]
    fn other_files_are_kept_and_named_with_the_folders_holding_them() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        dsync_layout(&dir);
        for f in [
            "notes.txt",
            "backup.dsb",
            "node-1/my-notes.md",
            "tls/other-ca.pem",
            "secrets/extra",
            "node-x/node.yaml",
        ] {
            touch(&dir, f);
        }
        let outside = tmp.path().join("precious");
        touch(&outside, "keep.me");
        std::os::unix::fs::symlink(&outside, dir.join("node-1/data/link")).unwrap();
        let p = purge(&dir).unwrap();
        let kept: Vec<String> = p.kept.iter().map(|k| k.display().to_string()).collect();
        assert_eq!(
            kept,
            [
                "backup.dsb",
                "node-1/my-notes.md",
                "node-x",
                "notes.txt",
                "secrets/extra",
                "tls/other-ca.pem"
            ]
        );
        assert!(!p.removed_dir);
        assert!(dir.join("notes.txt").exists() && dir.join("node-1/my-notes.md").exists());
        assert!(!dir.join("cluster.yaml").exists() && !dir.join("node-1/data").exists());
        assert!(!dir.join("node-12").exists() && !dir.join("tls/ca.key").exists());
        assert!(
            outside.join("keep.me").exists(),
            "a symlink is never followed"
        );
    }
}
