//! Changing a queue group's replica set on its leader: the Raft half of a
//! replica move (DESIGN.md §2a "Moves"). Each change is idempotent, so a
//! control leader that resumes a move after a crash may repeat it.

use std::collections::BTreeSet;

use openraft::{BasicNode, ChangeMembers};
use serde::{Deserialize, Serialize};

use super::membership::membership_err;
use super::Node;
use crate::error::Error;
use crate::groups::{Group, GroupError};

/// Peer wire format: new variants go last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MemberChange {
    /// Replicate to `id` as a learner (nothing if it is a member already).
    AddLearner { id: u64, addr: String },
    /// Make `voters` the group's voters, dropping every other member. The
    /// leader must be one of them: hand leadership off first.
    SetVoters { voters: Vec<u64> },
    /// Stop replicating to learner `id` (nothing if it is not a member).
    RemoveLearner { id: u64 },
}

impl Node {
    pub(super) async fn change_members(
        &self,
        group: &Group,
        change: MemberChange,
    ) -> Result<(), GroupError> {
        let (voters, members, joint) = {
            let m = group.raft.metrics();
            let m = m.borrow();
            let ms = m.membership_config.membership();
            let voters: BTreeSet<u64> = ms.voter_ids().collect();
            let members: BTreeSet<u64> = ms.nodes().map(|(id, _)| *id).collect();
            (voters, members, ms.get_joint_config().len() > 1)
        };
        let result = match change {
            MemberChange::AddLearner { id, addr } => {
                if members.contains(&id) {
                    return Ok(());
                }
                group
                    .raft
                    .add_learner(id, BasicNode::new(addr), false)
                    .await
            }
            MemberChange::SetVoters { voters: want } => {
                let want: BTreeSet<u64> = want.into_iter().collect();
                if want == voters && members == voters && !joint {
                    return Ok(());
                }
                if !want.contains(&self.id) {
                    return Err(GroupError::Refused(conflict(format!(
                        "node {} leads group {} and is not among its new voters; hand \
                         leadership off first",
                        self.id, group.id
                    ))));
                }
                if let Some(missing) = want.iter().find(|id| !members.contains(id)) {
                    return Err(GroupError::Refused(conflict(format!(
                        "node {missing} is not a replica of group {} yet; add it as a learner first",
                        group.id
                    ))));
                }
                group.raft.change_membership(want, false).await
            }
            MemberChange::RemoveLearner { id } => {
                if !members.contains(&id) {
                    return Ok(());
                }
                if voters.contains(&id) {
                    return Err(GroupError::Refused(conflict(format!(
                        "node {id} is a voter of group {}, not a learner",
                        group.id
                    ))));
                }
                let gone = BTreeSet::from([id]);
                group
                    .raft
                    .change_membership(ChangeMembers::RemoveNodes(gone), false)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(openraft::error::RaftError::APIError(
                openraft::error::ClientWriteError::ForwardToLeader(f),
            )) => Err(GroupError::NotLeader(
                f.leader_id.zip(f.leader_node.map(|n| n.addr)),
            )),
            Err(e) => Err(GroupError::Refused(membership_err(e))),
        }
    }
}

fn conflict(message: String) -> Error {
    Error::Api(dsync_api::ApiError::new(
        dsync_api::ErrorCode::Conflict,
        message,
    ))
}
