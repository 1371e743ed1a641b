//! `dsync cluster down`: stop the local nodes (SIGTERM, then SIGKILL after a
//! grace period), optionally deleting the cluster's folder.

use std::time::Duration;

use anyhow::bail;
use nix::sys::signal::Signal;
use serde::Serialize;

use crate::cluster_file::ClusterFile;
use crate::context::GlobalArgs;
use crate::node_process::{owner, Owner};
use crate::process_handle::wait_gone;
use crate::progress::Progress;

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// Also delete what dsync made in the cluster's folder (cluster.yaml,
    /// node folders with their data and logs, secrets/, tls/; the volumes
    /// on compose). Other files are kept and named; the folder goes only
    /// once it is empty.
    #[arg(long)]
    pub purge: bool,

    /// Seconds a node gets to exit after SIGTERM before it is killed.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub grace: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    NotRunning,
    /// The pid now belongs to something other than this folder's node.
    LeftAlone,
    Stopped,
    /// Still alive after the grace period, so SIGKILLed.
    Killed,
    StillRunning,
}

#[derive(Debug, Serialize)]
struct Stopped {
    id: u64,
    pid: Option<u32>,
    result: Outcome,
    /// Why a live pid was left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

pub async fn run(global: &GlobalArgs, args: DownArgs) -> anyhow::Result<i32> {
    let dir = global.dir()?;
    let Some(mut file) = ClusterFile::load(&dir)? else {
        bail!("no cluster in {} (no cluster.yaml)", dir.display());
    };
    if let Some(info) = &file.compose {
        return compose_down(global, &dir, &file, info, &args);
    }
    let mut results: Vec<Stopped> = Vec::new();
    let mut signalled = Vec::new();
    // Signal everything first so the nodes shut down in parallel.
    for node in &file.nodes {
        let (result, detail) = match owner(&dir, node) {
            Owner::Gone => (Outcome::NotRunning, None),
            // A reused pid, or the node of the folder this one was copied
            // from: never signal it.
            Owner::Foreign { why, .. } => (Outcome::LeftAlone, Some(why)),
            Owner::Ours(handle) => {
                handle.signal(Signal::SIGTERM)?;
                signalled.push(handle);
                (Outcome::Stopped, None)
            }
        };
        results.push(Stopped {
            id: node.id,
            pid: node.pid,
            result,
            detail,
        });
    }
    let mut progress = Progress::new();
    if !signalled.is_empty() {
        progress.step(format!(
            "waiting up to {} s for {} node(s) to exit after SIGTERM",
            args.grace,
            signalled.len()
        ));
    }
    let grace = Duration::from_secs(args.grace);
    let remaining = wait_gone(&signalled, grace).await;
    signalled.retain(|h| remaining.contains(&h.pid()));
    if !signalled.is_empty() {
        progress.step(format!(
            "killing pids {remaining:?}: still running {} s after SIGTERM",
            args.grace
        ));
    }
    for handle in &signalled {
        handle.signal(Signal::SIGKILL)?;
    }
    let survivors = wait_gone(&signalled, Duration::from_secs(2)).await;
    if args.purge && survivors.is_empty() {
        progress.step(format!("deleting dsync's files in {}", dir.display()));
    }
    for r in &mut results {
        if let Some(pid) = r.pid.filter(|p| remaining.contains(p)) {
            r.result = if survivors.contains(&pid) {
                Outcome::StillRunning
            } else {
                Outcome::Killed
            };
        }
    }

    // Purging while a node still runs would delete its files under it.
    let purged = match args.purge && survivors.is_empty() {
        true => Some(super::purge::purge(&dir)?),
        false => None,
    };
    if purged.is_none() {
        for node in &mut file.nodes {
            if !node.pid.is_some_and(|p| survivors.contains(&p)) {
                node.pid = None;
            }
        }
        file.save(&dir)?;
    }
    progress.finish();
    global.output.print(&results, || {
        let mut out = String::new();
        for r in &results {
            let pid = r.pid.map_or(String::new(), |p| format!(" (pid {p})"));
            let result = match r.result {
                Outcome::NotRunning => "not running".to_string(),
                Outcome::LeftAlone => format!(
                    "left alone: the recorded pid is not this folder's node ({}); the stale pid is dropped",
                    r.detail.as_deref().unwrap_or("unknown process")
                ),
                Outcome::Stopped => "stopped".to_string(),
                Outcome::Killed => format!("killed: still running {} s after SIGTERM", args.grace),
                Outcome::StillRunning => "still running after SIGKILL".to_string(),
            };
            out.push_str(&format!("node {}{pid}: {result}\n", r.id));
        }
        out
    })?;
    // On stderr, like every hint: stdout stays the per-node report.
    if let Some(p) = &purged {
        eprint!("{}", purge_summary(&dir, p));
    }
    if !survivors.is_empty() {
        let purge = match args.purge {
            true => "; nothing was purged",
            false => "",
        };
        bail!("some nodes did not exit even after SIGKILL: pids {survivors:?}{purge}");
    }
    Ok(crate::commands::EXIT_OK)
}

/// Compose clusters: `compose down` stops and removes the containers and
/// network; the named volumes (the data) go only with --purge. A copied
/// folder names the original's project: that is left alone, like a local
/// copy's nodes, and --purge deletes only the copy's files.
fn compose_down(
    global: &GlobalArgs,
    dir: &std::path::Path,
    file: &ClusterFile,
    info: &crate::compose::ComposeInfo,
    args: &DownArgs,
) -> anyhow::Result<i32> {
    let elsewhere = file.elsewhere(dir).map(|e| e.what);
    if elsewhere.is_none() {
        let grace = args.grace.to_string();
        let mut down = vec!["down", "--timeout", grace.as_str()];
        if args.purge {
            down.push("--volumes");
        }
        crate::compose::compose(info, &down)?;
    }
    let purged = match args.purge {
        true => Some(super::purge::purge(dir)?),
        false => None,
    };
    let report = serde_json::json!({
        "project": info.project,
        "stopped": elsewhere.is_none(),
        "purged": args.purge,
        "left_alone": elsewhere,
    });
    global.output.print(&report, || {
        let what = match (&elsewhere, args.purge) {
            (Some(other), _) => format!(
                "left alone: this folder's cluster.yaml names {other} (a copy?), so its containers and volumes are not this folder's"
            ),
            (None, true) => "removed with its volumes".into(),
            (None, false) => "stopped (volumes kept)".into(),
        };
        format!("compose project {}: {what}\n", info.project)
    })?;
    if let Some(p) = &purged {
        eprint!("{}", purge_summary(dir, p));
    }
    Ok(crate::commands::EXIT_OK)
}

fn purge_summary(dir: &std::path::Path, p: &super::purge::Purged) -> String {
    if p.removed_dir {
        return format!("removed {}\n", dir.display());
    }
    if let (Some(to), true) = (&p.link_to, p.kept.is_empty()) {
        return format!(
            "removed dsync's files from {}; kept the link and the folder it points to ({})\n",
            dir.display(),
            to.display()
        );
    }
    let kept: Vec<String> = p.kept.iter().map(|k| k.display().to_string()).collect();
    format!(
        "removed dsync's files from {}; kept {}: not made by dsync\n",
        dir.display(),
        kept.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_file::{NodeEntry, CLUSTER_FILE_VERSION};
    use crate::output::Output;
    use std::path::Path;

    fn global(dir: &Path) -> GlobalArgs {
        GlobalArgs {
            endpoints: vec![],
            token: None,
            output: Output::Json,
            dir: dir.to_path_buf(),
        }
    }

    fn cluster(dir: &Path, pid: Option<u32>) -> ClusterFile {
        ClusterFile {
            version: CLUSTER_FILE_VERSION,
            compose: None,
            runtime: "local".into(),
            binary: "/bin/true".into(),
            created_at_ms: 0,
            nodes: vec![NodeEntry {
                id: 1,
                addr: "127.0.0.1:1".into(),
                pid,
                dir: dir.join("node-1"),
                data_dir: dir.join("node-1/data"),
                config: dir.join("node-1/node.yaml"),
                log: dir.join("node-1/server.log"),
                version: "0.1.0".into(),
                binary: None,
            }],
        }
    }

    #[tokio::test]
    async fn unrelated_processes_are_never_signalled() {
        let tmp = tempfile::tempdir().unwrap();
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        cluster(tmp.path(), Some(sleeper.id()))
            .save(tmp.path())
            .unwrap();
        let args = DownArgs {
            purge: false,
            grace: 1,
        };
        run(&global(tmp.path()), args).await.unwrap();
        assert!(sleeper.try_wait().unwrap().is_none(), "sleep must survive");
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        let file = ClusterFile::load(tmp.path()).unwrap().unwrap();
        assert_eq!(file.nodes[0].pid, None);
    }

    #[tokio::test]
    async fn purge_removes_the_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        std::fs::create_dir(&dir).unwrap();
        cluster(&dir, None).save(&dir).unwrap();
        run(
            &global(&dir),
            DownArgs {
                purge: true,
                grace: 1,
            },
        )
        .await
        .unwrap();
        assert!(!dir.exists());
    }

    #[tokio::test]
    async fn no_cluster_file_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let err = run(
            &global(tmp.path()),
            DownArgs {
                purge: true,
                grace: 1,
            },
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("no cluster"), "{err}");
        assert!(tmp.path().exists());
    }
}
