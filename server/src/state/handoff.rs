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
    /// Imports under way: route name → (job, next part, staged topics).
    pub staged: BTreeMap<String, (u64, u64, Staging)>,
    /// Route names installed here → the job that brought them, so a
    /// repeated commit changes nothing.
    pub imported: BTreeMap<String, u64>,
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
        #[serde(with = "serde_bytes")]
        page: Vec<u8>,
    },
    /// Installs the staged topics; `revision` is the source's, so receipts
    /// issued from here on never repeat one issued there.
    ImportCommit {
        job: u64,
        topic: String,
        revision: u64,
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
        if self.queues.get(topic).is_some() || !creates(cmd) {
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
                    h.staged.insert(topic.clone(), (job, 0, Staging::default()));
                }
                let Some((j, next, staging)) = h.staged.get_mut(&topic) else {
                    return Err(conflict(format!("no import of {topic:?} is staged")));
                };
                if *j != job || seq > *next {
                    return Err(conflict(format!(
                        "import of {topic:?}: part {seq} of job {job}, expected {next} of job {j}"
                    )));
                }
                if seq == *next {
                    parts.into_iter().for_each(|p| staging.absorb(p));
                    *next += 1;
                }
            }
            HandoffStep::ImportCommit {
                job,
                topic,
                revision,
            } => {
                if h.imported.get(&topic) == Some(&job) {
                    // Copied again after a crash: the first copy stands.
                    h.staged.remove(&topic);
                    return Ok(CmdValue::Count(0));
                }
                let Some((j, _, staging)) = h.staged.get(&topic) else {
                    return Err(conflict(format!("no import of {topic:?} is staged")));
                };
                if *j != job {
                    return Err(conflict(format!(
                        "the import of {topic:?} staged is job {j}'s, not {job}'s"
                    )));
                }
                let held = staging.held() as u64;
                let (_, _, staging) = h.staged.remove(&topic).expect("checked above");
                self.queues.install(staging.topics);
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
        Command::Once { cmd, .. } => creates(cmd),
        Command::QueueEnqueue { .. }
        | Command::QueueConfigure { .. }
        | Command::QueueRedrive { .. }
        // Not a creation, but a long poll here would wait on a topic that
        // is about to be created elsewhere.
        | Command::QueueConsume { .. } => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::state::queue::Incoming;
    use crate::state::Request;

    use super::*;

    fn apply(st: &mut StateData, cmd: Command) -> Result<CmdValue, CmdError> {
        let mut out = st.apply(Request {
            now_ms: 1_000,
            cmds: vec![cmd],
        });
        out.0.remove(0)
    }

    fn enqueue(topic: &str) -> Command {
        Command::QueueEnqueue {
            topic: topic.into(),
            msgs: vec![Incoming {
                payload: "1".into(),
                delay_ms: 0,
                dedup_id: None,
            }],
        }
    }

    fn step(step: HandoffStep) -> Command {
        Command::Handoff { step }
    }

    fn details(e: CmdError) -> serde_json::Value {
        serde_json::from_str(e.details.as_deref().unwrap_or("null")).unwrap()
    }

    #[test]
    fn a_topic_moves_whole_and_its_old_group_sends_writers_on() {
        let (mut src, mut dst) = (StateData::default(), StateData::default());
        for _ in 0..3 {
            apply(&mut src, enqueue("t")).unwrap();
        }
        let freeze = HandoffStep::Freeze {
            job: 1,
            topic: "t".into(),
            to: 2,
        };
        apply(&mut src, step(freeze.clone())).unwrap();
        apply(&mut src, step(freeze)).unwrap();
        let e = apply(&mut src, enqueue("t")).unwrap_err();
        assert_eq!(details(e)["moving"]["group"], 2);
        let e = apply(&mut src, enqueue("t.dlq")).unwrap_err();
        assert!(
            details(e).get("moving").is_some(),
            "dead letters freeze too"
        );

        let (parts, next) = src.queues.export_page("t", 0, 1 << 20);
        assert!(next.is_none());
        let page = bincode::serialize(&parts).unwrap();
        let part = |seq| {
            step(HandoffStep::ImportPart {
                job: 1,
                topic: "t".into(),
                seq,
                page: page.clone(),
            })
        };
        apply(&mut dst, part(0)).unwrap();
        apply(&mut dst, part(0)).unwrap(); // starts over: still one copy
        apply(&mut dst, part(1)).unwrap();
        apply(&mut dst, part(1)).unwrap(); // a repeat changes nothing
        assert!(apply(&mut dst, part(3)).is_err(), "a gap is refused");
        let commit = step(HandoffStep::ImportCommit {
            job: 1,
            topic: "t".into(),
            revision: 500,
        });
        // Part 1 carried part 0's messages again: the same ids, one copy.
        assert_eq!(apply(&mut dst, commit.clone()).unwrap(), CmdValue::Count(3));
        assert_eq!(apply(&mut dst, commit).unwrap(), CmdValue::Count(0));
        assert_eq!(dst.queues.get("t"), src.queues.get("t"));
        assert!(dst.revision >= 500);

        apply(
            &mut src,
            step(HandoffStep::Drop {
                job: 1,
                topic: "t".into(),
                to: 2,
                epoch: 9,
            }),
        )
        .unwrap();
        assert!(src.queues.get("t").is_none());
        let e = apply(&mut src, enqueue("t")).unwrap_err();
        assert_eq!(details(e)["moved"]["epoch"], 9);
        assert!(src.queues.get("t").is_none(), "not created again");
    }

    #[test]
    fn after_begin_new_topics_of_other_groups_wait() {
        let mut st = StateData::default();
        apply(&mut st, enqueue("old")).unwrap();
        let target = ShardMap::initial(&[1], 4, 1).unwrap();
        let mine = target.group_of("old");
        apply(
            &mut st,
            step(HandoffStep::Begin {
                job: 1,
                group: mine,
                target: target.clone(),
            }),
        )
        .unwrap();
        apply(&mut st, enqueue("old")).unwrap();
        let (here, elsewhere): (Vec<String>, Vec<String>) = (0..40)
            .map(|i| format!("new-{i}"))
            .partition(|t| target.group_of(t) == mine);
        assert!(!here.is_empty() && !elsewhere.is_empty());
        apply(&mut st, enqueue(&here[0])).unwrap();
        let e = apply(&mut st, enqueue(&elsewhere[0])).unwrap_err();
        assert!(details(e).get("moving").is_some());
    }

    #[test]
    fn a_frozen_topic_keeps_still_while_others_tick() {
        let mut st = StateData::default();
        apply(&mut st, enqueue("a")).unwrap();
        apply(&mut st, enqueue("b")).unwrap();
        for t in ["a", "b"] {
            apply(
                &mut st,
                Command::QueueConsume {
                    topic: t.into(),
                    consumer: "c".into(),
                    max: 1,
                    visibility_ms: Some(10),
                },
            )
            .unwrap();
        }
        apply(
            &mut st,
            step(HandoffStep::Freeze {
                job: 1,
                topic: "a".into(),
                to: 2,
            }),
        )
        .unwrap();
        let mut out = st.apply(Request {
            now_ms: 5_000,
            cmds: vec![Command::Tick],
        });
        out.0.remove(0).unwrap();
        assert_eq!(st.queues.ready_count("b"), 1, "b's delivery expired");
        assert_eq!(st.queues.ready_count("a"), 0, "a is frozen");
        assert!(st.next_queue_deadline().is_none_or(|d| d > 5_000));
    }
}
