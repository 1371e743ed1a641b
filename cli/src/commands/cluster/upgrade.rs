//! `dsync cluster upgrade --binary PATH`: a rolling upgrade of the local
//! runtime, one node at a time, followers first and the leader last.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use dsync_api::types::{NodeStatus, Role};
use dsync_api::{Client, ClientConfig};
use serde::Serialize;

use super::preflight::{preflight, Check};
use super::scale::stop;
use super::wait::{all_agree, wait_for, Observed, Readiness, Watched};
use crate::cluster_file::ClusterFile;
use crate::commands::version::VersionInfo;
use crate::context::{GlobalArgs, RequestExt};
use crate::local::{is_dsync_process, spawn_node};
use crate::output::Table;
use crate::progress::Progress;

#[derive(Debug, clap::Args)]
pub struct UpgradeArgs {
    /// The new dsync binary (or a wrapper script that runs one).
    #[arg(long, value_name = "PATH")]
    pub binary: PathBuf,

    /// Print the preflight checks and the plan, change nothing. Exits 1 if a
    /// check fails.
    #[arg(long)]
    pub dry_run: bool,

    /// Seconds each restarted node gets to be caught up and ready.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub timeout: u64,
}

#[derive(Debug, Clone, Serialize)]
struct Step {
    id: u64,
    role: String,
    from_version: String,
    /// `upgrade`, or `skip` when the node already runs the new binary.
    action: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct NodeResult {
    id: u64,
    /// `upgraded`, `skipped`, `rolled_back`, `failed` or `not_reached`.
    result: &'static str,
    version: Option<String>,
    detail: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    binary: PathBuf,
    target: VersionInfo,
    dry_run: bool,
    checks: Vec<Check>,
    plan: Vec<Step>,
    nodes: Vec<NodeResult>,
    ok: bool,
}

pub async fn run(global: &GlobalArgs, args: UpgradeArgs) -> anyhow::Result<i32> {
    let dir = global.dir()?;
    let Some(mut file) = ClusterFile::load(&dir)? else {
        bail!("no cluster in {} (no cluster.yaml)", dir.display());
    };
    if file.runtime != "local" {
        bail!(
            "upgrade --binary drives the local runtime; this cluster uses {}",
            file.runtime
        );
    }
    let binary = std::path::absolute(&args.binary)?;
    let target = probe_binary(&binary).await?;
    let mut progress = Progress::new();
    progress.step("preflight: reading every node's status");
    let (checks, statuses) = preflight(&file, &target).await;
    let plan = plan(&file, &statuses, &binary, &target);
    let ok = checks.iter().all(|c| c.ok);
    let mut report = Report {
        binary: binary.clone(),
        target,
        dry_run: args.dry_run,
        checks,
        plan,
        nodes: Vec::new(),
        ok,
    };
    if args.dry_run || !ok {
        progress.finish();
        print(global, &report)?;
        if !ok {
            eprintln!("error: preflight failed; nothing was changed");
            return Ok(crate::commands::EXIT_ERROR);
        }
        return Ok(crate::commands::EXIT_OK);
    }
    let timeout = Duration::from_secs(args.timeout);
    let steps = report.plan.clone();
    let mut failure = None;
    for step in &steps {
        if failure.is_some() {
            report.nodes.push(NodeResult {
                id: step.id,
                result: "not_reached",
                version: Some(step.from_version.clone()),
                detail: None,
            });
            continue;
        }
        if step.action == "skip" {
            report.nodes.push(NodeResult {
                id: step.id,
                result: "skipped",
                version: Some(step.from_version.clone()),
                detail: Some("already on the new binary".into()),
            });
            continue;
        }
        let res = upgrade_node(
            &dir,
            &mut file,
            step,
            &binary,
            &report.target,
            timeout,
            &mut progress,
        )
        .await;
        if res.result != "upgraded" {
            failure = Some(format!(
                "node {}: {}",
                step.id,
                res.detail.clone().unwrap_or_default()
            ));
        }
        report.nodes.push(res);
    }
    progress.finish();
    report.ok = failure.is_none();
    print(global, &report)?;
    match failure {
        Some(f) => {
            eprintln!("error: upgrade stopped: {f}");
            Ok(crate::commands::EXIT_ERROR)
        }
        None => Ok(crate::commands::EXIT_OK),
    }
}

/// Runs `<binary> version --output json`: it must start, and say what
/// version and protocol its nodes would report.
async fn probe_binary(binary: &Path) -> anyhow::Result<VersionInfo> {
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

/// Followers first (by id), the leader last; nodes already on the new
/// binary and version are skipped, so an interrupted upgrade can resume.
fn plan(
    file: &ClusterFile,
    statuses: &[NodeStatus],
    binary: &Path,
    target: &VersionInfo,
) -> Vec<Step> {
    let leader = statuses
        .iter()
        .find(|s| s.role == Role::Leader)
        .map(|s| s.id);
    let mut steps: Vec<Step> = file
        .nodes
        .iter()
        .map(|n| {
            let status = statuses.iter().find(|s| s.id == n.id);
            let version = status.map_or_else(|| n.version.clone(), |s| s.version.clone());
            let done = n.binary.as_deref() == Some(binary) && version == target.version;
            Step {
                id: n.id,
                role: status.map_or("unreachable".into(), |s| s.role.to_string()),
                from_version: version,
                action: if done { "skip" } else { "upgrade" },
            }
        })
        .collect();
    steps.sort_by_key(|s| (Some(s.id) == leader, s.id));
    steps
}

/// Drain, stop, swap, start, wait; on failure put the old binary back.
async fn upgrade_node(
    dir: &Path,
    file: &mut ClusterFile,
    step: &Step,
    binary: &Path,
    target: &VersionInfo,
    timeout: Duration,
    progress: &mut Progress,
) -> NodeResult {
    let id = step.id;
    let fail = |result, detail: String| NodeResult {
        id,
        result,
        version: Some(step.from_version.clone()),
        detail: Some(detail),
    };
    let Some(node) = file.nodes.iter().find(|n| n.id == id).cloned() else {
        return fail("failed", "missing from the cluster file".into());
    };
    let node_client = match single(&node.addr) {
        Ok(c) => c,
        Err(e) => return fail("failed", format!("{e:#}")),
    };
    progress.step(format!("node {id}: draining"));
    if let Err(e) = node_client.drain().await.api() {
        let _ = node_client.undrain().await;
        return fail("failed", format!("drain failed, node left running: {e:#}"));
    }
    progress.step(format!("node {id}: stopping"));
    if let Some(pid) = node.pid.filter(|p| is_dsync_process(*p)) {
        if let Err(e) = stop(pid).await {
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
        return NodeResult {
            id,
            result: "upgraded",
            version: Some(target.version.clone()),
            detail: None,
        };
    };
    progress.note(format!(
        "node {id}: {why:#}; rolling back to {}",
        old_path.display()
    ));
    if let Some(pid) = file.nodes.iter().find(|n| n.id == id).and_then(|n| n.pid) {
        if is_dsync_process(pid) {
            let _ = stop(pid).await;
        }
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
    let mut watched: Vec<Watched> = file
        .nodes
        .iter()
        .map(|m| Watched {
            id: m.id,
            addr: m.addr.clone(),
            log: m.log.clone(),
            child: None,
        })
        .collect();
    if let Some(w) = watched.iter_mut().find(|w| w.id == id) {
        w.child = Some(child);
    }
    let what = match version {
        Some(v) => format!("waiting for node {id} to run {v} and catch up"),
        None => format!("waiting for node {id} to catch up"),
    };
    let statuses = wait_for(&mut watched, timeout, progress, &what, |o| {
        caught_up(id, version, n, o)
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

fn caught_up(id: u64, version: Option<&str>, voters: usize, observed: &Observed) -> Readiness {
    let mut r = all_agree(voters, observed);
    let commit = observed
        .iter()
        .filter_map(|(_, v)| v.as_ref().ok())
        .find(|s| s.role == Role::Leader)
        .map_or(0, |s| s.commit_index);
    if let Some((_, Ok(s))) = observed.iter().find(|(n, _)| *n == id) {
        if let Some(v) = version.filter(|v| *v != s.version) {
            r.not_ready
                .push((id, format!("reports version {}, not {v}", s.version)));
        } else if s.applied_index < commit {
            r.not_ready
                .push((id, format!("applied {} of {commit}", s.applied_index)));
        }
    }
    r
}

fn single(addr: &str) -> anyhow::Result<Client> {
    let mut config = ClientConfig::new(vec![addr.to_string()]);
    // A leader's drain waits for its hand-off.
    config.request_timeout = Duration::from_secs(30);
    config.retry_for = Duration::from_secs(10);
    Client::new(config).api()
}

fn print(global: &GlobalArgs, r: &Report) -> anyhow::Result<()> {
    global.output.print(r, || {
        let mut out = String::new();
        for c in &r.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            out.push_str(&format!("{mark} {}: {}\n", c.name, c.detail));
        }
        let mut t = Table::new(["ORDER", "ID", "ROLE", "FROM", "ACTION", "RESULT"]);
        for (k, s) in r.plan.iter().enumerate() {
            let result =
                r.nodes
                    .iter()
                    .find(|n| n.id == s.id)
                    .map_or("-".to_string(), |n| match &n.detail {
                        Some(d) => format!("{}: {d}", n.result),
                        None => n.result.to_string(),
                    });
            t.row([
                (k + 1).to_string(),
                s.id.to_string(),
                s.role.clone(),
                s.from_version.clone(),
                format!("{} → {}", s.action, r.target.version),
                result,
            ]);
        }
        out.push_str(&t.render());
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_file::{NodeEntry, CLUSTER_FILE_VERSION};
    use dsync_api::types::{MemberKind, MemberStatus};

    fn status(id: u64, leader: u64, version: &str, applied: u64) -> NodeStatus {
        NodeStatus {
            id,
            addr: format!("a:{id}"),
            version: version.into(),
            protocol: 1,
            role: if id == leader {
                Role::Leader
            } else {
                Role::Follower
            },
            term: 2,
            leader: Some(leader),
            last_index: 10,
            commit_index: 10,
            applied_index: applied,
            snapshot_index: 0,
            millis_since_quorum_ack: None,
            members: (1..=3)
                .map(|m| MemberStatus {
                    id: m,
                    addr: format!("a:{m}"),
                    kind: MemberKind::Voter,
                    match_index: None,
                })
                .collect(),
        }
    }

    fn file(binaries: [Option<&str>; 3]) -> ClusterFile {
        ClusterFile {
            version: CLUSTER_FILE_VERSION,
            runtime: "local".into(),
            binary: "/old/dsync".into(),
            created_at_ms: 0,
            compose: None,
            nodes: (1..=3u64)
                .map(|id| NodeEntry {
                    id,
                    addr: format!("a:{id}"),
                    pid: None,
                    dir: "/x".into(),
                    data_dir: "/x/data".into(),
                    config: "/x/node.yaml".into(),
                    log: "/x/log".into(),
                    version: "0.1.0".into(),
                    binary: binaries[id as usize - 1].map(PathBuf::from),
                })
                .collect(),
        }
    }

    #[test]
    fn followers_go_first_the_leader_last_and_done_nodes_are_skipped() {
        let target = VersionInfo {
            version: "0.2.0".into(),
            protocol: 1,
        };
        let st = vec![
            status(1, 2, "0.1.0", 10),
            status(2, 2, "0.1.0", 10),
            status(3, 2, "0.2.0", 10),
        ];
        let f = file([None, None, Some("/new/dsync")]);
        let p = plan(&f, &st, Path::new("/new/dsync"), &target);
        let order: Vec<(u64, &str)> = p.iter().map(|s| (s.id, s.action)).collect();
        assert_eq!(order, vec![(1, "upgrade"), (3, "skip"), (2, "upgrade")]);
    }

    #[test]
    fn a_restarted_node_is_ready_only_on_the_new_version_and_caught_up() {
        let observe = |v: &str, applied| -> Observed {
            vec![
                (1, Ok(status(1, 2, v, applied))),
                (2, Ok(status(2, 2, "0.1.0", 10))),
                (3, Ok(status(3, 2, "0.1.0", 10))),
            ]
        };
        assert!(caught_up(1, Some("0.2.0"), 3, &observe("0.2.0", 10)).ready());
        let r = caught_up(1, Some("0.2.0"), 3, &observe("0.1.0", 10));
        assert!(r.not_ready[0].1.contains("reports version 0.1.0"), "{r:?}");
        let r = caught_up(1, Some("0.2.0"), 3, &observe("0.2.0", 4));
        assert!(r.not_ready[0].1.contains("applied 4 of 10"), "{r:?}");
        assert!(caught_up(1, None, 3, &observe("0.1.0", 10)).ready());
    }
}
