//! Reshard jobs in the control group's state: the target map, the topic
//! moves and the routes they imply while the job runs. Each step is a
//! committed entry, so a new control leader resumes where the old one
//! stopped; the queue groups' side is `state::handoff`.

use std::collections::BTreeMap;

use dsync_api::shards::{Ring, ShardJob, ShardMap, TopicMove, TopicPhase};
use dsync_api::ErrorCode;

use super::jobs::{JobStep, MAX_MOVES};
use super::{CmdError, CmdValue, StateData};

/// The job kind of a reshard.
pub const RESHARD: &str = "reshard";

/// Most topic moves one reshard may carry (listed 1,000 per entry, kept
/// with the job while it runs).
pub const MAX_TOPIC_MOVES: usize = 50_000;
/// Topic moves a finished reshard keeps for `GET /v1/shards/jobs`.
pub const KEEP_TOPICS: usize = 1000;

/// A running reshard as routing sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReshardRoutes {
    pub job: u64,
    pub target: ShardMap,
    /// Routes follow the target ring (but for `pending`).
    pub listed: bool,
    /// Route names that still live in their source group → that group.
    pub pending: BTreeMap<String, u64>,
}

fn conflict(msg: String) -> CmdError {
    CmdError::new(ErrorCode::Conflict, msg)
}

impl StateData {
    /// The running reshard's routes, if a reshard runs.
    pub fn reshard_routes(&self) -> Option<ReshardRoutes> {
        let job = self.jobs.running.as_ref()?;
        let target = job.target.clone()?;
        // A route name in two groups routes to the one the current ring
        // names (where its topic is), not to the stray copy.
        let ring = Ring::new(&self.shards);
        let mut pending = BTreeMap::new();
        for t in job.topics.iter().filter(|t| t.phase < TopicPhase::Switched) {
            if t.from == ring.group_of(&t.topic) {
                pending.insert(t.topic.clone(), t.from);
            } else {
                pending.entry(t.topic.clone()).or_insert(t.from);
            }
        }
        Some(ReshardRoutes {
            job: job.id,
            target,
            listed: job.listed,
            pending,
        })
    }

    pub(super) fn start_reshard(&mut self, target: ShardMap) -> Result<CmdValue, CmdError> {
        if let Some(j) = &self.jobs.running {
            return Err(conflict(format!(
                "shard job {} ({}) is still running; see `dsync shard jobs`",
                j.id, j.kind
            )));
        }
        if self.shards.groups.is_empty() {
            return Err(conflict(
                "the cluster has no queue groups yet; `dsync shard init` creates them".into(),
            ));
        }
        if let Err(e) = target.validate() {
            return Err(CmdError::new(ErrorCode::InvalidArgument, e.to_string()));
        }
        if target.groups.is_empty() {
            return Err(CmdError::new(
                ErrorCode::InvalidArgument,
                "a reshard keeps at least one queue group",
            ));
        }
        let used = self
            .shards
            .groups
            .iter()
            .map(|g| g.id)
            .max()
            .unwrap_or(0)
            .max(self.jobs.last_group);
        for g in &target.groups {
            let stale = match self.shards.group(g.id) {
                Some(now) => now.replicas != g.replicas,
                None => g.id <= used,
            };
            if stale {
                return Err(conflict(format!(
                    "group {} changed since the reshard was planned (epoch {}); plan again",
                    g.id, self.shards.epoch
                )));
            }
        }
        let top = target.groups.iter().map(|g| g.id).max().unwrap_or(0);
        self.jobs.last_group = used.max(top);
        self.jobs.next_id += 1;
        let id = self.jobs.next_id;
        self.jobs.running = Some(ShardJob {
            target: Some(target),
            ..ShardJob::running(id, RESHARD, Vec::new(), self.now_ms)
        });
        // New groups are routed to (by their replicas) from now on.
        self.shards.epoch += 1;
        Ok(CmdValue::Count(id))
    }

    fn running_reshard(&mut self, id: u64) -> Result<&mut ShardJob, CmdError> {
        self.jobs
            .running
            .as_mut()
            .filter(|j| j.id == id && j.target.is_some())
            .ok_or_else(|| conflict(format!("reshard job {id} is not running")))
    }

