//! Queue requests by topic: served by the group that holds the topic, on
//! its leader, reached in one hop from any node (DESIGN.md §2a).

use std::time::Duration;

use dsync_api::queue::{ConsumeRequest, TopicStats};
use dsync_api::routes;
use dsync_api::shards::{GroupStatus, CONTROL_GROUP};
use serde::{Deserialize, Serialize};

use super::forward::{forward_failed, ForwardReply, ForwardRequest, FORWARD_TIMEOUT};
use super::Node;
use crate::error::{Error, Result};
use crate::groups::GroupError;
use crate::raft::network::{post_bincode, PeerError};
use crate::raft::snapshot::SnapshotFile;
use crate::state::queue::InFlight;
use crate::state::{CmdError, CmdValue, Command, Proposal};

/// A queue request for the leader of a queue group. Peer wire format: new
/// variants go last.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum GroupRequest {
    Write(Command),
    Consume {
        topic: String,
        consumer: String,
        max: usize,
        visibility_ms: Option<u64>,
        wait_ms: u64,
    },
    /// JSON `Option<TopicStats>` after a ReadIndex round.
    Stats {
        topic: String,
    },
    /// JSON `Vec<TopicStats>` after a ReadIndex round.
    AllStats {
        limit: usize,
    },
    /// JSON `GroupStatus`, with the leader's match indexes.
    Status,
    /// To a replica, from the leader handing the group off: campaign now.
    Elect,
    /// The group's state at a linearizable point, as an encoded snapshot
    /// (for a backup).
    Snapshot,
    /// Hand the group's leadership to `to` (default: the most caught-up
    /// other voter); answered with the new leader as a `Count`.
    Transfer {
        to: Option<u64>,
    },
    /// Change the group's replicas (a replica move).
    Members(super::group_members::MemberChange),
    /// JSON `Vec<String>`: the route names of the group's topics, after a
    /// ReadIndex round (a reshard's plan).
    Topics,
    /// Parts `from..` of a frozen topic (a reshard's copy), as `Export`.
    Export {
        topic: String,
        from: usize,
    },
}

