//! Resharding (DESIGN.md §2a "Resharding"): `POST /v1/shards/reshard`
//! records a job towards a map with another number of queue groups; the
//! control leader carries it out one committed step at a time, so a new
//! leader (or the same one after a crash) resumes where it stopped:
//!
//! 1. every source group is told the target map and from then on refuses
//!    new topics the target ring puts elsewhere (their writers wait);
//! 2. the topics that sit in another group than the target ring names are
//!    listed in the job, and routes follow the target ring but for them;
//! 3. one topic at a time: the source freezes it (its requests wait in
//!    the server), its whole state is copied into the target and
//!    installed there, routes switch to the target, the source drops it
//!    and answers stragglers with `moved`;
//! 4. the target map becomes the shard map; groups it lacks are deleted.

use dsync_api::shards::{
    reshard_target, ReshardPlan, ReshardRequest, Ring, ShardMap, TopicMove, TopicPhase, MAX_GROUPS,
};

use super::routed::GroupRequest;
use super::Node;
use crate::error::{Error, Result};
use crate::state::command;
use crate::state::handoff::HandoffStep;
use crate::state::jobs::JobStep;
use crate::state::reshard::MAX_TOPIC_MOVES;
use crate::state::{CmdValue, Command};
use crate::state::{Handoff, ShardJob};

/// Topic moves per `Listed` entry.
const LIST_CHUNK: usize = 1000;

impl Node {
    /// Plans a reshard to `req.groups` queue groups and, unless a dry run,
    /// starts a job for it.
    pub async fn reshard(&self, req: ReshardRequest) -> Result<ReshardPlan> {
        if req.groups == 0 || req.groups > MAX_GROUPS {
            return Err(Error::InvalidArgument(format!(
                "groups must be 1 to {MAX_GROUPS}"
            )));
        }
        self.read_barrier(dsync_api::types::Consistency::Linearizable, None)
            .await?;
        let (map, used, running) = {
            let st = self.control.sm.read();
            let d = &st.data;
            (d.shards.clone(), d.jobs.last_group, d.jobs.running.clone())
        };
        if map.groups.is_empty() {
            return Err(Error::InvalidArgument(
                "the cluster has no queue groups to reshard (see `dsync shard init`)".into(),
            ));
        }
        if let Some(j) = running {
            return Err(super::moves::conflict(format!(
                "shard job {} ({}) is still running; see `dsync shard jobs`",
                j.id, j.kind
            )));
        }
        let voters = self.voter_ids();
        let r = map.replica_count().max(1);
        let target = reshard_target(&map, used, &voters, req.groups, r)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let (topics, total) = self.misplaced_topics(&map, &target).await?;
        // Headroom for topics created between this plan and the job's list.
        if topics.len() > MAX_TOPIC_MOVES * 4 / 5 {
            return Err(Error::InvalidArgument(format!(
                "{} topics would move; one reshard moves at most {}: reshard in smaller steps \
                 (fewer groups added or removed at a time)",
                topics.len(),
                MAX_TOPIC_MOVES * 4 / 5
            )));
        }
        let mut plan = ReshardPlan {
            groups_before: map.groups.len() as u64,
            groups_after: target.groups.len() as u64,
            topics_total: total,
            topics,
            job: None,
        };
        if req.dry_run {
            return Ok(plan);
        }
        let step = JobStep::StartReshard { target };
        plan.job = Some(self.propose(command::cluster::start_job(step)).await?);
        tracing::info!(job = ?plan.job, groups = req.groups, "reshard started");
        Ok(plan)
    }

    /// The topics of `map`'s groups that `target`'s ring puts in another
    /// group, and how many topics there are in all.
    async fn misplaced_topics(
        &self,
        map: &ShardMap,
        target: &ShardMap,
    ) -> Result<(Vec<TopicMove>, u64)> {
        let mut moves: Vec<TopicMove> = Vec::new();
        let mut total = 0;
        for g in &map.groups {
            let names: Vec<String> = self.group_call(g.id, GroupRequest::Topics).await?.json()?;
            total += names.len() as u64;
            for topic in names {
                let to = target.group_of(&topic);
                if to != g.id {
                    moves.push(TopicMove {
                        topic,
                        from: g.id,
                        to,
                        phase: TopicPhase::Pending,
                    });
                }
            }
        }
        // A route name held by two groups (dead letters that a release
        // before this one kept under their own hash): the stray copy moves
        // first, while routes still name the group its topic is in.
        let ring = Ring::new(map);
        moves.sort_by_key(|m| m.from == ring.group_of(&m.topic));
        Ok((moves, total))
    }

