//! Replica moves (DESIGN.md §2a "Moves"): `POST /v1/shards/rebalance`
//! records a job in the control group; the control leader carries out its
//! moves one at a time, committing each step, so a new leader resumes
//! where the old one stopped. A move: the target opens the group, the
//! group's leader adds it as a learner, it catches up, it becomes a voter
//! as the old replica leaves the membership, the shard map says so (new
//! epoch) and the old replica deletes its copy. A target that never
//! catches up is removed again (rolled back).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dsync_api::shards::{
    plan_moves, MovePhase, RebalancePlan, RebalanceRequest, ReplicaMove, ShardJob,
};
use dsync_api::types::MemberKind;

use super::group_members::MemberChange;
use super::routed::GroupRequest;
use super::Node;
use crate::error::{Error, Result};
use crate::state::command;
use crate::state::jobs::JobStep;
use crate::state::Command;

/// A learner whose matched index has not moved for this long (while it
/// still lags) is given up and the move rolled back.
const STALL: Duration = Duration::from_secs(30);
/// Entries a learner may trail the leader by and still be promoted: the
/// joint configuration commits on both majorities anyway, so this only
/// keeps a busy group from waiting for an exact match that never comes.
const CATCH_UP_SLACK: u64 = 256;
const POLL: Duration = Duration::from_millis(200);

impl Node {
    /// Plans the moves that place every group's replicas over the voters
    /// (less `req.exclude`) and, unless a dry run, starts a job for them.
    pub async fn rebalance(&self, req: RebalanceRequest) -> Result<RebalancePlan> {
        let voters = self.voter_ids();
        if let Some(x) = req.exclude.iter().find(|x| !voters.contains(x)) {
            return Err(Error::InvalidArgument(format!(
                "exclude: node {x} is not a voter of this cluster"
            )));
        }
        let nodes: Vec<u64> = voters
            .into_iter()
            .filter(|v| !req.exclude.contains(v))
            .collect();
        if nodes.is_empty() {
            return Err(Error::InvalidArgument(
                "exclude: at least one voter must keep the queue groups".into(),
            ));
        }
        self.read_barrier(dsync_api::types::Consistency::Linearizable, None)
            .await?;
        let (map, running) = {
            let st = self.control.sm.read();
            (st.data.shards.clone(), st.data.jobs.running.clone())
        };
        if map.groups.is_empty() {
            return Err(Error::InvalidArgument(
                "the cluster has no queue groups to rebalance (see `dsync shard init`)".into(),
            ));
        }
        if let Some(j) = running {
            return Err(conflict(format!(
                "shard job {} is still running ({} of {} moves done); see `dsync shard jobs`",
                j.id,
                j.progress().0,
                j.progress().1
            )));
        }
        let r = map.replica_count().max(1);
        let moves = plan_moves(&map, &nodes, r);
        if req.dry_run || moves.is_empty() {
            return Ok(RebalancePlan { moves, job: None });
        }
        let step = JobStep::Start {
            kind: "rebalance".into(),
            moves: moves.clone(),
        };
        let id = self.propose(command::cluster::start_job(step)).await?;
        tracing::info!(job = id, moves = moves.len(), "shard rebalance started");
        Ok(RebalancePlan {
            moves,
            job: Some(id),
        })
    }

    pub(super) fn crash_point(&self, name: &str) {
        crate::failpoint::crash_point(&self.config.data_dir, name);
    }

    /// Every shard job this node's state knows, running first.
    pub fn shard_jobs(&self) -> Vec<ShardJob> {
        self.control.sm.read().data.jobs.all()
    }

    pub fn shard_job(&self, id: u64) -> Option<ShardJob> {
        self.shard_jobs().into_iter().find(|j| j.id == id)
    }

    async fn advance(
        &self,
        job: u64,
        index: usize,
        phase: MovePhase,
        error: Option<String>,
    ) -> Result<()> {
        let step = JobStep::Advance {
            id: job,
            index,
            phase,
            error,
        };
        self.write(Command::ShardJob(crate::state::ShardJob { step }))
            .await
            .map(|_| ())
    }

