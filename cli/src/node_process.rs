//! Whether a pid recorded in `cluster.yaml` really is that node. A live pid
//! alone proves nothing: a copied cluster folder records the original's
//! running nodes, and a pid freed by a stopped node can be reused by any
//! program. Like `pg_ctl` with its `postmaster.pid`, commands check the
//! process before they signal it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cluster_file::{canonical, NodeEntry};
use crate::process_handle::ProcessHandle;

/// What runs under a node's recorded pid.
#[derive(Debug, PartialEq, Eq)]
pub enum Owner {
    /// No pid recorded, or that process is gone.
    Gone,
    /// `dsync server --config <this folder's node.yaml>`, as `cluster up`
    /// started it, and that config is the node's own id. Signals go through
    /// the handle, so they reach this process even if its pid is reused.
    Ours(ProcessHandle),
    /// Alive, but not this folder's node: never signal it.
    Foreign { pid: u32, why: String },
}

impl Owner {
    pub fn ours(self) -> Option<ProcessHandle> {
        match self {
            Owner::Ours(handle) => Some(handle),
            _ => None,
        }
    }
}

/// How long a process whose command line is already gone may take to end.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// Judges `node.pid` for the cluster folder `dir`.
pub fn owner(dir: &Path, node: &NodeEntry) -> Owner {
    let Some(pid) = node.pid else {
        return Owner::Gone;
    };
    // Pinned before the check, so what is checked is what gets signalled.
    let Some(handle) = ProcessHandle::open(pid) else {
        return Owner::Gone;
    };
    let verdict = match process_args(pid) {
        Some(args) => judge(dir, node, pid, &args),
        // A process that is exiting (after `kill -9`, or a node stopping)
        // has released its memory, and with it its command line, but not
        // yet its sockets: starting the node again now would find its
        // ports taken. Wait for the end rather than call it foreign.
        None if handle.wait_ended(EXIT_WAIT) => return Owner::Gone,
        None => Err("its command line cannot be read".into()),
    };
    // The arguments read are the pinned process's only if it still runs:
    // had it exited meanwhile, they could be those of a new owner of the pid.
    if !handle.alive() {
        return Owner::Gone;
    }
    match verdict {
        Ok(()) => Owner::Ours(handle),
        Err(why) => Owner::Foreign { pid, why },
    }
}

/// Judges a live process by its arguments: `Err` says why it is not the node.
fn judge(dir: &Path, node: &NodeEntry, pid: u32, args: &[String]) -> Result<(), String> {
    let foreign = Err::<(), String>;
    // Exactly what `spawn_node` runs: `<binary> server --config <path>`.
    let config = match args {
        [_, server, flag, config] if server == "server" && flag == "--config" => config,
        _ => return foreign(format!("it runs `{}`, not a dsync node", args.join(" "))),
    };
    let ran = canonical(&process_path(pid, Path::new(config)));
    let recorded = canonical(&node.config);
    if ran != recorded {
        return foreign(format!(
            "it runs `dsync server --config {}`, not node {}'s {}",
            ran.display(),
            node.id,
            node.config.display()
        ));
    }
    let here = canonical(dir);
    let config = match recorded.starts_with(&here) {
        true => ran,
        false => {
            let origin = recorded
                .parent()
                .and_then(Path::parent)
                .unwrap_or(&recorded);
            match moved_here(&here, origin, node, pid) {
                Some(config) => config,
                None => {
                    return foreign(format!(
                        "it is node {} of the cluster in {}: this folder's cluster.yaml names that folder's files (a copy?)",
                        node.id,
                        origin.display()
                    ))
                }
            }
        }
    };
    match dsync_server::Config::from_yaml_file(&config) {
        Ok(c) if c.id == node.id => Ok(()),
        Ok(c) => foreign(format!(
            "its config {} is node {}'s",
            config.display(),
            c.id
        )),
        Err(e) => foreign(format!("its config cannot be read: {e}")),
    }
}

/// Where the node's config is now if its folder `origin` was moved (not
/// copied) to `here` while it ran: its arguments still name `origin`, which
/// is gone, but the log it writes to (its stdout) is named by the kernel at
/// its new place, in this folder. A copy's original still runs on its own
/// log, so this never claims it.
fn moved_here(here: &Path, origin: &Path, node: &NodeEntry, pid: u32) -> Option<PathBuf> {
    if origin.exists() {
        return None;
    }
    let log = here.join(canonical(&node.log).strip_prefix(origin).ok()?);
    let writes_to = std::fs::read_link(format!("/proc/{pid}/fd/1")).ok()?;
    if writes_to != log {
        return None;
    }
    Some(here.join(canonical(&node.config).strip_prefix(origin).ok()?))
}

/// `path` as process `pid` resolves it (relative to its working directory).
fn process_path(pid: u32, path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match std::fs::read_link(format!("/proc/{pid}/cwd")) {
        Ok(cwd) => cwd.join(path),
        Err(_) => path.to_path_buf(),
    }
}

