//! The shard map: the queue groups, their replicas and the epoch.

use serde::{Deserialize, Serialize};

use super::{place_balanced, route_name, topic_point, vnode_point, CONTROL_GROUP, DEFAULT_VNODES};

/// Most queue groups a map may have: each is a Raft group with its own log,
/// timers and disk folder on every replica.
pub const MAX_GROUPS: u64 = 1024;

/// Most virtual nodes one group may have; bounds the ring at
/// `MAX_GROUPS * MAX_VNODES` points however a map was written.
pub const MAX_VNODES: u32 = 4096;

/// Which queue groups exist and which nodes hold each: the control group's
/// record, served by `GET /v1/shards`. Two holders of maps with the same
/// epoch route every topic the same way.
///
/// Unknown fields are ignored and missing ones take defaults, so maps
/// written by newer or older releases still read.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMap {
    /// Bumped on every change of the map. 0 with no groups is the map of a
    /// cluster from a release before shards.
    #[serde(default)]
    pub epoch: u64,
    /// The queue groups, ids 1..=G. Empty: every topic lives in the
    /// control group (group 0), as before shards.
    #[serde(default)]
    pub groups: Vec<GroupInfo>,
}

/// One queue group of a [`ShardMap`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// Group id, 1 or more (0 is the control group).
    pub id: u64,
    /// Node ids holding a replica, in placement preference order.
    #[serde(default)]
    pub replicas: Vec<u64>,
    /// Points of this group on the ring: its share of topics is
    /// proportional to it.
    #[serde(default = "default_vnodes")]
    pub vnodes: u32,
}

fn default_vnodes() -> u32 {
    DEFAULT_VNODES
}

/// Why a shard map, or a request to build one, is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardMapError {
    #[error("queue groups need at least one node to live on")]
    NoNodes,
    #[error("replicas per group must be at least 1")]
    NoReplicas,
    #[error("{groups} queue groups requested; at most {MAX_GROUPS}")]
    TooManyGroups { groups: u64 },
    #[error("group 0 is the control group, not a queue group")]
    ControlGroupListed,
    #[error("group {0} is listed twice")]
    DuplicateGroup(u64),
    #[error("group {0} has no replicas")]
    EmptyGroup(u64),
    #[error("group {group} lists node {node} twice")]
    DuplicateReplica { group: u64, node: u64 },
    #[error("group {group} has {vnodes} vnodes; must be 1 to {MAX_VNODES}")]
    Vnodes { group: u64, vnodes: u32 },
}

impl ShardMap {
    /// The first map of a cluster: epoch 1, queue groups `1..=groups`, each
    /// on `min(replicas, nodes)` of `nodes` chosen by [`place_balanced`], so
    /// no node holds more than ⌈G·R/N⌉ replicas and [`preferred_leaders`]
    /// can always keep to ⌈G/N⌉ leaders per node. `groups == 0` gives the
    /// map in which every topic stays in the control group.
    ///
    /// [`preferred_leaders`]: super::preferred_leaders
    pub fn initial(nodes: &[u64], groups: u64, replicas: usize) -> Result<Self, ShardMapError> {
        if groups > MAX_GROUPS {
            return Err(ShardMapError::TooManyGroups { groups });
        }
        if groups > 0 && nodes.is_empty() {
            return Err(ShardMapError::NoNodes);
        }
        if groups > 0 && replicas == 0 {
            return Err(ShardMapError::NoReplicas);
        }
        let ids: Vec<u64> = (1..=groups).collect();
        let mut placed = place_balanced(&ids, nodes, replicas);
        let groups = ids
            .iter()
            .map(|&id| GroupInfo {
                id,
                replicas: placed.remove(&id).unwrap_or_default(),
                vnodes: DEFAULT_VNODES,
            })
            .collect();
        Ok(ShardMap { epoch: 1, groups })
    }

    /// Checks what routing and placement rely on; a map read from the wire
    /// or from disk should pass before it is put to use. (Routing never
    /// panics on a map that fails: it skips group 0 and caps vnodes.)
    pub fn validate(&self) -> Result<(), ShardMapError> {
        if self.groups.len() as u64 > MAX_GROUPS {
            return Err(ShardMapError::TooManyGroups {
                groups: self.groups.len() as u64,
            });
        }
        let mut ids = std::collections::BTreeSet::new();
        for g in &self.groups {
            if g.id == CONTROL_GROUP {
                return Err(ShardMapError::ControlGroupListed);
            }
            if !ids.insert(g.id) {
                return Err(ShardMapError::DuplicateGroup(g.id));
            }
            if g.replicas.is_empty() {
                return Err(ShardMapError::EmptyGroup(g.id));
            }
            let mut seen = std::collections::BTreeSet::new();
            if let Some(&node) = g.replicas.iter().find(|n| !seen.insert(**n)) {
                return Err(ShardMapError::DuplicateReplica { group: g.id, node });
            }
            if g.vnodes == 0 || g.vnodes > MAX_VNODES {
                return Err(ShardMapError::Vnodes {
                    group: g.id,
                    vnodes: g.vnodes,
                });
            }
        }
        Ok(())
    }

    /// Replicas per group: the largest group's (0 with no groups), which
    /// planners keep every group at.
    pub fn replica_count(&self) -> usize {
        self.groups
            .iter()
            .map(|g| g.replicas.len())
            .max()
            .unwrap_or(0)
    }

    /// The group entry with this id.
    pub fn group(&self, id: u64) -> Option<&GroupInfo> {
        self.groups.iter().find(|g| g.id == id)
    }