    pub(super) fn list_reshard(
        &mut self,
        id: u64,
        offset: usize,
        topics: Vec<TopicMove>,
        last: bool,
    ) -> Result<CmdValue, CmdError> {
        let job = self.running_reshard(id)?;
        if job.listed {
            return Ok(CmdValue::Done);
        }
        if offset != 0 && offset != job.topics.len() {
            return Err(conflict(format!(
                "reshard job {id} has {} topics listed, not {offset}",
                job.topics.len()
            )));
        }
        if offset + topics.len() > MAX_TOPIC_MOVES {
            return Err(CmdError::new(
                ErrorCode::InvalidArgument,
                format!("a reshard moves at most {MAX_TOPIC_MOVES} topics"),
            ));
        }
        job.topics.truncate(offset);
        job.topics.extend(topics);
        if last {
            job.listed = true;
            self.shards.epoch += 1;
            self.finish_job_if_done();
        }
        Ok(CmdValue::Done)
    }

    pub(super) fn step_topic(
        &mut self,
        id: u64,
        index: usize,
        phase: TopicPhase,
        error: Option<String>,
    ) -> Result<CmdValue, CmdError> {
        let job = self.running_reshard(id)?;
        let Some(t) = job.topics.get_mut(index) else {
            return Err(conflict(format!("reshard job {id} has no topic {index}")));
        };
        if phase < t.phase {
            return Err(conflict(format!(
                "topic {:?} of reshard job {id} is {:?} already",
                t.topic, t.phase
            )));
        }
        let switched = t.phase < TopicPhase::Switched && phase >= TopicPhase::Switched;
        t.phase = phase;
        job.error = error;
        if switched {
            self.shards.epoch += 1;
        }
        self.finish_job_if_done();
        Ok(CmdValue::Done)
    }

    /// Whether the running job is a reshard with work left.
    pub(super) fn reshard_unfinished(job: &ShardJob) -> bool {
        job.target.is_some() && (!job.listed || job.current_topic().is_some())
    }

    /// A reshard that has moved every topic: its target becomes the map,
    /// and it keeps the first [`KEEP_TOPICS`] of its moves.
    pub(super) fn finish_reshard(&mut self, job: &mut ShardJob) {
        job.topics.truncate(KEEP_TOPICS);
        if let Some(target) = &job.target {
            let epoch = self.shards.epoch + 1;
            self.shards = target.clone();
            self.shards.epoch = epoch;
        }
    }
}

