//! A group's row of `GET /v1/shards`, from its Raft metrics and state.

use std::collections::BTreeSet;

use dsync_api::shards::{GroupStatus, ReplicaStatus};
use dsync_api::types::MemberKind;

use crate::raft::state_machine::SmShared;
use crate::raft::Raft;

/// Group `id` as this replica sees it; match indexes only on its leader.
pub fn group_status(id: u64, raft: &Raft, sm: &SmShared, holds_topics: bool) -> GroupStatus {
    let (leader, term, last_index, replicas) = {
        let m = raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let replicas = membership
            .nodes()
            .map(|(node, _)| ReplicaStatus {
                id: *node,
                kind: if voters.contains(node) {
                    MemberKind::Voter
                } else {
                    MemberKind::Learner
                },
                leader: m.current_leader == Some(*node),
                matched_index: m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(node))
                    .map(|l| l.map_or(0, |l| l.index)),
            })
            .collect();
        (
            m.current_leader,
            m.current_term,
            m.last_log_index.unwrap_or(0),
            replicas,
        )
    };
    let (topics, depth) = {
        let st = sm.read();
        let q = &st.data.queues;
        (q.topic_count() as u64, q.held() as u64)
    };
    GroupStatus {
        id,
        holds_topics,
        leader,
        term,
        last_index,
        replicas,
        topics,
        depth,
    }
}