    /// The group that holds `topic`; the same answer as
    /// [`Ring::group_of`](super::Ring::group_of) on a ring of this map.
    ///
    /// Cost: it hashes every vnode of every group, O(G·V) (2,048 XXH3
    /// calls of 12 bytes for 8 groups of 256), and allocates nothing. Fine
    /// for one-off calls (the CLI, the dashboard); a server routing every
    /// request should keep a [`Ring`](super::Ring), which answers with one
    /// hash and a binary search, O(log(G·V)).
    pub fn group_of(&self, topic: &str) -> u64 {
        let h = topic_point(route_name(topic));
        // The ring answers with the first point at or after h, wrapping
        // around, lowest group id among equal points: the same as the
        // smallest (distance going up from h, group id).
        let mut best: Option<(u64, u64)> = None;
        for (group, vnodes) in self.ring_groups() {
            for i in 0..vnodes {
                let key = (vnode_point(group, i).wrapping_sub(h), group);
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            }
        }
        best.map_or(CONTROL_GROUP, |(_, group)| group)
    }

    /// The groups that take points on the ring and how many: never the
    /// control group, never more than [`MAX_VNODES`] each.
    pub(super) fn ring_groups(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.groups
            .iter()
            .filter(|g| g.id != CONTROL_GROUP)
            .map(|g| (g.id, g.vnodes.min(MAX_VNODES)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_shape_is_stable() {
        let map = ShardMap {
            epoch: 7,
            groups: vec![GroupInfo {
                id: 1,
                replicas: vec![3, 1],
                vnodes: 256,
            }],
        };
        let json = serde_json::to_value(&map).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"epoch": 7, "groups": [{"id": 1, "replicas": [3, 1], "vnodes": 256}]})
        );
        assert_eq!(serde_json::from_value::<ShardMap>(json).unwrap(), map);
    }

    #[test]
    fn missing_fields_default_and_unknown_ones_are_ignored() {
        let old: ShardMap = serde_json::from_str("{}").unwrap();
        assert_eq!(old, ShardMap::default());
        assert_eq!(old.group_of("anything"), CONTROL_GROUP);
        let newer: ShardMap =
            serde_json::from_str(r#"{"epoch":2,"groups":[{"id":4,"weight":9}],"moves":[]}"#)
                .unwrap();
        assert_eq!(newer.epoch, 2);
        assert_eq!(newer.groups[0].vnodes, DEFAULT_VNODES);
        assert!(newer.groups[0].replicas.is_empty());
    }

    #[test]
    fn initial_places_every_group_on_distinct_nodes() {
        let nodes = [5, 1, 9, 3];
        for (groups, r) in [(1, 3), (6, 3), (8, 2), (3, 9), (12, 1)] {
            let map = ShardMap::initial(&nodes, groups, r).unwrap();
            assert_eq!(map.epoch, 1);
            map.validate().unwrap();
            let ids: Vec<u64> = map.groups.iter().map(|g| g.id).collect();
            assert_eq!(ids, (1..=groups).collect::<Vec<_>>());
            for g in &map.groups {
                assert_eq!(g.replicas.len(), r.min(nodes.len()));
                assert!(g.replicas.iter().all(|n| nodes.contains(n)));
                assert_eq!(g.vnodes, DEFAULT_VNODES);
            }
        }
    }

    #[test]
    fn initial_refuses_what_it_cannot_build() {
        assert_eq!(ShardMap::initial(&[], 2, 3), Err(ShardMapError::NoNodes));
        assert_eq!(
            ShardMap::initial(&[1], 2, 0),
            Err(ShardMapError::NoReplicas)
        );
        assert_eq!(
            ShardMap::initial(&[1], MAX_GROUPS + 1, 1),
            Err(ShardMapError::TooManyGroups {
                groups: MAX_GROUPS + 1
            })
        );
        let none = ShardMap::initial(&[], 0, 0).unwrap();
        assert!(none.groups.is_empty());
        assert_eq!(none.group_of("t"), CONTROL_GROUP);
    }

    #[test]
    fn validate_names_each_fault() {
        let good = ShardMap::initial(&[1, 2, 3], 3, 2).unwrap();
        good.validate().unwrap();
        let broken = |f: &dyn Fn(&mut ShardMap)| {
            let mut m = good.clone();
            f(&mut m);
            m.validate().unwrap_err()
        };
        assert_eq!(
            broken(&|m| m.groups[0].id = 0),
            ShardMapError::ControlGroupListed
        );
        assert_eq!(
            broken(&|m| m.groups[1].id = 1),
            ShardMapError::DuplicateGroup(1)
        );
        assert_eq!(
            broken(&|m| m.groups[2].replicas.clear()),
            ShardMapError::EmptyGroup(3)
        );
        assert_eq!(
            broken(&|m| m.groups[0].replicas = vec![2, 2]),
            ShardMapError::DuplicateReplica { group: 1, node: 2 }
        );
        for vnodes in [0, MAX_VNODES + 1] {
            assert_eq!(
                broken(&|m| m.groups[1].vnodes = vnodes),
                ShardMapError::Vnodes { group: 2, vnodes }
            );
        }
    }

    #[test]
    fn routing_skips_the_control_group_and_caps_vnodes() {
        let map = ShardMap {
            epoch: 1,
            groups: vec![
                GroupInfo {
                    id: 0,
                    replicas: vec![1],
                    vnodes: 256,
                },
                GroupInfo {
                    id: 2,
                    replicas: vec![1],
                    vnodes: u32::MAX,
                },
            ],
        };
        let ring: Vec<_> = map.ring_groups().collect();
        assert_eq!(ring, vec![(2, MAX_VNODES)]);
        assert_eq!(map.group_of("t"), 2);
    }
}
