//! The local runtime's half of `cluster upgrade --binary PATH`: stop a
//! node's process and start it again from the new binary.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

use super::{caught_up, drain, CatchUp, Ctx, NodeResult, Step};
use crate::cluster_file::ClusterFile;
use crate::commands::cluster::wait::{wait_for, Watched};
use crate::commands::version::VersionInfo;
use crate::local::spawn_node;
use crate::node_process::owner;
use crate::process_handle::STOP_GRACE;
use crate::progress::Progress;

/// Runs `<binary> version --output json`: it must start, and say what
/// version and protocol its nodes would report.
pub(super) async fn probe_binary(binary: &Path) -> anyhow::Result<VersionInfo> {
    if !binary.is_file() {
        bail!("{} is not a file", binary.display());
    }
    let mut cmd = tokio::process::Command::new(binary);
    cmd.args(["version", "--output", "json"]).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .with_context(|| format!("{} version did not answer in 20 s", binary.display()))?
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !out.status.success() {
        bail!(
            "{} version failed ({}): {}",
            binary.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "{} version --output json printed no version (is it a dsync binary?)",
            binary.display()
        )
    })
}

/// Drain, stop, swap, start, wait; on failure put the old binary back.
pub(super) async fn upgrade_node(
    ctx: &Ctx<'_>,
    file: &mut ClusterFile,
    step: &Step,
    binary: &Path,
    progress: &mut Progress,
) -> NodeResult {
    let (dir, target, timeout) = (ctx.dir.as_path(), ctx.target, ctx.timeout);
    let id = step.id;
    let fail = |result, detail: String| NodeResult::failed(step, result, detail);
    let Some(node) = file.nodes.iter().find(|n| n.id == id).cloned() else {
        return fail("failed", "missing from the cluster file".into());
    };
    if let Err(res) = drain(&node.addr, step, ctx, progress).await {
        return res;
    }
    progress.step(format!("node {id}: stopping"));
    if let Some(handle) = owner(dir, &node).ours() {
        if let Err(e) = handle.stop(STOP_GRACE).await {
            let pid = handle.pid();
            return fail("failed", format!("cannot stop pid {pid}: {e:#}"));
        }
    }
    let old_binary = node.binary.clone();
    let old_path = old_binary.clone().unwrap_or_else(|| file.binary.clone());
    progress.step(format!("node {id}: starting {}", binary.display()));
    let started = restart(
        dir,
        file,
        id,
        binary,
        Some(&target.version),
        timeout,
        progress,
    )
    .await;
    let Err(why) = started else {
        progress.note(format!("node {id}: upgraded to {}", target.version));
        return NodeResult::upgraded(step, &target.version);
    };
    progress.note(format!(
        "node {id}: {why:#}; rolling back to {}",
        old_path.display()
    ));
    if let Some(handle) = file
        .nodes
        .iter()
        .find(|n| n.id == id)
        .and_then(|n| owner(dir, n).ours())
    {
        let _ = handle.stop(STOP_GRACE).await;
    }
    match restart(
        dir,
        file,
        id,
        &old_path,
        Some(&step.from_version),
        timeout,
        progress,
    )
    .await
    {
        Ok(_) => {
            if let Some(n) = file.node_mut(id) {
                n.binary = old_binary;
            }
            let _ = file.save(dir);
            fail(
                "rolled_back",
                format!("{why:#}; the previous binary runs again"),
            )
        }
        Err(e) => fail("failed", format!("{why:#}; rollback failed too: {e:#}")),
    }
}

/// Starts node `id` from `binary` (recorded for later restarts once it
/// works) and waits until it runs `version` (when
/// given), every node follows one leader as a voter, and it has applied
/// what the leader committed. Returns the version it reports.
pub(crate) async fn restart(
    dir: &Path,
    file: &mut ClusterFile,
    id: u64,
    binary: &Path,
    version: Option<&str>,
    timeout: Duration,
    progress: &mut Progress,
) -> anyhow::Result<String> {
    let node = file
        .node_mut(id)
        .context("node missing from the cluster file")?;
    let child = spawn_node(binary, &node.config, &node.log)?;
    node.pid = Some(child.id());
    file.save(dir)?;
    let n = file.nodes.len();
    let mut watched: Vec<Watched> = file.nodes.iter().map(Watched::of).collect();
    if let Some(w) = watched.iter_mut().find(|w| w.id == id) {
        w.child = Some(child);
    }
    let what = match version {
        Some(v) => format!("waiting for node {id} to run {v} and catch up"),
        None => format!("waiting for node {id} to catch up"),
    };
    let catch_up = CatchUp::default();
    let statuses = wait_for(&mut watched, timeout, progress, &what, |o| {
        caught_up(id, version, n, o, &catch_up)
    })
    .await?;
    let reported = statuses
        .iter()
        .find(|s| s.id == id)
        .map(|s| s.version.clone())
        .unwrap_or_default();
    // Recorded only once it works: a binary that fails to come up is never
    // what a later plain restart (or a rollback) starts.
    if let Some(node) = file.node_mut(id) {
        node.version.clone_from(&reported);
        node.binary = Some(binary.to_path_buf());
    }
    file.save(dir)?;
    Ok(reported)
}