impl GroupRequest {
    /// Whether it may change the group's state (so a lost answer leaves
    /// the outcome unknown).
    fn writes(&self) -> bool {
        matches!(self, GroupRequest::Write(_) | GroupRequest::Consume { .. })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum GroupReply {
    Value(CmdValue),
    Delivered(Vec<InFlight>),
    Json(String),
    /// Not the group's leader here: the leader this node knows, if any.
    Moved {
        leader: Option<(u64, String)>,
    },
    /// An encoded `SnapshotFile`.
    Snapshot(Vec<u8>),
    /// A page of a frozen topic (bincode of its parts, passed on to the
    /// target unopened), where the next page starts, and the group's
    /// revision.
    Export {
        #[serde(with = "serde_bytes")]
        page: Vec<u8>,
        next: Option<usize>,
        revision: u64,
    },
}

/// Forwarding attempts before a client sees 503: each one follows the
/// leader the last answer named, or tries the next replica.
const ATTEMPTS: usize = 5;

impl Node {
    /// Applies a queue command on the group that holds `topic`.
    /// [`queue_write`](Self::queue_write) of a client command, its answer typed.
    pub async fn propose_for_topic<A>(&self, topic: &str, p: Proposal<A>) -> Result<A> {
        let (cmd, answer) = p.split();
        Ok(answer.read(self.queue_write(topic, cmd).await?)?)
    }

    pub async fn queue_write(&self, topic: &str, cmd: Command) -> Result<CmdValue> {
        self.detoured(topic, |group| {
            let cmd = cmd.clone();
            async move {
                if group == CONTROL_GROUP {
                    return self.write(cmd).await;
                }
                self.group_call(group, GroupRequest::Write(cmd))
                    .await?
                    .value()
            }
        })
        .await
    }

    /// Delivers up to `req.max` messages of `topic`, long-polling on the
    /// leader of its group.
    pub async fn queue_consume_routed(
        &self,
        topic: String,
        req: ConsumeRequest,
    ) -> Result<Vec<InFlight>> {
        self.detoured(&topic, |group| {
            let (topic, req) = (topic.clone(), req.clone());
            async move {
                if group == CONTROL_GROUP {
                    return self.queue_consume(topic, req).await;
                }
                let call = GroupRequest::Consume {
                    topic,
                    consumer: req.consumer,
                    max: req.max,
                    visibility_ms: req.visibility_ms,
                    wait_ms: req.wait_ms,
                };
                self.group_call(group, call).await?.delivered()
            }
        })
        .await
    }

    /// The stats of a topic in a queue group (linearizable), or `None` if
    /// the topic lives in the control group (the caller reads it there).
    pub async fn group_topic_stats(&self, topic: &str) -> Result<Option<Option<TopicStats>>> {
        self.detoured(topic, |group| async move {
            if group == CONTROL_GROUP {
                return Ok(None);
            }
            let req = GroupRequest::Stats {
                topic: topic.into(),
            };
            self.group_call(group, req).await?.json().map(Some)
        })
        .await
    }

    /// The stats of the topics of every queue group, in topic order, at
    /// most `limit`.
    pub async fn groups_all_stats(&self, limit: usize) -> Result<Vec<TopicStats>> {
        let routing = self.groups.routing();
        let ids = routing.group_ids();
        let calls = ids
            .iter()
            .map(|&id| self.group_call(id, GroupRequest::AllStats { limit }));
        let mut all = Vec::new();
        for (id, reply) in ids.iter().zip(futures::future::join_all(calls).await) {
            // A topic halfway through a move is in two groups: the one
            // its route names speaks for it.
            let stats: Vec<TopicStats> = reply?.json()?;
            all.extend(
                stats
                    .into_iter()
                    .filter(|s| routing.group_of(&s.topic) == *id),
            );
        }
        all.sort_by(|a, b| a.topic.cmp(&b.topic));
        all.truncate(limit);
        Ok(all)
    }

    /// Queue group `id`'s state at a linearizable point, from its leader.
    pub async fn group_snapshot(&self, id: u64) -> Result<SnapshotFile> {
        let bytes = self
            .group_call(id, GroupRequest::Snapshot)
            .await?
            .snapshot()?;
        SnapshotFile::decode(&bytes, &format!("queue group {id}'s snapshot"))
    }

    /// Queue group `id` as its leader sees it.
    pub async fn group_status(&self, id: u64) -> Result<GroupStatus> {
        self.group_call(id, GroupRequest::Status).await?.json()
    }

    /// Sends `req` to the leader of queue group `id`, serving it here when
    /// this node leads the group.
    pub(crate) async fn group_call(&self, id: u64, req: GroupRequest) -> Result<GroupReply> {
        let replicas = self.groups.routing().replicas(id).to_vec();
        if replicas.is_empty() {
            return Err(Error::Unavailable(format!(
                "queue group {id} is not in this node's shard map yet; retry"
            )));
        }
        let mut next: Option<(u64, String)> = None;
        let mut last = String::from("no replica answered");
        for attempt in 0..ATTEMPTS {
            let local = self.groups.get(id);
            if let Some(group) = &local {
                if group.leads(self.id) {
                    match self.serve_group(group, req.clone()).await {
                        Err(GroupError::NotLeader(l)) => {
                            next = l;
                            continue;
                        }
                        other => return other.map_err(refused),
                    }
                }
            }
            let to = next
                .take()
                .filter(|(n, _)| *n != self.id)
                .or_else(|| local.as_ref().and_then(|g| g.leader()))
                .filter(|(n, _)| *n != self.id)
                .or_else(|| self.groups.hint(id))
                .or_else(|| {
                    let n = replicas[attempt % replicas.len()];
                    (n != self.id).then(|| self.member_addr(n).map(|a| (n, a)))?
                });
            let Some((to, addr)) = to else {
                // Only this node, which does not lead: an election is on.
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                continue;
            };
            match self.send_group(to, &addr, id, &req).await {
                Ok(GroupReply::Moved { leader }) => {
                    self.groups.set_hint(id, None);
                    last = format!("node {to} does not lead group {id}");
                    if leader.is_none() {
                        tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                    }
                    next = leader;
                }
                Ok(reply) => {
                    self.groups.set_hint(id, Some((to, addr)));
                    return Ok(reply);
                }
                // Nothing was sent: another replica may lead.
                Err(SendError::Unreachable(e)) => {
                    self.groups.set_hint(id, None);
                    last = e;
                }
                Err(SendError::Failed(e)) => return Err(e),
            }
        }
        Err(Error::Unavailable(format!(
            "queue group {id} has no reachable leader ({last}); retry"
        )))
    }

    async fn send_group(
        &self,
        to: u64,
        addr: &str,
        id: u64,
        req: &GroupRequest,
    ) -> std::result::Result<GroupReply, SendError> {
        self.metrics.forwarded.inc();
        let wait = match req {
            GroupRequest::Consume { wait_ms, .. } => Duration::from_millis(*wait_ms),
            _ => Duration::ZERO,
        };
        let body = ForwardRequest::Group(id, req.clone());
        let reply: std::result::Result<ForwardReply, CmdError> = post_bincode(
            &self.peers,
            &self.breakers,
            (to, addr),
            routes::RAFT_FORWARD,
            &body,
            FORWARD_TIMEOUT + wait,
        )
        .await
        .map_err(|e| match e {
            PeerError::Unreachable(..) => SendError::Unreachable(e.to_string()),
            _ => SendError::Failed(forward_failed(&e, req.writes())),
        })?;
        match reply {
            Ok(r) => r.group().map_err(SendError::Failed),
            Err(e) => Err(SendError::Failed(Error::Api(e.to_api()))),
        }
    }

    /// [`send_group`](Self::send_group) with the failure as text.
    pub(super) async fn send_group_raw(
        &self,
        to: u64,
        addr: &str,
        id: u64,
        req: &GroupRequest,
    ) -> std::result::Result<GroupReply, String> {
        self.send_group(to, addr, id, req)
            .await
            .map_err(|e| match e {
                SendError::Unreachable(e) => e,
                SendError::Failed(e) => e.to_string(),
            })
    }
}

enum SendError {
    Unreachable(String),
    Failed(Error),
}

fn refused(e: GroupError) -> Error {
    match e {
        GroupError::Refused(e) => e,
        GroupError::NotLeader(_) => Error::Unavailable("group leadership moved; retry".into()),
    }
}

pub(super) fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// What each kind of request is answered with, taken out of the reply: the
/// one place a reply of another kind (a bug) is met.
impl GroupReply {
    fn unexpected(self) -> Error {
        Error::Internal(format!("unexpected group reply {self:?}"))
    }

    /// The answer to a `Write`, `Elect` or `Transfer`.
    pub(super) fn value(self) -> Result<CmdValue> {
        match self {
            GroupReply::Value(v) => Ok(v),
            other => Err(other.unexpected()),
        }
    }

    fn delivered(self) -> Result<Vec<InFlight>> {
        match self {
            GroupReply::Delivered(v) => Ok(v),
            other => Err(other.unexpected()),
        }
    }

    /// The answer to `Stats`, `AllStats`, `Status` or `Topics`.
    pub(super) fn json<T: serde::de::DeserializeOwned>(self) -> Result<T> {
        match self {
            GroupReply::Json(s) => serde_json::from_str(&s)
                .map_err(|e| Error::Internal(format!("bad JSON from a group leader: {e}"))),
            other => Err(other.unexpected()),
        }
    }

    fn snapshot(self) -> Result<Vec<u8>> {
        match self {
            GroupReply::Snapshot(bytes) => Ok(bytes),
            other => Err(other.unexpected()),
        }
    }

    /// The answer to `Export`: the page, where the next starts, the
    /// source's revision.
    pub(super) fn export(self) -> Result<(Vec<u8>, Option<usize>, u64)> {
        match self {
            GroupReply::Export {
                page,
                next,
                revision,
            } => Ok((page, next, revision)),
            other => Err(other.unexpected()),
        }
    }
}
