//! `dsync shard rebalance` and `dsync shard jobs`: moving queue group
//! replicas so every node holds its share, and the jobs that do it; also
//! what `cluster scale` runs around adding and removing nodes.

use std::time::{Duration, Instant};

use anyhow::bail;
use dsync_api::client::ClientError;
use dsync_api::shards::{JobState, RebalancePlan, RebalanceRequest, ReplicaMove, ShardJob};
use dsync_api::{Client, ErrorCode};

use crate::commands::{EXIT_ERROR, EXIT_OK};
use crate::context::{GlobalArgs, RequestError, RequestExt};
use crate::output::Table;
use crate::progress::Progress;

const POLL_EVERY: Duration = Duration::from_millis(300);

#[derive(Debug, clap::Args)]
pub struct RebalanceArgs {
    /// Move every replica off this node (repeatable), e.g. before removing it.
    #[arg(long, value_name = "ID")]
    pub exclude: Vec<u64>,

    #[command(flatten)]
    pub job: JobArgs,
}

/// What a command that starts a shard job takes besides its own request.
#[derive(Debug, clap::Args)]
pub struct JobArgs {
    /// Print the plan (what would move where, and why) and move nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Seconds to follow the job; 0 returns once it has started (follow it
    /// with `dsync shard jobs`). The job goes on either way.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub timeout: u64,
}

pub async fn run(global: &GlobalArgs, args: RebalanceArgs) -> anyhow::Result<i32> {
    let client = global.client()?;
    let req = RebalanceRequest {
        dry_run: args.job.dry_run,
        exclude: args.exclude,
    };
    let plan = client.shards_rebalance(&req).await.api()?;
    let text = |dry_run| plan_text(&plan, dry_run);
    print_and_follow(global, &client, &plan, plan.job, text, &args.job).await
}

