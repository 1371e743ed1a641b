//! The queue groups this node hosts, kept as the control group's state
//! says: the groups the shard map places here, plus the group a replica
//! move is bringing here; the copy of a group that moved away is closed
//! and deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use dsync_api::shards::{preferred_leaders, MovePhase, ShardMap};
use dsync_api::types::Consistency;
use openraft::BasicNode;

use super::Node;
use crate::error::{Error, Result};
use crate::groups::{self, group_dir, Group};
use crate::state::StateData;

/// The groups `me` should host under `st`: group id → whether this node is
/// one of the replicas the map lists (which may create the group's first
/// membership); `false` for the target of the move in progress, which
/// joins as a learner and never initializes.
fn placed_here(st: &StateData, me: u64) -> BTreeMap<u64, bool> {
    let mut placed: BTreeMap<u64, bool> = st
        .shards
        .groups
        .iter()
        .filter(|g| g.replicas.contains(&me))
        .map(|g| (g.id, true))
        .collect();
    if let Some(m) = st.jobs.current_move() {
        if m.to == Some(me) && m.phase == MovePhase::CatchingUp {
            placed.entry(m.group).or_insert(false);
        }
    }
    // A reshard's new groups, from its start (the topics they take are
    // copied in before any route names them).
    if let Some(target) = st.jobs.running.as_ref().and_then(|j| j.target.as_ref()) {
        for g in target.groups.iter().filter(|g| g.replicas.contains(&me)) {
            placed.entry(g.id).or_insert(true);
        }
    }
    placed
}

/// The map that places the groups of `st`: the shard map, plus the new
/// groups of a reshard under way.
fn hosting_map(st: &StateData) -> ShardMap {
    let mut map = st.shards.clone();
    if let Some(target) = st.jobs.running.as_ref().and_then(|j| j.target.as_ref()) {
        for g in &target.groups {
            if map.group(g.id).is_none() {
                map.groups.push(g.clone());
            }
        }
    }
    map
}

impl Node {
    /// Opens every group placed here that is not open yet; a new group is
    /// initialized by each of its listed replicas (all with the same
    /// membership, which Raft allows) and its preferred leader campaigns
    /// at once.
    async fn host_groups(&self, map: &ShardMap, placed: &BTreeMap<u64, bool>) -> Result<()> {
        let _one = self.groups.reconciling.lock().await;
        let nodes: Vec<u64> = map
            .groups
            .iter()
            .flat_map(|g| g.replicas.iter().copied())
            .collect();
        let leaders = preferred_leaders(map, &nodes);
        for (&id, &listed) in placed {
            if self.groups.get(id).is_some() {
                continue;
            }
            let Some(info) = map.group(id) else { continue };
            let group = Arc::new(Group::open(id, &self.shared).await?);
            let fresh = !group
                .raft
                .is_initialized()
                .await
                .map_err(|e| Error::Internal(e.to_string()))?;
            if fresh && listed {
                let mut members = BTreeMap::new();
                for n in &info.replicas {
                    let addr = self.member_addr(*n).ok_or_else(|| {
                        Error::Unavailable(format!("node {n} of group {id} is not a member (yet)"))
                    })?;
                    members.insert(*n, BasicNode::new(addr));
                }
                // A replica that already received the leader's first entries
                // is refused here, which is just as good.
                if let Err(e) = group.raft.initialize(members).await {
                    tracing::debug!(group = id, "initialize: {e}");
                }
            }
            let campaign = fresh && listed && leaders.get(&id) == Some(&self.id);
            groups::spawn_tasks(&group, &self.shared, campaign);
            tracing::info!(group = id, fresh, joining = !listed, "hosting queue group");
            self.groups.insert(group);
            if !listed {
                crate::failpoint::crash_point(&self.config.data_dir, "move-target-opened");
            }
        }
        Ok(())
    }

