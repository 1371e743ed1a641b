//! `dsync cluster upgrade`: a rolling upgrade, one node at a time, followers
//! first and the leader last (its drain hands leadership off first). The
//! local runtime swaps binaries (`--binary`, local.rs), the compose runtime
//! replaces containers (`--image`, compose.rs); the preflight, the plan, the
//! wait for each node and the report are shared.

mod compose;
mod local;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use dsync_api::types::{NodeStatus, Role};
use dsync_api::{Client, ClientConfig};
use serde::Serialize;

use super::preflight::{preflight, Check};
use super::wait::{all_agree, Observed, Readiness};
use crate::cluster_file::ClusterFile;
use crate::commands::version::VersionInfo;
use crate::context::{GlobalArgs, RequestExt};
use crate::output::Table;
use crate::progress::Progress;

pub(crate) use local::restart;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("release").required(true).args(["binary", "image"])))]
pub struct UpgradeArgs {
    /// The new dsync binary, or a wrapper script that runs one (local runtime).
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,

    /// The new image, e.g. dsync:0.2.0 (compose runtime; build it with
    /// scripts/build-image.sh).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,

    /// Print the preflight checks and the plan, change nothing. Exits 1 if a
    /// check fails.
    #[arg(long)]
    pub dry_run: bool,

    /// Seconds each restarted node gets to be caught up and ready.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub timeout: u64,
}

/// What the nodes move to.
#[derive(Debug, Clone)]
enum Release {
    Binary(PathBuf),
    Image { reference: String, id: String },
}

#[derive(Debug, Clone, Serialize)]
struct Step {
    id: u64,
    role: String,
    from_version: String,
    /// `upgrade`, or `skip` when the node already runs the new release.
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

impl NodeResult {
    fn failed(step: &Step, result: &'static str, detail: String) -> NodeResult {
        NodeResult {
            id: step.id,
            result,
            version: Some(step.from_version.clone()),
            detail: Some(detail),
        }
    }

