//! Shard jobs in the control group's state: the running rebalance and the
//! last finished ones. Each step of a move is a committed entry, so a new
//! control leader resumes the job where the old one left it.

use std::collections::VecDeque;

use dsync_api::shards::{
    moved_replicas, JobState, MovePhase, ReplicaMove, ShardJob, ShardMap, TopicMove, TopicPhase,
};
use dsync_api::ErrorCode;
use serde::{Deserialize, Serialize};

use super::{CmdError, CmdValue, StateData};

/// Finished jobs kept for `GET /v1/shards/jobs`.
pub const KEEP_FINISHED: usize = 16;
/// Most moves one job may carry (a map has at most 1,024 groups; a plan
/// moves each replica at most once).
pub const MAX_MOVES: usize = 4096;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardJobs {
    pub next_id: u64,
    pub running: Option<ShardJob>,
    /// Newest last.
    pub finished: VecDeque<ShardJob>,
    /// The highest queue group id the cluster has used: a reshard's new
    /// groups take ids above it, never one a retired group had (a node
    /// down while that group was retired still has its folder). Last
    /// field (snapshot format 6).
    pub last_group: u64,
}

/// A step of a shard job (`Command::ShardJob`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobStep {
    /// Records a new job; refused while another runs.
    Start {
        kind: String,
        moves: Vec<ReplicaMove>,
    },
    /// Move `index` of job `id` reached `phase`. `Done` also applies the
    /// move to the shard map (and bumps its epoch).
    Advance {
        id: u64,
        index: usize,
        phase: MovePhase,
        error: Option<String>,
    },
    /// Records a reshard towards `target` (`state::reshard`); refused
    /// while another job runs. New variants go last.
    StartReshard { target: ShardMap },
    /// Topics `offset..` that reshard `id` moves (offset 0 starts the
    /// list over). Once the `last` chunk is in, routes follow the target
    /// ring, but for those topics until each switches.
    Listed {
        id: u64,
        offset: usize,
        topics: Vec<TopicMove>,
        last: bool,
    },
    /// Topic `index` of reshard `id` reached `phase` (`error`: why the
    /// last try failed, shown in the job until the next step).
    TopicStep {
        id: u64,
        index: usize,
        phase: TopicPhase,
        error: Option<String>,
    },
}

impl ShardJobs {
    /// Every job, running first, then the finished ones newest first.
    pub fn all(&self) -> Vec<ShardJob> {
        self.running
            .iter()
            .chain(self.finished.iter().rev())
            .cloned()
            .collect()
    }

    /// The move in progress, if any.
    pub fn current_move(&self) -> Option<&ReplicaMove> {
        self.running.as_ref()?.current().map(|(_, m)| m)
    }
}

fn conflict(msg: String) -> CmdError {
    CmdError::new(ErrorCode::Conflict, msg)
}

impl StateData {
    pub(super) fn shard_job(&mut self, step: JobStep) -> Result<CmdValue, CmdError> {
        match step {
            JobStep::Start { kind, moves } => self.start_job(kind, moves),
            JobStep::Advance {
                id,
                index,
                phase,
                error,
            } => self.advance_job(id, index, phase, error),
            JobStep::StartReshard { target } => self.start_reshard(target),
            JobStep::Listed {
                id,
                offset,
                topics,
                last,
            } => self.list_reshard(id, offset, topics, last),
            JobStep::TopicStep {
                id,
                index,
                phase,
                error,
            } => self.step_topic(id, index, phase, error),
        }
    }

