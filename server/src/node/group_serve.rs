//! Serving a queue group's requests on its leader: writes (after the
//! node's queue bounds), long-poll consumes, reads and snapshots.

use std::sync::atomic::Ordering;

use dsync_api::queue::ConsumeRequest;

use super::forward::{cmd_err, ForwardReply};
use super::routed::{to_json, GroupReply, GroupRequest};
use super::Node;
use crate::auth::limits::{rate_limited, room_for_new};
use crate::error::{Error, Result};
use crate::groups::{group_status, Group, GroupError};
use crate::proposer::now_ms;
use crate::raft::snapshot::SnapshotFile;
use crate::raft::SnapshotMeta;
use crate::state::{CmdError, CmdValue, Command};
use crate::state::{Once, QueueConfigure, QueueEnqueue};

/// Bytes of topic state per page of a reshard's copy: one Raft entry in
/// the target each. openraft gives an AppendEntries of up to 8 entries one
/// heartbeat (50 ms) to be sent, written and answered, or sends it again,
/// unchanged: 1 MiB pages stalled the copy for good in a debug build.
const EXPORT_PAGE: usize = 256 * 1024;

impl Node {
    /// Serves a request forwarded to this node for queue group `id`.
    pub(super) async fn handle_group(
        &self,
        id: u64,
        req: GroupRequest,
    ) -> std::result::Result<ForwardReply, CmdError> {
        let Some(group) = self.groups.get(id) else {
            return Ok(ForwardReply::Group(GroupReply::Moved {
                leader: self.groups.hint(id),
            }));
        };
        if let GroupRequest::Elect = req {
            return match group.raft.trigger().elect().await {
                Ok(()) => Ok(ForwardReply::Group(GroupReply::Value(CmdValue::Done))),
                Err(e) => Err(cmd_err(Error::Unavailable(format!(
                    "cannot start an election in group {id}: {e}"
                )))),
            };
        }
        match self.serve_group(&group, req).await {
            Ok(r) => Ok(ForwardReply::Group(r)),
            Err(GroupError::NotLeader(leader)) => {
                Ok(ForwardReply::Group(GroupReply::Moved { leader }))
            }
            Err(GroupError::Refused(e)) => Err(cmd_err(e)),
        }
    }

    /// Serves `req` on this node, the group's leader.
    pub(super) async fn serve_group(
        &self,
        group: &Group,
        req: GroupRequest,
    ) -> std::result::Result<GroupReply, GroupError> {
        if !group.leads(self.id) || group.handing_off.load(Ordering::SeqCst) {
            return Err(GroupError::NotLeader(group.leader()));
        }
        match req {
            GroupRequest::Write(cmd) => {
                self.admit(group, &cmd).map_err(GroupError::Refused)?;
                group.propose(cmd).await.map(GroupReply::Value)
            }
            GroupRequest::Consume {
                topic,
                consumer,
                max,
                visibility_ms,
                wait_ms,
            } => {
                let req = ConsumeRequest {
                    consumer,
                    max,
                    visibility_ms,
                    wait_ms,
                };
                super::queue::consume_on(&group.sm, topic, req, |cmd| group.propose(cmd))
                    .await
                    .map(GroupReply::Delivered)
            }
            GroupRequest::Stats { topic } => {
                group.read_index().await?;
                let st = group.sm.read();
                if let Some(moved) = st.data.moved_away(&topic) {
                    return Err(GroupError::Refused(Error::Api(moved.to_api())));
                }
                let stats = st.data.queues.stats(&topic, now_ms());
                Ok(GroupReply::Json(to_json(&stats)))
            }
            GroupRequest::AllStats { limit } => {
                group.read_index().await?;
                let stats = group.sm.read().data.queues.all_stats(now_ms(), limit);
                Ok(GroupReply::Json(to_json(&stats)))
            }
            GroupRequest::Elect => Ok(GroupReply::Value(CmdValue::Done)),
            GroupRequest::Transfer { to } => {
                let leader = self.transfer_group(group, to).await?;
                Ok(GroupReply::Value(CmdValue::Count(leader)))
            }
            GroupRequest::Snapshot => {
                group.read_index().await?;
                let snap = {
                    let st = group.sm.read();
                    let last = st.last_applied;
                    SnapshotFile {
                        meta: SnapshotMeta {
                            last_log_id: last,
                            last_membership: st.membership.clone(),
                            snapshot_id: format!(
                                "backup-g{}-{}",
                                group.id,
                                last.map_or(0, |l| l.index)
                            ),
                        },
                        data: st.data.clone(),
                    }
                };
                Ok(GroupReply::Snapshot(snap.encode()?))
            }
            GroupRequest::Members(change) => {
                self.change_members(group, change).await?;
                Ok(GroupReply::Value(CmdValue::Done))
            }
            GroupRequest::Topics => {
                group.read_index().await?;
                let names = group.sm.read().data.queues.route_names();
                Ok(GroupReply::Json(to_json(&names)))
            }
            GroupRequest::Export { topic, from } => {
                // No ReadIndex round: nothing changes a frozen topic, so
                // every replica that applied the freeze holds its final
                // state.
                let st = group.sm.read();
                if !st.data.handoff.frozen.contains_key(&topic) {
                    return Err(GroupError::Refused(Error::Api(dsync_api::ApiError::new(
                        dsync_api::ErrorCode::Conflict,
                        format!("topic {topic:?} is not frozen in group {}", group.id),
                    ))));
                }
                let (parts, next) = st.data.queues.export_page(&topic, from, EXPORT_PAGE);
                let page = bincode::serialize(&parts)
                    .map_err(|e| Error::Internal(format!("encode an export page: {e}")))?;
                Ok(GroupReply::Export {
                    page,
                    next,
                    revision: st.data.revision,
                })
            }
            GroupRequest::Status => Ok(GroupReply::Json(to_json(&group_status(
                group.id,
                &group.raft,
                &group.sm,
                true,
            )))),
        }
    }

    /// The node's queue bounds, checked on the group's leader, which has
    /// the newest view of its group's tables.
    fn admit(&self, group: &Group, cmd: &Command) -> Result<()> {
        let (topic, new_msgs) = match unwrap_once(cmd) {
            Command::QueueEnqueue(QueueEnqueue { topic, msgs }) => (topic, msgs.len()),
            Command::QueueConfigure(QueueConfigure { topic, .. }) => (topic, 0),
            _ => return Ok(()),
        };
        let limits = &self.security.limits.config;
        let st = group.sm.read();
        let q = &st.data.queues;
        room_for_new(
            "topics",
            "max_topics",
            q.get(topic).is_some(),
            q.topic_count(),
            limits.max_topics,
        )
        .map_err(Error::Api)?;
        let held = q.held();
        if new_msgs > 0 && held.saturating_add(new_msgs) > limits.max_queued_messages {
            return Err(Error::Api(rate_limited(format!(
                "queue group {} holds {held} messages and {} more would pass the limit of {}; \
                 consume and ack, then retry",
                group.id, new_msgs, limits.max_queued_messages
            ))));
        }
        Ok(())
    }
}

fn unwrap_once(cmd: &Command) -> &Command {
    match cmd {
        Command::Once(Once { cmd, .. }) => unwrap_once(cmd),
        c => c,
    }
}