/// Prints a shard job's plan (alone for a dry run or when there is no
/// job), then follows the job up to `args.timeout` seconds (0: not at all)
/// and prints how it ended; exit 1 unless it ended done.
pub(super) async fn print_and_follow<P: serde::Serialize>(
    global: &GlobalArgs,
    client: &Client,
    plan: &P,
    job: Option<u64>,
    plan_text: impl Fn(bool) -> String,
    args: &JobArgs,
) -> anyhow::Result<i32> {
    let Some(job) = job else {
        global.output.print(plan, || plan_text(args.dry_run))?;
        return Ok(EXIT_OK);
    };
    eprint!("{}", plan_text(false));
    if args.timeout == 0 {
        global
            .output
            .print(plan, || format!("job {job} started\n"))?;
        return Ok(EXIT_OK);
    }
    let done = follow(client, job, Duration::from_secs(args.timeout)).await?;
    global
        .output
        .print(&done, || jobs_text(std::slice::from_ref(&done)))?;
    Ok(if done.state == JobState::Done {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}

/// Moves replicas so that the groups are balanced over the voters less
/// `exclude`, following the job to its end. Returns how many moved. A job
/// already running (another operator's, or this one's whose answer was
/// lost to a leader change) is followed first, then the plan is made again.
pub async fn rebalance_and_follow(
    client: &Client,
    exclude: Vec<u64>,
    timeout: Duration,
    progress: &mut Progress,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + timeout;
    let req = RebalanceRequest {
        dry_run: false,
        exclude,
    };
    let mut moved = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let job = match client.shards_rebalance(&req).await {
            Ok(plan) => {
                let Some(job) = plan.job else {
                    return Ok(moved);
                };
                for m in &plan.moves {
                    progress.note(format!("plan: {}", move_text(m)));
                }
                job
            }
            Err(e) if retry_later(&e) && !left.is_zero() => {
                progress.step(format!("rebalance not started yet: {e}"));
                tokio::time::sleep(POLL_EVERY).await;
                continue;
            }
            Err(e) if e.code() == Some(ErrorCode::Conflict) => {
                let running = client.shard_jobs().await.api()?;
                let Some(j) = running.into_iter().find(|j| j.state == JobState::Running) else {
                    return Err(RequestError(e).into());
                };
                progress.note(format!("shard job {} is running; following it first", j.id));
                j.id
            }
            Err(e) => return Err(RequestError(e).into()),
        };
        let done = follow_with(client, job, left, progress).await?;
        if done.state != JobState::Done {
            bail!(
                "shard job {job} ended {:?}: {}",
                done.state,
                done.error.unwrap_or_default()
            );
        }
        moved += done.moves.len();
    }
}

/// A refusal that a leader change or an election explains.
fn retry_later(e: &ClientError) -> bool {
    e.code() == Some(ErrorCode::Unavailable) || e.code().is_none()
}

pub(super) async fn follow(
    client: &Client,
    job: u64,
    timeout: Duration,
) -> anyhow::Result<ShardJob> {
    let mut progress = Progress::new();
    let done = follow_with(client, job, timeout, &mut progress).await;
    progress.finish();
    done
}

/// Polls `GET /v1/shards/jobs/{id}` until job `id` has finished.
async fn follow_with(
    client: &Client,
    id: u64,
    timeout: Duration,
    progress: &mut Progress,
) -> anyhow::Result<ShardJob> {
    let deadline = Instant::now() + timeout;
    loop {
        // Any node answers from its applied state; a node that has not
        // applied the job yet does not list it.
        match client.shard_job(id).await {
            Ok(job) if job.state != JobState::Running => return Ok(job),
            Ok(job) => {
                let (done, all) = job.progress();
                let now = match (job.current(), job.current_topic()) {
                    (Some((_, m)), _) => move_text(m),
                    (None, Some((_, t))) => super::reshard::topic_text(t),
                    (None, None) => "listing the topics to move".into(),
                };
                progress.step(format!("shard job {id}: {done} of {all} moves done; {now}"));
            }
            Err(e) if e.code() == Some(ErrorCode::NotFound) => {}
            Err(e) => progress.step(format!("shard job {id}: cannot read its state yet: {e}")),
        }
        if Instant::now() >= deadline {
            bail!(
                "shard job {id} still running after {}s; it goes on: follow it with `dsync shard jobs`",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

pub async fn jobs(global: &GlobalArgs, id: Option<u64>) -> anyhow::Result<i32> {
    let client = global.client()?;
    let jobs = match id {
        Some(id) => vec![client.shard_job(id).await.api()?],
        None => client.shard_jobs().await.api()?,
    };
    global.output.print(&jobs, || jobs_text(&jobs))?;
    Ok(EXIT_OK)
}

fn node(n: Option<u64>) -> String {
    n.map_or("-".into(), |n| n.to_string())
}

fn move_text(m: &ReplicaMove) -> String {
    format!(
        "group {}: {} -> {} ({:?}; {})",
        m.group,
        node(m.from),
        node(m.to),
        m.phase,
        m.why
    )
}

fn moves_table(moves: &[ReplicaMove]) -> String {
    let mut t = Table::new(["GROUP", "FROM", "TO", "PHASE", "WHY"]);
    for m in moves {
        let why = match &m.error {
            Some(e) => format!("{}; {e}", m.why),
            None => m.why.clone(),
        };
        t.row([
            m.group.to_string(),
            node(m.from),
            node(m.to),
            format!("{:?}", m.phase),
            why,
        ]);
    }
    t.render()
}

fn plan_text(plan: &RebalancePlan, dry_run: bool) -> String {
    if plan.moves.is_empty() {
        return "every queue group is balanced over the voters; nothing to move\n".into();
    }
    let head = if dry_run {
        format!("would move {} replica(s) (dry run):", plan.moves.len())
    } else {
        format!("moving {} replica(s), one at a time:", plan.moves.len())
    };
    format!("{head}\n{}", moves_table(&plan.moves))
}

pub(super) fn jobs_text(jobs: &[ShardJob]) -> String {
    if jobs.is_empty() {
        return "no shard jobs yet\n".into();
    }
    let mut t = Table::new(["JOB", "KIND", "STATE", "MOVES", "STARTED", "TOOK", "ERROR"]);
    for j in jobs {
        let (done, all) = j.progress();
        t.row([
            j.id.to_string(),
            j.kind.clone(),
            format!("{:?}", j.state).to_lowercase(),
            format!("{done}/{all}"),
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + Duration::from_millis(j.started_ms),
            )
            .to_string(),
            j.finished_ms.map_or("-".into(), |f| {
                humantime::format_duration(Duration::from_secs(
                    f.saturating_sub(j.started_ms) / 1000,
                ))
                .to_string()
            }),
            j.error.clone().unwrap_or_default(),
        ]);
    }
    let mut out = t.render();
    if let Some(running) = jobs.iter().find(|j| j.state == JobState::Running) {
        if running.target.is_some() {
            out.push_str(&format!(
                "\njob {} topics:\n{}",
                running.id,
                super::reshard::topics_table(&running.topics)
            ));
        } else {
            out.push_str(&format!(
                "\njob {} moves:\n{}",
                running.id,
                moves_table(&running.moves)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use dsync_api::shards::{plan_moves, MovePhase, ShardMap};

    use super::*;

    #[test]
    fn the_plan_says_what_moves_where_and_why() {
        let map = ShardMap::initial(&[1, 2, 3], 3, 3).unwrap();
        let moves = plan_moves(&map, &[1, 2, 3, 4, 5], 3);
        let plan = RebalancePlan { moves, job: None };
        let text = plan_text(&plan, true);
        assert!(text.contains("(dry run)"), "{text}");
        assert!(text.contains("has room"), "{text}");
        let none = plan_text(
            &RebalancePlan {
                moves: vec![],
                job: None,
            },
            true,
        );
        assert!(none.contains("nothing to move"), "{none}");
    }

    #[test]
    fn a_running_job_lists_its_moves() {
        let map = ShardMap::initial(&[1, 2, 3], 3, 3).unwrap();
        let mut moves = plan_moves(&map, &[1, 2, 3, 4], 3);
        moves[0].phase = MovePhase::Done;
        let job = ShardJob::running(7, "rebalance", moves.clone(), 0);
        let text = jobs_text(&[job]);
        assert!(text.contains(&format!("1/{}", moves.len())), "{text}");
        assert!(text.contains("job 7 moves:"), "{text}");
        assert!(text.contains("running"), "{text}");
    }
}