    fn start_job(&mut self, kind: String, moves: Vec<ReplicaMove>) -> Result<CmdValue, CmdError> {
        if let Some(j) = &self.jobs.running {
            return Err(conflict(format!(
                "shard job {} ({}) is still running; see `dsync shard jobs`",
                j.id, j.kind
            )));
        }
        if moves.len() > MAX_MOVES {
            return Err(CmdError::new(
                ErrorCode::InvalidArgument,
                format!("a job has at most {MAX_MOVES} moves"),
            ));
        }
        for m in &moves {
            let Some(g) = self.shards.group(m.group) else {
                return Err(conflict(format!(
                    "group {} is not in the shard map",
                    m.group
                )));
            };
            let from_ok = m.from.is_none_or(|f| g.replicas.contains(&f));
            let to_ok = m.to.is_none_or(|t| !g.replicas.contains(&t));
            if !from_ok || !to_ok || (m.from.is_none() && m.to.is_none()) || m.phase.finished() {
                return Err(conflict(format!(
                    "the plan no longer fits the shard map (epoch {}): group {} from {:?} to {:?}; plan again",
                    self.shards.epoch, m.group, m.from, m.to
                )));
            }
        }
        self.jobs.next_id += 1;
        let id = self.jobs.next_id;
        self.jobs.running = Some(ShardJob::running(id, &kind, moves, self.now_ms));
        self.finish_job_if_done();
        Ok(CmdValue::Count(id))
    }

    fn advance_job(
        &mut self,
        id: u64,
        index: usize,
        phase: MovePhase,
        error: Option<String>,
    ) -> Result<CmdValue, CmdError> {
        let Some(job) = self.jobs.running.as_mut().filter(|j| j.id == id) else {
            return Err(conflict(format!("shard job {id} is not running")));
        };
        let Some((current, m)) = job.current() else {
            return Err(conflict(format!("shard job {id} has no move left")));
        };
        if current != index {
            return Err(conflict(format!(
                "shard job {id} is at move {current}, not {index}"
            )));
        }
        let allowed = matches!(
            (m.phase, phase),
            (MovePhase::Pending, MovePhase::CatchingUp)
                | (MovePhase::Pending | MovePhase::CatchingUp, MovePhase::Done)
                | (
                    MovePhase::Pending | MovePhase::CatchingUp,
                    MovePhase::RolledBack
                )
        );
        if !allowed {
            return Err(conflict(format!(
                "move {index} of shard job {id} cannot go from {:?} to {phase:?}",
                m.phase
            )));
        }
        let (group, from, to) = (m.group, m.from, m.to);
        if phase == MovePhase::Done {
            let Some(g) = self.shards.groups.iter_mut().find(|g| g.id == group) else {
                return Err(conflict(format!("group {group} is not in the shard map")));
            };
            let replicas = moved_replicas(&g.replicas, from, to);
            if replicas.is_empty() {
                return Err(conflict(format!("group {group} would have no replica")));
            }
            g.replicas = replicas;
            self.shards.epoch += 1;
        }
        let job = self.jobs.running.as_mut().expect("checked above");
        let m = &mut job.moves[index];
        m.phase = phase;
        if error.is_some() {
            m.error = error;
        }
        self.finish_job_if_done();
        Ok(CmdValue::Done)
    }