    /// Steps 1 and 2: every source group learns the target; then the
    /// topics to move are recorded, in chunks (one Raft entry each).
    async fn list_topics(&self, id: u64, target: ShardMap) -> Result<()> {
        let sources = self.control.sm.read().data.shards.clone();
        for g in &sources.groups {
            let begin = HandoffStep::Begin {
                job: id,
                group: g.id,
                target: target.clone(),
            };
            self.handoff_in(g.id, begin).await?;
        }
        self.crash_point("reshard-begun");
        let (topics, _) = self.misplaced_topics(&sources, &target).await?;
        tracing::info!(job = id, topics = topics.len(), "reshard listed its topics");
        let chunks: Vec<&[TopicMove]> = if topics.is_empty() {
            vec![&[]]
        } else {
            topics.chunks(LIST_CHUNK).collect()
        };
        for (i, chunk) in chunks.iter().enumerate() {
            let step = JobStep::Listed {
                id,
                offset: i * LIST_CHUNK,
                topics: chunk.to_vec(),
                last: i + 1 == chunks.len(),
            };
            self.write(Command::ShardJob(ShardJob { step })).await?;
        }
        Ok(())
    }

    async fn handoff_in(&self, group: u64, step: HandoffStep) -> Result<CmdValue> {
        let cmd = Command::Handoff(Handoff { step });
        self.group_call(group, GroupRequest::Write(cmd))
            .await?
            .value()
    }

    async fn topic_step(&self, job: u64, index: usize, phase: TopicPhase) -> Result<()> {
        let step = JobStep::TopicStep {
            id: job,
            index,
            phase,
            error: None,
        };
        self.write(Command::ShardJob(ShardJob { step }))
            .await
            .map(|_| ())
    }

    /// Takes reshard `id` one step further. Every step may be repeated.
    pub(super) async fn drive_reshard(&self, id: u64) -> Result<()> {
        // A new control leader may not have applied every step yet.
        self.read_barrier(dsync_api::types::Consistency::Linearizable, None)
            .await?;
        let (target, current) = {
            let st = self.control.sm.read();
            let Some(job) = st.data.jobs.running.as_ref().filter(|j| j.id == id) else {
                return Ok(());
            };
            let target = if job.listed { None } else { job.target.clone() };
            (target, job.current_topic().map(|(i, t)| (i, t.clone())))
        };
        if let Some(target) = target {
            return self.list_topics(id, target).await;
        }
        let Some((index, t)) = current else {
            return Ok(());
        };
        match t.phase {
            TopicPhase::Pending => {
                let freeze = HandoffStep::Freeze {
                    job: id,
                    topic: t.topic.clone(),
                    to: t.to,
                };
                self.handoff_in(t.from, freeze).await?;
                self.crash_point("reshard-frozen");
                self.topic_step(id, index, TopicPhase::Frozen).await
            }
            TopicPhase::Frozen => {
                self.copy_topic(id, &t).await?;
                self.crash_point("reshard-copied");
                self.topic_step(id, index, TopicPhase::Copied).await
            }
            // The step itself switches the routes (it bumps the epoch).
            TopicPhase::Copied => self.topic_step(id, index, TopicPhase::Switched).await,
            TopicPhase::Switched => {
                let epoch = self.control.sm.read().data.shards.epoch;
                let drop = HandoffStep::Drop {
                    job: id,
                    topic: t.topic.clone(),
                    to: t.to,
                    epoch,
                };
                self.handoff_in(t.from, drop).await?;
                self.crash_point("reshard-dropped");
                self.shared.metrics.groups.count_move("topic_moved");
                tracing::info!(job = id, topic = %t.topic, from = t.from, to = t.to, "topic moved");
                self.topic_step(id, index, TopicPhase::Done).await
            }
            TopicPhase::Done => Ok(()),
        }
    }

    /// Copies frozen topic `t` page by page from its source into its
    /// target and installs it there; the next page is read while the last
    /// one is committed.
    async fn copy_topic(&self, job: u64, t: &TopicMove) -> Result<()> {
        let attempt: u64 = rand::random();
        let mut page = self.export_page(t, 0).await?;
        let mut seq = 0;
        loop {
            let (bytes, next, revision) = page;
            let part = HandoffStep::ImportPart {
                job,
                topic: t.topic.clone(),
                seq,
                attempt,
                page: bytes,
            };
            let Some(at) = next else {
                self.handoff_in(t.to, part).await?;
                let commit = HandoffStep::ImportCommit {
                    job,
                    topic: t.topic.clone(),
                    revision,
                    attempt,
                    pages: seq + 1,
                };
                return self.handoff_in(t.to, commit).await.map(|_| ());
            };
            let (imported, read) =
                futures::future::join(self.handoff_in(t.to, part), self.export_page(t, at)).await;
            imported?;
            page = read?;
            seq += 1;
        }
    }

    async fn export_page(&self, t: &TopicMove, from: usize) -> Result<ExportPage> {
        let req = GroupRequest::Export {
            topic: t.topic.clone(),
            from,
        };
        self.group_call(t.from, req).await?.export()
    }
}

/// A page of a frozen topic (encoded parts), where the next page starts,
/// the source's revision.
type ExportPage = (Vec<u8>, Option<usize>, u64);
