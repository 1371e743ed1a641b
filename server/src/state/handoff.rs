//! A queue group's side of resharding (DESIGN.md §2a "Resharding"): it
//! refuses new topics that the target ring puts elsewhere, freezes a topic
//! that leaves, stages and installs one that arrives, and remembers where
//! the ones that left went. Each step is a committed command, repeatable
//! without harm, so a driver that crashed does it again.
//!
//! Refusals carry `details` that the routing node understands: `moving`
//! (wait and retry) and `moved` (retry once the routes reach `epoch`).

use std::collections::BTreeMap;

use dsync_api::shards::{route_name, ShardMap};
use dsync_api::ErrorCode;
use serde::{Deserialize, Serialize};

use super::queue::{Staging, TopicPart};
use super::{CmdError, CmdValue, Command, StateData};
use crate::state::{Once, QueueConfigure, QueueConsume, QueueEnqueue, QueueRedrive};

/// Largest page one `ImportPart` may carry, in bytes.
pub const MAX_PAGE: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Handoff {
    /// The reshard this group takes part in: (job, this group's id, the
    /// map it leads to).
    pub begun: Option<(u64, u64, ShardMap)>,
    /// Route names frozen for a move → the group they go to.
    pub frozen: BTreeMap<String, u64>,
    /// Route names that moved away → (group, epoch that routes them there).
    pub gone: BTreeMap<String, (u64, u64)>,
    /// Imports under way, by route name.
    pub staged: BTreeMap<String, Stage>,
    /// Route names installed here → the job that brought them, so a
    /// repeated commit changes nothing.
    pub imported: BTreeMap<String, u64>,
}

/// An import being staged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub job: u64,
    /// Chosen by the driver at page 0: the pages and the commit of one copy
    /// carry it, so a deposed driver's late commit cannot install the
    /// first pages of its successor's copy.
    pub attempt: u64,
    /// The page expected next.
    pub next: u64,
    pub staging: Staging,
}

/// A step of a reshard in a queue group (`Command::Handoff`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum HandoffStep {
    /// From now on, refuse to create a topic the target ring puts in
    /// another group (its writer waits for the new routes).
    Begin {
        job: u64,
        group: u64,
        target: ShardMap,
    },
    /// Refuse every request of `topic` (and its dead letters) from now on.
    Freeze { job: u64, topic: String, to: u64 },
    /// Page `seq` of an import (`seq` 0 starts it over): bincode of a
    /// `Vec<TopicPart>`, kept opaque so a follower appending the entry only
    /// copies bytes (openraft gives an AppendEntries one heartbeat) and
    /// decodes it when it applies the entry.
    ImportPart {
        job: u64,
        topic: String,
        seq: u64,
        attempt: u64,
        #[serde(with = "serde_bytes")]
        page: Vec<u8>,
    },
    /// Installs the staged topics if the stage is attempt `attempt` with
    /// all its `pages`; `revision` is the source's, so receipts issued from
    /// here on never repeat one issued there.
    ImportCommit {
        job: u64,
        topic: String,
        revision: u64,
        attempt: u64,
        pages: u64,
    },
    /// Deletes the frozen copy; requests for it are answered `moved`.
    Drop {
        job: u64,
        topic: String,
        to: u64,
        epoch: u64,
    },
}

impl HandoffStep {
    pub fn size_hint(&self) -> usize {
        match self {
            HandoffStep::Begin { target, .. } => 64 + 32 * target.groups.len(),
            HandoffStep::ImportPart { topic, page, .. } => topic.len() + page.len() + 32,
            HandoffStep::Freeze { topic, .. }
            | HandoffStep::ImportCommit { topic, .. }
            | HandoffStep::Drop { topic, .. } => topic.len() + 32,
        }
    }
}

fn conflict(msg: String) -> CmdError {
    CmdError::new(ErrorCode::Conflict, msg)
}

/// The refusal of a request for a topic that is being moved.
pub fn moving(topic: &str, to: u64) -> CmdError {
    CmdError::new(
        ErrorCode::Unavailable,
        format!("topic {topic:?} is moving to queue group {to}; retry"),
    )
    .with_details(serde_json::json!({ "moving": { "group": to } }))
}

impl StateData {
    /// Why this group does not serve `cmd` on `topic` now, if it does not.
    pub(super) fn handoff_refusal(&self, topic: &str, cmd: &Command) -> Option<CmdError> {
        let h = &self.handoff;
        if h.frozen.is_empty() && h.gone.is_empty() && h.begun.is_none() {
            return None;
        }
        let base = route_name(topic);
        if let Some(&to) = h.frozen.get(base) {
            return Some(moving(topic, to));
        }
        if let Some(refused) = self.moved_away(topic) {
            return Some(refused);
        }
        let (_, me, target) = h.begun.as_ref()?;
        // A topic here, or its dead letters' topic (`T.dlq` of a `T` here),
        // is this group's until its move freezes it.
        if self.queues.get(topic).is_some() || self.queues.get(base).is_some() || !creates(cmd) {
            return None;
        }
        let to = target.group_of(base);
        (to != *me).then(|| moving(topic, to))
    }

    /// Why a request for `topic` cannot be served here any more, if it is
    /// frozen for a move or gone: a long poll here would wait in vain.
    pub fn leaving(&self, topic: &str) -> Option<CmdError> {
        if let Some(&to) = self.handoff.frozen.get(route_name(topic)) {
            return Some(moving(topic, to));
        }
        self.moved_away(topic)
    }

