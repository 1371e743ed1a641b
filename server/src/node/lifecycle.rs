//! Operator actions on a running cluster: removing members, naming the
//! cluster, consistent backups and draining a node.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dsync_api::routes;
use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;

use super::{ForwardRequest, Node};
use crate::error::{Error, Result};
use crate::raft::network::{peer_error, peer_url, PeerError};
use crate::raft::snapshot::SnapshotFile;
use crate::raft::SnapshotMeta;
use crate::state::Command;
use crate::state::SetClusterId;

/// How long a remaining voter gets to answer `/health` before a removal
/// counts it as down.
const HEALTH_PROBE: Duration = Duration::from_secs(1);
/// A backup proxied from a follower may carry the whole state.
const BACKUP_PROXY_TIMEOUT: Duration = Duration::from_secs(120);

impl Node {
    /// Removes a member (voter or learner). Runs on the leader; followers
    /// forward it. Removing the leader itself works: it keeps leading until
    /// the new membership commits, then steps down and the rest elect.
    pub async fn remove_member(&self, id: u64) -> Result<Vec<dsync_api::types::MemberStatus>> {
        match self.leader() {
            Some((leader, _)) if leader == self.id => self.remove_local(id).await,
            Some((leader, addr)) => self
                .forward(leader, &addr, &ForwardRequest::Remove { id })
                .await
                .and_then(super::forward::ForwardReply::members),
            None => Err(Error::Unavailable("no leader is elected yet".into())),
        }
    }