    /// Closes and deletes the copies of groups that moved away from this
    /// node: open, or left on disk by a crash before the deletion. Only
    /// after a linearizable read, so a node replaying an old map on start
    /// never deletes a replica it holds today.
    async fn drop_moved_groups(&self, map: &ShardMap, placed: &BTreeMap<u64, bool>) -> Result<()> {
        let mut here: BTreeSet<u64> = self.groups.all().iter().map(|g| g.id).collect();
        here.extend(groups_on_disk(&self.config.data_dir));
        // A map with no queue groups is a cluster from before them, or one
        // not applied yet: it says nothing about what is on disk.
        let gone: Vec<u64> = here
            .into_iter()
            .filter(|id| !map.groups.is_empty() && !placed.contains_key(id))
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        self.read_barrier(Consistency::Linearizable, None).await?;
        let (map, placed) = {
            let st = self.control.sm.read();
            (hosting_map(&st.data), placed_here(&st.data, self.id))
        };
        let _one = self.groups.reconciling.lock().await;
        for id in gone
            .into_iter()
            .filter(|id| !map.groups.is_empty() && !placed.contains_key(id))
        {
            if let Some(g) = self.groups.remove(id) {
                if let Err(e) = g.raft.shutdown().await {
                    tracing::warn!(group = id, "raft shutdown: {e}");
                }
            }
            self.shared.metrics.groups.forget(id);
            crate::failpoint::crash_point(&self.config.data_dir, "move-source-closed");
            let dir = group_dir(&self.config.data_dir, id);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!(group = id, "replica moved away; its copy is deleted"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::io(
                        format!("cannot delete {} of a group that moved away", dir.display()),
                        e,
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Group ids with a folder under `data_dir/groups/`.
fn groups_on_disk(data_dir: &std::path::Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("groups")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Follows the control group's applied state: routes by each new shard
/// map and hosts what [`placed_here`] says (on start, too, from the state
/// the snapshot and log replay bring back).
pub(super) async fn run_shard_host(node: Arc<Node>) {
    let mut applied = node.control.sm.subscribe();
    let mut hosted: Option<(u64, BTreeMap<u64, bool>)> = None;
    loop {
        let (map, placed) = {
            let st = node.control.sm.read();
            (hosting_map(&st.data), placed_here(&st.data, node.id))
        };
        let want = Some((map.epoch, placed.clone()));
        if want != hosted {
            // Routes change only with the epoch: built here, not on every
            // applied entry (a reshard's may list many topics).
            let (routed, routes) = {
                let st = node.control.sm.read();
                (st.data.shards.clone(), st.data.reshard_routes())
            };
            node.groups.set_map(&routed, routes);
            let done = match node.host_groups(&map, &placed).await {
                Ok(()) => node.drop_moved_groups(&map, &placed).await,
                Err(e) => Err(e),
            };
            match done {
                Ok(()) => hosted = want.clone(),
                // Tried again on the next applied entry (a membership change,
                // a heartbeat's blank entry, the leader's next write).
                Err(e) => {
                    tracing::warn!(epoch = map.epoch, "queue groups not all in place yet: {e}")
                }
            }
        }
        let changed = applied.changed();
        if want != hosted {
            // Not all in place: try again soon even if nothing is applied.
            let waited = tokio::time::timeout(Duration::from_millis(500), changed).await;
            if let Ok(Err(_)) = waited {
                return;
            }
        } else if changed.await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use dsync_api::shards::{plan_moves, ShardJob};

    use super::*;

    #[test]
    fn the_target_of_a_move_joins_without_being_listed() {
        let mut st = StateData {
            shards: ShardMap::initial(&[1, 2, 3], 3, 3).unwrap(),
            ..Default::default()
        };
        assert_eq!(placed_here(&st, 1).len(), 3);
        assert!(placed_here(&st, 4).is_empty());
        let mut moves = plan_moves(&st.shards, &[1, 2, 3, 4], 3);
        let group = moves[0].group;
        st.jobs.running = Some(ShardJob::running(1, "rebalance", moves.clone(), 0));
        // Pending: not yet.
        assert!(placed_here(&st, 4).is_empty());
        moves[0].phase = MovePhase::CatchingUp;
        st.jobs.running.as_mut().unwrap().moves = moves;
        assert_eq!(placed_here(&st, 4), BTreeMap::from([(group, false)]));
    }
}