impl JobStep {
    pub fn size_hint(&self) -> usize {
        match self {
            JobStep::Start { moves, .. } => 64 + 64 * moves.len().min(MAX_MOVES),
            JobStep::Advance { error, .. } | JobStep::TopicStep { error, .. } => {
                64 + error.as_ref().map_or(0, |e| e.len())
            }
            JobStep::StartReshard { target } => 64 + 32 * target.groups.len(),
            JobStep::Listed { topics, .. } => {
                64 + topics.iter().map(|t| t.topic.len() + 32).sum::<usize>()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use dsync_api::shards::{reshard_target, JobState};

    use super::*;
    use crate::state::SetShards;

    fn step(st: &mut StateData, s: JobStep) -> Result<CmdValue, CmdError> {
        st.shard_job(s)
    }

    #[test]
    fn a_reshard_switches_routes_topic_by_topic_then_takes_its_map() {
        let mut st = StateData {
            shards: ShardMap::initial(&[1, 2, 3], 2, 3).unwrap(),
            ..Default::default()
        };
        let target = reshard_target(&st.shards, 0, &[1, 2, 3], 4, 3).unwrap();
        let Ok(CmdValue::Count(id)) = step(
            &mut st,
            JobStep::StartReshard {
                target: target.clone(),
            },
        ) else {
            panic!("not started")
        };
        let r = st.reshard_routes().unwrap();
        assert!(!r.listed && r.pending.is_empty());
        let moves: Vec<TopicMove> = ["a", "b"]
            .iter()
            .map(|t| TopicMove {
                topic: t.to_string(),
                from: 1,
                to: 3,
                phase: TopicPhase::Pending,
            })
            .collect();
        // In two chunks; a chunk out of place is refused.
        let listed = |offset: usize, topics: &[TopicMove], last| JobStep::Listed {
            id,
            offset,
            topics: topics.to_vec(),
            last,
        };
        step(&mut st, listed(0, &moves[..1], false)).unwrap();
        assert!(!st.reshard_routes().unwrap().listed);
        assert!(step(&mut st, listed(2, &moves[1..], true)).is_err());
        step(&mut st, listed(1, &moves[1..], true)).unwrap();
        assert_eq!(st.reshard_routes().unwrap().pending.len(), 2);
        let topic = |st: &mut StateData, index, phase| {
            step(
                st,
                JobStep::TopicStep {
                    id,
                    index,
                    phase,
                    error: None,
                },
            )
        };
        topic(&mut st, 0, TopicPhase::Frozen).unwrap();
        topic(&mut st, 0, TopicPhase::Copied).unwrap();
        let epoch = st.shards.epoch;
        topic(&mut st, 0, TopicPhase::Switched).unwrap();
        assert_eq!(st.shards.epoch, epoch + 1);
        assert!(
            topic(&mut st, 0, TopicPhase::Frozen).is_err(),
            "no way back"
        );
        let r = st.reshard_routes().unwrap();
        assert_eq!(r.pending.keys().collect::<Vec<_>>(), vec!["b"]);
        topic(&mut st, 0, TopicPhase::Done).unwrap();
        topic(&mut st, 1, TopicPhase::Done).unwrap();
        assert!(st.jobs.running.is_none());
        assert_eq!(st.jobs.finished.back().unwrap().state, JobState::Done);
        assert_eq!(st.shards.groups, target.groups);
        assert!(st.shards.epoch > epoch + 1);
    }

    /// Runs a reshard to `groups` with no topics to move, to its end.
    fn reshard_to(
        st: &mut StateData,
        groups: u64,
        target: Option<ShardMap>,
    ) -> Result<(), CmdError> {
        let target = target.unwrap_or_else(|| {
            reshard_target(&st.shards, st.jobs.last_group, &[1, 2, 3], groups, 3).unwrap()
        });
        let CmdValue::Count(id) = step(st, JobStep::StartReshard { target })? else {
            panic!("not started")
        };
        let last = JobStep::Listed {
            id,
            offset: 0,
            topics: vec![],
            last: true,
        };
        step(st, last).map(|_| ())
    }

    #[test]
    fn a_retired_groups_id_is_never_given_again() {
        let mut st = StateData::default();
        let first = ShardMap::initial(&[1, 2, 3], 2, 3).unwrap();
        let set = crate::state::Request {
            now_ms: 1,
            cmds: vec![crate::state::Command::SetShards(SetShards { map: first })],
        };
        st.apply(set).0.remove(0).unwrap();
        reshard_to(&mut st, 4, None).unwrap();
        let four = st.shards.clone();
        reshard_to(&mut st, 2, None).unwrap();
        assert_eq!(st.jobs.last_group, 4);
        // A plan made as if 3 and 4 were free is refused.
        let stale = reshard_target(&st.shards, 0, &[1, 2, 3], 4, 3).unwrap();
        assert!(reshard_to(&mut st, 4, Some(stale)).is_err());
        reshard_to(&mut st, 4, None).unwrap();
        let ids: Vec<u64> = st.shards.groups.iter().map(|g| g.id).collect();
        assert_eq!(ids, vec![1, 2, 5, 6]);
        assert_ne!(st.shards.groups, four.groups);
    }

    #[test]
    fn a_reshard_with_nothing_to_move_ends_when_listed() {
        let mut st = StateData {
            shards: ShardMap::initial(&[1, 2, 3], 3, 3).unwrap(),
            ..Default::default()
        };
        let target = reshard_target(&st.shards, 0, &[1, 2, 3], 2, 3).unwrap();
        let Ok(CmdValue::Count(id)) = step(&mut st, JobStep::StartReshard { target }) else {
            panic!("not started")
        };
        assert!(
            step(
                &mut st,
                JobStep::Start {
                    kind: "rebalance".into(),
                    moves: vec![]
                }
            )
            .is_err(),
            "one job at a time"
        );
        let last = JobStep::Listed {
            id,
            offset: 0,
            topics: vec![],
            last: true,
        };
        step(&mut st, last).unwrap();
        assert!(st.jobs.running.is_none());
        assert_eq!(st.shards.groups.len(), 2);
    }
}