    pub(super) async fn remove_local(
        &self,
        id: u64,
    ) -> Result<Vec<dsync_api::types::MemberStatus>> {
        let members = self.members();
        let Some(target) = members.iter().find(|m| m.id == id) else {
            return Err(Error::NotFound(format!("node {id} is not a member")));
        };
        let hosted: Vec<u64> = self
            .shard_map()
            .groups
            .iter()
            .filter(|g| g.replicas.contains(&id))
            .map(|g| g.id)
            .collect();
        if !hosted.is_empty() {
            // Its groups would lose a replica for good: moving replicas
            // (rebalancing) comes first.
            return Err(Error::Api(dsync_api::ApiError::new(
                dsync_api::ErrorCode::Conflict,
                format!(
                    "node {id} holds replicas of queue groups {hosted:?}, which cannot move \
                     yet; it stays a member"
                ),
            )));
        }
        let change = if target.kind == dsync_api::types::MemberKind::Voter {
            let remaining: Vec<_> = members
                .iter()
                .filter(|m| m.id != id && m.kind == dsync_api::types::MemberKind::Voter)
                .collect();
            if remaining.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "node {id} is the last voter; a cluster cannot remove all its voters"
                )));
            }
            let probes = remaining.iter().map(|m| self.answers_health(m.id, &m.addr));
            let healthy = futures::future::join_all(probes)
                .await
                .into_iter()
                .filter(|ok| *ok)
                .count();
            let quorum = remaining.len() / 2 + 1;
            if healthy < quorum {
                return Err(Error::Api(
                    dsync_api::ApiError::new(
                        dsync_api::ErrorCode::Conflict,
                        format!(
                            "removing node {id} would leave {} voters of which only {healthy} \
                             answer; a quorum of {quorum} must be healthy",
                            remaining.len()
                        ),
                    )
                    .with_detail("healthy", healthy)
                    .with_detail("quorum", quorum),
                ));
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        match self.control.raft.change_membership(change, false).await {
            Ok(_) => {}
            // The leader removed itself: the change committed, then it
            // stepped down before answering.
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))
                if !self.members().iter().any(|m| m.id == id) => {}
            Err(e) => return Err(super::membership::membership_err(e)),
        }
        tracing::info!(id, "removed member");
        Ok(self.members())
    }

    async fn answers_health(&self, id: u64, addr: &str) -> bool {
        if id == self.id {
            return true;
        }
        self.probe(id, addr, routes::HEALTH).await
    }

    /// Whether node `id` answers `/ready` with 200: not draining, and its
    /// groups led (a target for leadership).
    pub(super) async fn answers_ready(&self, id: u64, addr: &str) -> bool {
        if id == self.id {
            return !self.is_draining() && self.groups_unready().is_none();
        }
        self.probe(id, addr, routes::READY).await
    }

    async fn probe(&self, id: u64, addr: &str, path: &str) -> bool {
        let url = peer_url(addr, path);
        let probe = self.breakers.call(id, addr, async {
            let resp = self
                .peers
                .get(url)
                .timeout(HEALTH_PROBE)
                .send()
                .await
                .map_err(|e| peer_error(addr, &e))?;
            Ok(resp.status().is_success())
        });
        matches!(probe.await, Ok(true))
    }

    /// The replicated cluster id, if the cluster has one yet.
    pub fn cluster_id(&self) -> Option<String> {
        self.control.sm.read().data.cluster_id.clone()
    }

    /// On the leader: names the cluster if it has no name yet (clusters
    /// bootstrapped before ids existed get one on their first backup).
    pub async fn ensure_cluster_id(&self) -> Result<String> {
        if let Some(id) = self.cluster_id() {
            return Ok(id);
        }
        self.write(Command::SetClusterId(SetClusterId {
            id: crate::backup::new_cluster_id(),
        }))
        .await?;
        self.cluster_id()
            .ok_or_else(|| Error::Unavailable("the cluster id is not applied yet; retry".into()))
    }

    /// A backup file of the state at a linearizable point: taken on the
    /// leader after a ReadIndex round; a follower fetches it from the leader.
    pub async fn backup(&self) -> Result<Vec<u8>> {
        if !self.is_leader() {
            let (leader, addr) = self
                .leader()
                .ok_or_else(|| Error::Unavailable("no leader is elected yet".into()))?;
            let url = peer_url(&addr, routes::BACKUP);
            let fetch = self.breakers.call(leader, &addr, async {
                let resp = self
                    .peers
                    .get(url)
                    .timeout(BACKUP_PROXY_TIMEOUT)
                    .send()
                    .await
                    .map_err(|e| peer_error(&addr, &e))?;
                let status = resp.status();
                if !status.is_success() {
                    return Err(PeerError::Rejected(
                        addr.clone(),
                        status.as_u16(),
                        String::new(),
                    ));
                }
                resp.bytes().await.map_err(|e| peer_error(&addr, &e))
            });
            let bytes = fetch.await.map_err(|e| match e {
                PeerError::Rejected(_, status, _) => Error::Unavailable(format!(
                    "the leader refused the backup (HTTP {status}); retry"
                )),
                PeerError::Unreachable(..) => {
                    Error::Unavailable(format!("leader unreachable: {e}"))
                }
                PeerError::Network(..) | PeerError::TimedOut(..) => {
                    Error::Unavailable(format!("backup from the leader broke: {e}"))
                }
            })?;
            return Ok(bytes.to_vec());
        }
        self.ensure_cluster_id().await?;
        let index = self.local_read_index().await?;
        self.wait_applied(index).await?;
        let snapshot = {
            let st = self.control.sm.read();
            let last = st.last_applied;
            SnapshotFile {
                meta: SnapshotMeta {
                    last_log_id: last,
                    last_membership: st.membership.clone(),
                    snapshot_id: format!("backup-{}", last.map_or(0, |l| l.index)),
                },
                data: st.data.clone(),
            }
        };
        // Each queue group at a linearizable point of its own, taken after
        // the control group's (whose shard map lists them).
        let mut groups = Vec::new();
        for g in &snapshot.data.shards.groups {
            groups.push((g.id, self.group_snapshot(g.id).await?));
        }
        crate::backup::encode_with_groups(&snapshot, &groups, crate::proposer::now_ms())
    }

    /// Stops serving client requests here (503 with Retry-After, so clients
    /// move to another node). Peers' Raft traffic and forwarded requests
    /// still flow; a restart clears it.
    pub fn set_draining(&self, on: bool) {
        self.draining.store(on, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}
