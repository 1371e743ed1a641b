//! `GET /v1/shards`: the shard map with each group's live state.

use serde::{Deserialize, Serialize};

use super::ShardMap;
use crate::types::MemberKind;

/// Response header of a queue route: the group that holds the topic.
pub const HEADER_GROUP: &str = "x-dsync-group";

/// `POST /v1/shards` (admin): gives a cluster without queue groups its
/// first shard map. Changing the groups of a sharded cluster is resharding,
/// which this request refuses.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitShards {
    /// Queue groups to create, 1 to `MAX_GROUPS`.
    pub groups: u64,
    /// Replicas per group; default [`DEFAULT_REPLICAS`](super::DEFAULT_REPLICAS),
    /// fewer if the cluster has fewer voters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
}

/// One queue group's leadership in `POST /v1/shards/leaders` (balance).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMove {
    pub group: u64,
    /// Its leader before, if one was known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    /// Its preferred leader.
    pub to: u64,
    /// Whether leadership moved (false: already there, or `error`).
    pub moved: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /v1/shards`, as the answering node (`node`) sees it; the leader of
/// a group knows every replica's match index, a follower only its own.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardsStatus {
    pub node: u64,
    pub map: ShardMap,
    /// Every Raft group: the control group (0) first, then the queue
    /// groups of `map` in id order.
    pub groups: Vec<GroupStatus>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub id: u64,
    /// Whether topics live here: queue groups, or the control group of a
    /// map without queue groups.
    pub holds_topics: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<u64>,
    pub term: u64,
    /// The group's last log index, as the answering node knows it.
    pub last_index: u64,
    pub replicas: Vec<ReplicaStatus>,
    /// Topics held (dead-letter topics included), and their messages not
    /// yet acked (ready, delayed and in flight).
    pub topics: u64,
    pub depth: u64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub id: u64,
    pub kind: MemberKind,
    pub leader: bool,
    /// Last log index known to be replicated to it (on the leader's view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_index: Option<u64>,
}

impl ShardsStatus {
    /// The group holding `topic` under this map, and its live state.
    pub fn locate(&self, topic: &str) -> Option<&GroupStatus> {
        let id = self.map.group_of(topic);
        self.groups.iter().find(|g| g.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: u64) -> GroupStatus {
        GroupStatus {
            id,
            holds_topics: true,
            leader: Some(1),
            term: 2,
            last_index: 9,
            replicas: vec![],
            topics: 0,
            depth: 0,
        }
    }

    #[test]
    fn a_map_without_queue_groups_locates_every_topic_in_the_control_group() {
        let s = ShardsStatus {
            node: 1,
            map: ShardMap::default(),
            groups: vec![group(0)],
        };
        assert_eq!(s.locate("orders").map(|g| g.id), Some(0));
        assert_eq!(s.locate("").map(|g| g.id), Some(0));
    }

    #[test]
    fn locate_follows_the_ring() {
        let map = ShardMap::initial(&[1, 2, 3], 3, 3).unwrap();
        let s = ShardsStatus {
            node: 1,
            groups: (0..=3).map(group).collect(),
            map: map.clone(),
        };
        for t in ["a", "b", "orders", "jobs-17"] {
            assert_eq!(s.locate(t).map(|g| g.id), Some(map.group_of(t)));
        }
    }
}