    /// Carries move `index` of `job` from the phase it is recorded in to
    /// `Done` or `RolledBack`. Every step may be repeated.
    async fn drive_move(&self, job: u64, index: usize, m: ReplicaMove) -> Result<()> {
        let g = m.group;
        if m.phase == MovePhase::Pending {
            if let Some(to) = m.to {
                if self.member_addr(to).is_none() {
                    let why = format!("node {to} is not a member");
                    return self
                        .advance(job, index, MovePhase::RolledBack, Some(why))
                        .await;
                }
            }
            self.crash_point("move-start");
            // The target opens the group as soon as this is applied.
            return self.advance(job, index, MovePhase::CatchingUp, None).await;
        }
        if let Some(to) = m.to {
            let addr = self
                .member_addr(to)
                .ok_or_else(|| Error::Unavailable(format!("node {to} is not a member")))?;
            let add = MemberChange::AddLearner { id: to, addr };
            self.group_call(g, GroupRequest::Members(add)).await?;
            self.crash_point("move-learner-added");
            if let Err(why) = self.wait_caught_up(g, to).await? {
                tracing::warn!(group = g, to, "move rolled back: {why}");
                let remove = MemberChange::RemoveLearner { id: to };
                self.group_call(g, GroupRequest::Members(remove)).await?;
                self.shared.metrics.groups.count_move("rolled_back");
                return self
                    .advance(job, index, MovePhase::RolledBack, Some(why))
                    .await;
            }
        }
        let status = self.group_status(g).await?;
        let mut voters: Vec<u64> = status
            .replicas
            .iter()
            .filter(|r| r.kind == MemberKind::Voter && Some(r.id) != m.from)
            .map(|r| r.id)
            .collect();
        if let Some(to) = m.to.filter(|t| !voters.contains(t)) {
            voters.push(to);
        }
        if status.leader.is_some() && status.leader == m.from {
            // The leader leaving: a voter that stays takes over first.
            self.group_call(g, GroupRequest::Transfer { to: None })
                .await?;
        }
        self.group_call(g, GroupRequest::Members(MemberChange::SetVoters { voters }))
            .await?;
        self.crash_point("move-voters-set");
        self.advance(job, index, MovePhase::Done, None).await?;
        self.shared.metrics.groups.count_move("done");
        tracing::info!(group = g, from = ?m.from, to = ?m.to, "replica moved");
        Ok(())
    }

    /// Waits until learner `to` of group `g` trails its leader by at most
    /// [`CATCH_UP_SLACK`] entries. `Ok(Err(why))`: it stalled for [`STALL`].
    async fn wait_caught_up(&self, g: u64, to: u64) -> Result<std::result::Result<(), String>> {
        let mut best = None;
        let mut since = Instant::now();
        let mut floor = None;
        loop {
            let s = self.group_status(g).await?;
            // Everything the group held when the wait began must be on the
            // learner; the slack is for what arrives while it catches up.
            let floor = *floor.get_or_insert(s.last_index);
            let replica = s.replicas.iter().find(|r| r.id == to);
            if replica.is_some_and(|r| r.kind == MemberKind::Voter) {
                // Promoted already (a resumed move): past rolling back.
                return Ok(Ok(()));
            }
            // Index 0: the leader has not heard from the learner yet.
            let matched = replica.and_then(|r| r.matched_index).filter(|i| *i > 0);
            let lag = matched.map_or(s.last_index, |i| s.last_index.saturating_sub(i));
            self.shared.metrics.groups.move_lag.set(lag as i64);
            if matched.is_some_and(|i| i >= floor) && lag <= CATCH_UP_SLACK {
                self.shared.metrics.groups.move_lag.set(0);
                return Ok(Ok(()));
            }
            if matched > best {
                best = matched;
                since = Instant::now();
            } else if since.elapsed() > STALL {
                return Ok(Err(format!(
                    "node {to} stopped catching up with group {g} ({lag} entries behind for {}s)",
                    STALL.as_secs()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// How many moves of `job` are done, for the log line of a failed step.
fn done_index(node: &Node, job: u64) -> usize {
    let st = node.control.sm.read();
    st.data
        .jobs
        .running
        .as_ref()
        .filter(|j| j.id == job)
        .map_or(0, |j| j.progress().0)
}

pub(super) fn conflict(message: String) -> Error {
    Error::Api(dsync_api::ApiError::new(
        dsync_api::ErrorCode::Conflict,
        message,
    ))
}

/// On the control group's leader, carries out the running shard job's
/// moves; idle elsewhere.
pub(super) async fn run_mover(node: Arc<Node>) {
    let mut applied = node.control.sm.subscribe();
    let mut backoff = POLL;
    loop {
        // Not the whole job: a reshard's may list many topics.
        let current = {
            let st = node.control.sm.read();
            st.data.jobs.running.as_ref().map(|j| {
                let replica = j.current().map(|(i, m)| (i, m.clone()));
                (j.id, j.progress(), replica)
            })
        };
        match current {
            Some((job, (done, all), replica)) if node.is_leader() && !node.is_draining() => {
                let left = all.saturating_sub(done) as i64;
                node.shared.metrics.groups.moves_left.set(left);
                let done = match replica {
                    Some((index, m)) => node.drive_move(job, index, m).await,
                    None => node.drive_reshard(job).await,
                };
                let index = done_index(&node, job);
                match done {
                    Ok(()) => backoff = POLL,
                    Err(e) => {
                        tracing::info!(job, index, "move not finished yet: {e}");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            Some(_) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), applied.changed()).await;
            }
            None => {
                node.shared.metrics.groups.moves_left.set(0);
                if applied.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}
