//! The queue groups one node hosts, and the map it routes topics by.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use dsync_api::shards::{route_name, Ring, ShardMap, CONTROL_GROUP};

use super::Group;
use crate::state::reshard::ReshardRoutes;

/// A shard map with its ring, built once per epoch: routing a request is
/// then one binary search.
pub struct Routing {
    pub map: ShardMap,
    pub ring: Ring,
    /// A reshard under way: its target ring, once its topics are listed.
    next: Option<(ReshardRoutes, Ring)>,
}

impl Routing {
    fn new(map: ShardMap, reshard: Option<ReshardRoutes>) -> Self {
        let ring = Ring::new(&map);
        let next = reshard.map(|r| {
            let ring = Ring::new(&r.target);
            (r, ring)
        });
        Routing { map, ring, next }
    }

    /// The group that holds `topic` (the control group in a map without
    /// queue groups). During a reshard whose topics are listed: the
    /// source of a topic that has not switched yet, else the target ring's.
    pub fn group_of(&self, topic: &str) -> u64 {
        if let Some((r, ring)) = self.next.as_ref().filter(|(r, _)| r.listed) {
            return match r.pending.get(route_name(topic)) {
                Some(&from) => from,
                None => ring.group_of(topic),
            };
        }
        if self.map.groups.is_empty() {
            CONTROL_GROUP
        } else {
            self.ring.group_of(topic)
        }
    }

    /// The replicas of queue group `id`, in placement order (a group a
    /// reshard creates too).
    pub fn replicas(&self, id: u64) -> &[u64] {
        self.map
            .group(id)
            .or_else(|| self.next.as_ref().and_then(|(r, _)| r.target.group(id)))
            .map_or(&[], |g| &g.replicas)
    }

    /// Every queue group routes may name: the map's, and a reshard's new ones.
    pub fn group_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.map.groups.iter().map(|g| g.id).collect();
        if let Some((r, _)) = &self.next {
            ids.extend(r.target.groups.iter().map(|g| g.id));
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

#[derive(Default)]
pub struct Groups {
    routing: RwLock<Option<Arc<Routing>>>,
    open: RwLock<BTreeMap<u64, Arc<Group>>>,
    /// The leader last seen answering for a group this node does not host.
    hints: Mutex<BTreeMap<u64, (u64, String)>>,
    /// One reconciliation at a time (opening a group takes a while).
    pub(crate) reconciling: tokio::sync::Mutex<()>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Groups {
    /// The map this node routes by: the control group's as last applied
    /// here. A node that has not applied one yet routes by the empty map;
    /// the control group then refuses a topic that moved, and the caller
    /// retries once this node has caught up.
    pub fn routing(&self) -> Arc<Routing> {
        if let Some(r) = read(&self.routing).as_ref() {
            return r.clone();
        }
        Arc::new(Routing::new(ShardMap::default(), None))
    }

    /// Routes by `map` (and the reshard under way) from now on, if it is
    /// newer: every reshard step that changes a route bumps the epoch.
    /// Returns whether it was.
    pub fn set_map(&self, map: &ShardMap, reshard: Option<ReshardRoutes>) -> bool {
        let mut r = write(&self.routing);
        match r.as_ref() {
            Some(old) if old.map.epoch >= map.epoch => false,
            _ => {
                *r = Some(Arc::new(Routing::new(map.clone(), reshard)));
                true
            }
        }
    }

    pub fn get(&self, id: u64) -> Option<Arc<Group>> {
        read(&self.open).get(&id).cloned()
    }

    /// Every hosted queue group, in id order.
    pub fn all(&self) -> Vec<Arc<Group>> {
        read(&self.open).values().cloned().collect()
    }

    pub fn insert(&self, group: Arc<Group>) {
        write(&self.open).insert(group.id, group);
    }

    /// Stops hosting group `id` (it moved away): no request is routed to
    /// this copy from now on.
    pub fn remove(&self, id: u64) -> Option<Arc<Group>> {
        write(&self.open).remove(&id)
    }

    pub fn hint(&self, id: u64) -> Option<(u64, String)> {
        self.hints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    pub fn set_hint(&self, id: u64, leader: Option<(u64, String)>) {
        let mut h = self.hints.lock().unwrap_or_else(|p| p.into_inner());
        match leader {
            Some(l) => h.insert(id, l),
            None => h.remove(&id),
        };
    }

    /// Stops every hosted group's Raft (the node is stopping).
    pub async fn shutdown(&self) {
        for g in self.all() {
            if let Err(e) = g.raft.shutdown().await {
                tracing::warn!(group = g.id, "raft shutdown: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_follows_the_newest_map_only() {
        let groups = Groups::default();
        assert_eq!(groups.routing().group_of("t"), CONTROL_GROUP);
        let map = ShardMap::initial(&[1, 2, 3], 4, 3).unwrap();
        assert!(groups.set_map(&map, None));
        assert!(
            !groups.set_map(&ShardMap::default(), None),
            "an older map won"
        );
        let r = groups.routing();
        assert_eq!(r.group_of("t"), map.group_of("t"));
        assert_ne!(r.group_of("t"), CONTROL_GROUP);
        assert_eq!(r.replicas(1).len(), 3);
        assert!(r.replicas(9).is_empty());
    }

    #[test]
    fn a_reshard_routes_by_its_target_but_for_the_topics_not_switched() {
        let map = ShardMap::initial(&[1, 2, 3], 2, 3).unwrap();
        let target = dsync_api::shards::reshard_target(&map, 0, &[1, 2, 3], 4, 3).unwrap();
        let names: Vec<String> = (0..200).map(|i| format!("t{i}")).collect();
        let moving: Vec<&String> = names
            .iter()
            .filter(|t| map.group_of(t) != target.group_of(t))
            .collect();
        let (stays, goes) = (moving[0].clone(), moving[1].clone());
        let routes = |listed| ReshardRoutes {
            job: 1,
            target: target.clone(),
            listed,
            pending: [(stays.clone(), map.group_of(&stays))].into(),
        };
        let before = Routing::new(map.clone(), Some(routes(false)));
        assert_eq!(
            before.group_of(&goes),
            map.group_of(&goes),
            "not listed yet"
        );
        assert_eq!(before.replicas(4), target.group(4).unwrap().replicas);
        assert_eq!(before.group_ids(), vec![1, 2, 3, 4]);
        let during = Routing::new(map.clone(), Some(routes(true)));
        assert_eq!(during.group_of(&stays), map.group_of(&stays));
        assert_eq!(
            during.group_of(&format!("{stays}.dlq")),
            map.group_of(&stays)
        );
        assert_eq!(during.group_of(&goes), target.group_of(&goes));
    }
}
