//! Membership changes and the status report.

use std::collections::BTreeSet;

use dsync_api::types::{MemberKind, MemberStatus, NodeStatus, PeerStatus};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};

use super::{ForwardReply, ForwardRequest, Node};
use crate::error::{Error, Result};

pub(super) fn membership_err(e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> Error {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            Error::Unavailable("leadership moved; retry".into())
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            Error::Unavailable(format!("membership change refused for now: {c}"))
        }
        other => Error::Unavailable(other.to_string()),
    }
}

impl Node {
    /// The voters' ids, as this node sees the membership.
    pub fn voter_ids(&self) -> Vec<u64> {
        let m = self.control.raft.metrics();
        let m = m.borrow();
        m.membership_config.membership().voter_ids().collect()
    }

    /// Current members as this node sees them; match indexes on the leader.
    pub fn members(&self) -> Vec<MemberStatus> {
        let m = self.control.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, node)| MemberStatus {
                id: *id,
                addr: node.addr.clone(),
                kind: if voters.contains(id) {
                    MemberKind::Voter
                } else {
                    MemberKind::Learner
                },
                match_index: m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id))
                    .map(|l| l.map_or(0, |l| l.index)),
            })
            .collect()
    }

    pub fn is_voter(&self) -> bool {
        self.control
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == self.id)
    }

    /// Adds a node as a learner and, if asked, promotes it to voter once it
    /// has caught up. Runs on the leader; followers forward it.
    pub async fn join(&self, id: u64, addr: String, voter: bool) -> Result<Vec<MemberStatus>> {
        validate_member(id, &addr)?;
        match self.leader() {
            Some((leader, _)) if leader == self.id => self.join_local(id, addr, voter).await,
            Some((leader, leader_addr)) => self
                .forward(
                    leader,
                    &leader_addr,
                    &ForwardRequest::Join { id, addr, voter },
                )
                .await
                .and_then(ForwardReply::members),
            None => Err(Error::Unavailable("no leader is elected yet".into())),
        }
    }

    pub(super) async fn join_local(
        &self,
        id: u64,
        addr: String,
        voter: bool,
    ) -> Result<Vec<MemberStatus>> {
        validate_member(id, &addr)?;
        self.refuse_while_handing_off()?;
        let existing = self.members().into_iter().find(|m| m.id == id);
        if let Some(m) = &existing {
            if m.addr != addr {
                return Err(Error::InvalidArgument(format!(
                    "node {id} is already a member at {}; remove it before re-adding it at {addr}",
                    m.addr
                )));
            }
        }
        if existing.is_none() {
            // Blocks until the learner has caught up, so promotion is quick.
            self.control
                .raft
                .add_learner(id, BasicNode::new(addr), true)
                .await
                .map_err(membership_err)?;
        }
        let is_voter = existing.is_some_and(|m| m.kind == MemberKind::Voter);
        if voter && !is_voter {
            self.control
                .raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                .await
                .map_err(membership_err)?;
        }
        Ok(self.members())
    }

    pub fn status(&self) -> NodeStatus {
        let m = self.control.raft.metrics();
        let m = m.borrow();
        let role = crate::raft::role_of(m.state);
        let applied = m.last_applied.map_or(0, |l| l.index);
        let commit = (self.control.series.commit_index.get().max(0) as u64).max(applied);
        let mut status = NodeStatus {
            id: self.id,
            addr: self.addr.clone(),
            version: crate::version().to_string(),
            protocol: dsync_api::PROTOCOL_VERSION,
            role,
            term: m.current_term,
            leader: m.current_leader,
            last_index: m.last_log_index.unwrap_or(0),
            commit_index: commit,
            applied_index: applied,
            snapshot_index: m.snapshot.map_or(0, |l| l.index),
            millis_since_quorum_ack: m.millis_since_quorum_ack,
            members: {
                drop(m);
                self.members()
            },
            peers: Vec::new(),
        };
        status.peers = self.peer_breakers(&status.members);
        status
    }

    /// This node's breaker for each of `members` other than itself.
    pub fn peer_breakers(&self, members: &[MemberStatus]) -> Vec<PeerStatus> {
        let peers: Vec<u64> = members
            .iter()
            .map(|m| m.id)
            .filter(|&id| id != self.id)
            .collect();
        self.breakers.states(&peers)
    }
}

fn validate_member(id: u64, addr: &str) -> Result<()> {
    if id == 0 {
        return Err(Error::InvalidArgument("member id must be > 0".into()));
    }
    if addr.is_empty()
        || addr.len() > dsync_api::types::MAX_MEMBER_ADDR
        || addr.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(Error::InvalidArgument(format!(
            "member address {addr:?} is not a host:port"
        )));
    }
    Ok(())
}