    /// The refusal of a request for a topic that moved to another group.
    pub fn moved_away(&self, topic: &str) -> Option<CmdError> {
        let &(group, epoch) = self.handoff.gone.get(route_name(topic))?;
        Some(
            CmdError::new(
                ErrorCode::Unavailable,
                format!("topic {topic:?} moved to queue group {group}; retry"),
            )
            .with_details(serde_json::json!({ "moved": { "group": group, "epoch": epoch } })),
        )
    }

    /// The next moment a tick has work, leaving frozen topics alone.
    pub fn next_queue_deadline(&self) -> Option<u64> {
        let frozen = &self.handoff.frozen;
        self.queues
            .next_deadline_except(|n| frozen.contains_key(route_name(n)))
    }

    pub(super) fn queue_tick(&mut self) {
        let frozen = &self.handoff.frozen;
        self.queues
            .tick_except(self.now_ms, |n| frozen.contains_key(route_name(n)));
    }

    pub(super) fn handoff(&mut self, step: HandoffStep) -> Result<CmdValue, CmdError> {
        let h = &mut self.handoff;
        match step {
            HandoffStep::Begin { job, group, target } => {
                if let Err(e) = target.validate() {
                    return Err(CmdError::new(ErrorCode::InvalidArgument, e.to_string()));
                }
                // A deposed driver's late step never undoes a newer job's.
                if h.begun.as_ref().is_some_and(|(j, _, _)| *j > job) {
                    return Ok(CmdValue::Count(0));
                }
                h.begun = Some((job, group, target));
            }
            HandoffStep::Freeze { topic, to, .. } => {
                if h.gone.contains_key(&topic) {
                    return Ok(CmdValue::Count(0));
                }
                h.frozen.insert(topic, to);
            }
            HandoffStep::ImportPart {
                job,
                topic,
                seq,
                attempt,
                page,
            } => {
                if page.len() > MAX_PAGE {
                    return Err(CmdError::new(
                        ErrorCode::InvalidArgument,
                        format!("an import page holds at most {MAX_PAGE} bytes"),
                    ));
                }
                let parts: Vec<TopicPart> = bincode::deserialize(&page).map_err(|e| {
                    CmdError::new(
                        ErrorCode::InvalidArgument,
                        format!("import page {seq} of {topic:?} cannot be decoded: {e}"),
                    )
                })?;
                if seq == 0 {
                    let stage = Stage {
                        job,
                        attempt,
                        ..Default::default()
                    };
                    h.staged.insert(topic.clone(), stage);
                }
                let Some(stage) = h.staged.get_mut(&topic) else {
                    return Err(conflict(format!("no import of {topic:?} is staged")));
                };
                if stage.job != job || stage.attempt != attempt || seq > stage.next {
                    return Err(conflict(format!(
                        "import of {topic:?}: page {seq} of job {job} (attempt {attempt}), \
                         expected page {} of job {} (attempt {})",
                        stage.next, stage.job, stage.attempt
                    )));
                }
                if seq == stage.next {
                    parts.into_iter().for_each(|p| stage.staging.absorb(p));
                    stage.next += 1;
                }
            }
            HandoffStep::ImportCommit {
                job,
                topic,
                revision,
                attempt,
                pages,
            } => {
                if h.imported.get(&topic) == Some(&job) {
                    // Copied again after a crash: the first copy stands.
                    if h.staged.get(&topic).is_some_and(|s| s.attempt == attempt) {
                        h.staged.remove(&topic);
                    }
                    return Ok(CmdValue::Count(0));
                }
                let Some(stage) = h.staged.get(&topic) else {
                    return Err(conflict(format!("no import of {topic:?} is staged")));
                };
                if stage.job != job || stage.attempt != attempt || stage.next != pages {
                    return Err(conflict(format!(
                        "the import of {topic:?} staged is {} page(s) of job {} (attempt {}), \
                         not {pages} of job {job} (attempt {attempt})",
                        stage.next, stage.job, stage.attempt
                    )));
                }
                let stage = h.staged.remove(&topic).expect("checked above");
                let held = stage.staging.held() as u64;
                self.queues.install(stage.staging.topics);
                let h = &mut self.handoff;
                h.gone.remove(&topic);
                h.frozen.remove(&topic);
                h.imported.insert(topic, job);
                self.revision = self.revision.max(revision);
                return Ok(CmdValue::Count(held));
            }
            HandoffStep::Drop {
                topic, to, epoch, ..
            } => {
                if h.gone.get(&topic).is_some_and(|(g, _)| *g == to) {
                    return Ok(CmdValue::Count(0));
                }
                if h.frozen.get(&topic) != Some(&to) {
                    return Err(conflict(format!(
                        "topic {topic:?} is not frozen for a move to group {to}"
                    )));
                }
                h.frozen.remove(&topic);
                h.imported.remove(&topic);
                h.gone.insert(topic.clone(), (to, epoch));
                let removed = self.queues.remove_route(&topic);
                return Ok(CmdValue::Count(removed as u64));
            }
        }
        Ok(CmdValue::Done)
    }
}

/// Whether `cmd` would create its topic where it does not exist.
fn creates(cmd: &Command) -> bool {
    match cmd {
        Command::Once(Once { cmd, .. }) => creates(cmd),
        Command::QueueEnqueue(QueueEnqueue { .. })
        | Command::QueueConfigure(QueueConfigure { .. })
        | Command::QueueRedrive(QueueRedrive { .. })
        // Not a creation, but a long poll here would wait on a topic that
        // is about to be created elsewhere.
        | Command::QueueConsume(QueueConsume { .. }) => true,
        _ => false,
    }
}

#[cfg(test)]
#[path = "handoff_tests.rs"]
mod tests;