    fn upgraded(step: &Step, version: &str) -> NodeResult {
        NodeResult {
            id: step.id,
            result: "upgraded",
            version: Some(version.to_string()),
            detail: None,
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    binary: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    target: VersionInfo,
    dry_run: bool,
    checks: Vec<Check>,
    plan: Vec<Step>,
    nodes: Vec<NodeResult>,
    ok: bool,
}

/// What one node's upgrade needs besides its step.
struct Ctx<'a> {
    dir: PathBuf,
    release: &'a Release,
    target: &'a VersionInfo,
    timeout: Duration,
    token: Option<String>,
}

pub async fn run(global: &GlobalArgs, args: UpgradeArgs) -> anyhow::Result<i32> {
    let dir = global.dir()?;
    let Some(mut file) = ClusterFile::load(&dir)? else {
        bail!("no cluster in {} (no cluster.yaml)", dir.display());
    };
    file.ensure_here(&dir)?;
    let release = release(&file, &args)?;
    let target = match &release {
        Release::Binary(b) => local::probe_binary(b).await?,
        Release::Image { reference, .. } => crate::compose::probe_image(reference)?,
    };
    let mut progress = Progress::new();
    progress.step("preflight: reading every node's status");
    let (checks, statuses) = preflight(&file, &target).await;
    let done = match (&release, &file.compose) {
        (Release::Binary(b), _) => file
            .nodes
            .iter()
            .map(|n| (n.id, n.binary.as_deref() == Some(b.as_path())))
            .collect(),
        (Release::Image { reference, id }, Some(info)) => {
            compose::on_image(info, &file, reference, id)?
        }
        (Release::Image { .. }, None) => HashMap::new(),
    };
    let plan = plan(&file, &statuses, &done, &target);
    let ok = checks.iter().all(|c| c.ok);
    let (binary, image) = match &release {
        Release::Binary(b) => (Some(b.clone()), None),
        Release::Image { reference, .. } => (None, Some(reference.clone())),
    };
    let mut report = Report {
        binary,
        image,
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
    let ctx = Ctx {
        dir: dir.clone(),
        release: &release,
        target: &report.target,
        timeout: Duration::from_secs(args.timeout),
        token: global.token.clone(),
    };
    let mut results = Vec::new();
    let mut failure = None;
    for step in &report.plan {
        if failure.is_some() {
            results.push(NodeResult {
                id: step.id,
                result: "not_reached",
                version: Some(step.from_version.clone()),
                detail: None,
            });
            continue;
        }
        if step.action == "skip" {
            results.push(NodeResult {
                id: step.id,
                result: "skipped",
                version: Some(step.from_version.clone()),
                detail: Some("already on the new release".into()),
            });
            continue;
        }
        let res = match &release {
            Release::Binary(b) => {
                local::upgrade_node(&ctx, &mut file, step, b, &mut progress).await
            }
            Release::Image { .. } => compose::upgrade_node(&ctx, &mut file, step, &mut progress)
                .await
                .unwrap_or_else(|e| NodeResult::failed(step, "failed", format!("{e:#}"))),
        };
        if res.result != "upgraded" {
            failure = Some(format!(
                "node {}: {}",
                step.id,
                res.detail.clone().unwrap_or_default()
            ));
        }
        results.push(res);
    }
    if let (None, Release::Image { reference, .. }, Some(info)) =
        (&failure, &release, file.compose.as_mut())
    {
        // Every service names the new image now: so does the cluster.
        info.image.clone_from(reference);
        file.save(&dir)?;
    }
    progress.finish();
    report.nodes = results;
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

/// `--binary` for local processes, `--image` for containers; the other
/// combinations are refused before anything is touched.
fn release(file: &ClusterFile, args: &UpgradeArgs) -> anyhow::Result<Release> {
    match (&file.compose, &args.binary, &args.image) {
        (None, Some(_), _) if file.runtime != "local" => bail!(
            "upgrade --binary drives the local runtime; this cluster uses {}",
            file.runtime
        ),
        (None, Some(b), _) => Ok(Release::Binary(std::path::absolute(b)?)),
        (None, None, Some(_)) => bail!(
            "upgrade --image replaces containers, but this cluster runs local processes: use --binary PATH"
        ),
        (Some(_), Some(_), _) => bail!(
            "upgrade --binary replaces local processes, but this cluster runs containers (compose runtime): use --image IMAGE"
        ),
        (Some(_), None, Some(image)) => Ok(Release::Image {
            reference: image.clone(),
            id: crate::compose::image_id(image)?,
        }),
        (_, None, None) => bail!("give the new release: --binary PATH or --image IMAGE"),
    }
}

/// Followers first (by id), the leader last; nodes already on the new
/// release and version are skipped, so an interrupted upgrade can resume.
fn plan(
    file: &ClusterFile,
    statuses: &[NodeStatus],
    on_release: &HashMap<u64, bool>,
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
            let done = on_release.get(&n.id).copied().unwrap_or(false) && version == target.version;
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

/// The leader's commit index a restarted node must reach: the one seen at
/// the first poll that found it behind. Under load a follower's apply is
/// always just behind the leader's commit at the same instant; a node that
/// has passed what was committed a poll earlier has caught up.
#[derive(Debug, Default)]
pub(super) struct CatchUp(std::sync::Mutex<Option<u64>>);

/// Ready when every node follows one leader as a voter and node `id` runs
/// `version` (when given) and has applied what the leader had committed
/// (`CatchUp`).
fn caught_up(
    id: u64,
    version: Option<&str>,
    voters: usize,
    observed: &Observed,
    catch_up: &CatchUp,
) -> Readiness {
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
        } else {
            let mut target = catch_up.0.lock().unwrap_or_else(|p| p.into_inner());
            let need = *target.get_or_insert(commit);
            if s.applied_index < need {
                r.not_ready
                    .push((id, format!("applied {} of {need}", s.applied_index)));
            }
        }
    }
    r
}

/// A client of one node, with the CLI's token (drain is an admin route).
fn single(addr: &str, token: Option<String>) -> anyhow::Result<Client> {
    let mut config = ClientConfig::new(vec![addr.to_string()]);
    config.token = token;
    // A leader's drain waits for its hand-off.
    config.request_timeout = Duration::from_secs(30);
    config.retry_for = Duration::from_secs(10);
    Client::new(config).api()
}

/// Drains node `step.id` so clients move on (and, if it leads, leadership
/// moves to the most caught-up follower) before it stops.
async fn drain(
    addr: &str,
    step: &Step,
    ctx: &Ctx<'_>,
    progress: &mut Progress,
) -> Result<(), NodeResult> {
    let node_client = single(addr, ctx.token.clone())
        .map_err(|e| NodeResult::failed(step, "failed", format!("{e:#}")))?;
    progress.step(if step.role == "leader" {
        format!("node {}: draining (hands leadership off)", step.id)
    } else {
        format!("node {}: draining", step.id)
    });
    if let Err(e) = node_client.drain().await.api() {
        let _ = node_client.undrain().await;
        return Err(NodeResult::failed(
            step,
            "failed",
            format!("drain failed, node left running: {e:#}"),
        ));
    }
    Ok(())
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
mod tests;