/// The arguments of `pid`: from /proc on Linux; elsewhere `ps`, whose one
/// line cannot tell a space inside a path from one between arguments.
fn process_args(pid: u32) -> Option<Vec<String>> {
    if Path::new("/proc/self").exists() {
        let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<String> = bytes
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        return (!args.is_empty()).then_some(args);
    }
    let out = Command::new("ps")
        .args(["-o", "command=", "-p", &pid.to_string()])
        .output()
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Node `id` of a cluster in `dir`, with its node.yaml written.
    fn node(dir: &Path, id: u64, pid: Option<u32>) -> NodeEntry {
        let node_dir = dir.join(format!("node-{id}"));
        std::fs::create_dir_all(&node_dir).unwrap();
        let config = node_dir.join("node.yaml");
        std::fs::write(
            &config,
            format!(
                "id: {id}\nlisten: 127.0.0.1:1\ndata_dir: {}\n",
                node_dir.display()
            ),
        )
        .unwrap();
        NodeEntry {
            id,
            addr: "127.0.0.1:1".into(),
            pid,
            data_dir: node_dir.join("data"),
            log: node_dir.join("server.log"),
            dir: node_dir,
            config,
            version: "0".into(),
            binary: None,
        }
    }

    /// The arguments `spawn_node` gives a node started from `config`.
    fn node_args(config: &Path) -> Vec<String> {
        ["/opt/dsync/bin/dsync", "server", "--config"]
            .iter()
            .map(|s| s.to_string())
            .chain([config.display().to_string()])
            .collect()
    }

    fn why(verdict: Result<(), String>) -> String {
        verdict.expect_err("not foreign")
    }

    #[test]
    fn the_process_started_from_the_nodes_config_is_ours() {
        let tmp = tempfile::tempdir().unwrap();
        let n = node(tmp.path(), 1, Some(42));
        assert_eq!(judge(tmp.path(), &n, 42, &node_args(&n.config)), Ok(()));
        // Another spelling of the same file is the same node.
        let spelled = tmp.path().join("node-1/../node-1/node.yaml");
        assert_eq!(judge(tmp.path(), &n, 42, &node_args(&spelled)), Ok(()));
    }

    #[test]
    fn gone_and_unrecorded_pids_are_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(
            owner(tmp.path(), &node(tmp.path(), 1, Some(pid))),
            Owner::Gone
        );
        assert_eq!(owner(tmp.path(), &node(tmp.path(), 1, None)), Owner::Gone);
    }

    #[test]
    fn an_unrelated_program_under_the_pid_is_foreign() {
        let tmp = tempfile::tempdir().unwrap();
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        // Some kernels and sandboxes show an empty command line for a moment
        // after exec; what is judged is the program, so wait until it shows.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while process_args(child.id()).is_none() && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        let n = node(tmp.path(), 1, Some(child.id()));
        let got = owner(tmp.path(), &n);
        child.kill().unwrap();
        child.wait().unwrap();
        let Owner::Foreign { why: text, .. } = got else {
            panic!("not foreign: {got:?}");
        };
        assert!(
            text.contains("sleep 30") && text.contains("not a dsync node"),
            "{text}"
        );
        // Other dsync commands are not nodes either.
        let status: Vec<String> = ["dsync", "cluster", "status"].map(String::from).to_vec();
        assert!(why(judge(tmp.path(), &n, 1, &status)).contains("not a dsync node"));
    }

    #[test]
    fn another_nodes_process_is_foreign() {
        let tmp = tempfile::tempdir().unwrap();
        let other = node(tmp.path(), 2, None);
        let n = node(tmp.path(), 1, Some(42));
        let got = why(judge(tmp.path(), &n, 42, &node_args(&other.config)));
        assert!(got.contains("not node 1's"), "{got}");
    }

    #[test]
    fn a_copied_folder_does_not_own_the_originals_nodes() {
        let tmp = tempfile::tempdir().unwrap();
        let original = tmp.path().join("orig");
        let copy = tmp.path().join("copy");
        std::fs::create_dir_all(&copy).unwrap();
        // The copy's cluster.yaml still names the original's files.
        let n = node(&original, 1, Some(42));
        let args = node_args(&n.config);
        let got = why(judge(&copy, &n, 42, &args));
        assert!(got.contains("cluster in") && got.contains("orig"), "{got}");
        assert_eq!(judge(&original, &n, 42, &args), Ok(()));
    }

    #[test]
    fn a_node_whose_folder_was_moved_here_while_it_ran_is_ours() {
        let tmp = tempfile::tempdir().unwrap();
        let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
        let n = node(&old, 1, None);
        let log = std::fs::File::create(&n.log).unwrap();
        let mut child = Command::new("sleep").arg("30").stdout(log).spawn().unwrap();
        let args = node_args(&n.config);
        std::fs::rename(&old, &new).unwrap();
        let moved = judge(&new, &n, child.id(), &args);
        // Elsewhere, the same process is still not that folder's node.
        let other = tmp.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let elsewhere = judge(&other, &n, child.id(), &args);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(moved, Ok(()));
        assert!(why(elsewhere).contains("a copy?"));
    }

    #[test]
    fn a_config_naming_another_id_is_foreign() {
        let tmp = tempfile::tempdir().unwrap();
        let n = node(tmp.path(), 1, Some(42));
        std::fs::write(&n.config, "id: 7\nlisten: 127.0.0.1:1\ndata_dir: /x\n").unwrap();
        let got = why(judge(tmp.path(), &n, 42, &node_args(&n.config)));
        assert!(got.contains("node 7's"), "{got}");
    }
}