    pub(super) fn finish_job_if_done(&mut self) {
        let Some(job) = self.jobs.running.as_mut() else {
            return;
        };
        if job.current().is_some() || StateData::reshard_unfinished(job) {
            return;
        }
        let rolled_back = job
            .moves
            .iter()
            .filter(|m| m.phase == MovePhase::RolledBack)
            .count();
        job.state = if rolled_back == 0 {
            JobState::Done
        } else {
            job.error = Some(format!(
                "{rolled_back} of {} moves rolled back",
                job.moves.len()
            ));
            JobState::Failed
        };
        job.finished_ms = Some(self.now_ms);
        let mut job = self.jobs.running.take().expect("checked above");
        self.finish_reshard(&mut job);
        self.jobs.finished.push_back(job);
        while self.jobs.finished.len() > KEEP_FINISHED {
            self.jobs.finished.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use dsync_api::shards::{plan_moves, ShardMap};

    use super::*;

    fn state(nodes: &[u64]) -> StateData {
        StateData {
            shards: ShardMap::initial(nodes, 3, 3).unwrap(),
            ..Default::default()
        }
    }

    fn advance(
        st: &mut StateData,
        id: u64,
        index: usize,
        phase: MovePhase,
    ) -> Result<CmdValue, CmdError> {
        st.shard_job(JobStep::Advance {
            id,
            index,
            phase,
            error: None,
        })
    }

    #[test]
    fn a_job_moves_replicas_one_at_a_time_and_bumps_the_epoch_per_move() {
        let mut st = state(&[1, 2, 3]);
        let moves = plan_moves(&st.shards, &[1, 2, 3, 4], 3);
        assert!(!moves.is_empty());
        let n = moves.len();
        let start = JobStep::Start {
            kind: "rebalance".into(),
            moves: moves.clone(),
        };
        let Ok(CmdValue::Count(id)) = st.shard_job(start.clone()) else {
            panic!("not started")
        };
        assert!(st.shard_job(start).is_err(), "a second job while one runs");
        // Out of order, or skipping ahead, is refused.
        assert!(advance(&mut st, id, 1, MovePhase::CatchingUp).is_err());
        let epoch = st.shards.epoch;
        for i in 0..n {
            advance(&mut st, id, i, MovePhase::CatchingUp).unwrap();
            assert!(advance(&mut st, id, i, MovePhase::CatchingUp).is_err());
            advance(&mut st, id, i, MovePhase::Done).unwrap();
            assert_eq!(st.shards.epoch, epoch + i as u64 + 1);
        }
        assert!(st.jobs.running.is_none());
        let done = st.jobs.finished.back().unwrap();
        assert_eq!(done.state, JobState::Done);
        assert!(plan_moves(&st.shards, &[1, 2, 3, 4], 3).is_empty());
        st.shards.validate().unwrap();
    }

    /// Steps travel in the Raft log and jobs in snapshots, both bincode:
    /// a field that serde skips when empty would shift every byte after it.
    #[test]
    fn steps_and_jobs_survive_bincode_with_empty_optional_fields() {
        let mut st = state(&[1, 2, 3]);
        let mut moves = plan_moves(&st.shards, &[1, 2, 3, 4], 3);
        moves[0].from = None;
        moves[0].error = None;
        let start = JobStep::Start {
            kind: "rebalance".into(),
            moves,
        };
        let bytes = bincode::serialize(&start).unwrap();
        let back: JobStep = bincode::deserialize(&bytes).unwrap();
        assert_eq!(format!("{back:?}"), format!("{start:?}"));
        st.shard_job(start).unwrap();
        let bytes = bincode::serialize(&st.jobs).unwrap();
        let jobs: ShardJobs = bincode::deserialize(&bytes).unwrap();
        assert_eq!(format!("{jobs:?}"), format!("{:?}", st.jobs));
    }

    #[test]
    fn a_rolled_back_move_leaves_the_map_and_fails_the_job() {
        let mut st = state(&[1, 2, 3]);
        let before = st.shards.clone();
        let moves = plan_moves(&st.shards, &[1, 2, 3, 4], 3);
        let Ok(CmdValue::Count(id)) = st.shard_job(JobStep::Start {
            kind: "rebalance".into(),
            moves: moves[..1].to_vec(),
        }) else {
            panic!("not started")
        };
        advance(&mut st, id, 0, MovePhase::CatchingUp).unwrap();
        advance(&mut st, id, 0, MovePhase::RolledBack).unwrap();
        assert_eq!(st.shards, before);
        assert_eq!(st.jobs.finished.back().unwrap().state, JobState::Failed);
    }

    #[test]
    fn a_stale_plan_is_refused() {
        let mut st = state(&[1, 2, 3]);
        let mut moves = plan_moves(&st.shards, &[1, 2, 3, 4], 3);
        moves[0].to = moves[0].from;
        assert!(st
            .shard_job(JobStep::Start {
                kind: "rebalance".into(),
                moves,
            })
            .is_err());
        assert!(st.jobs.running.is_none());
    }

    #[test]
    fn finished_jobs_are_bounded() {
        let mut st = state(&[1, 2, 3]);
        for _ in 0..KEEP_FINISHED + 5 {
            st.shard_job(JobStep::Start {
                kind: "rebalance".into(),
                moves: vec![],
            })
            .unwrap();
        }
        assert_eq!(st.jobs.finished.len(), KEEP_FINISHED);
        assert_eq!(st.jobs.all()[0].id, KEEP_FINISHED as u64 + 5);
    }
}
