//! The shard map on a node: creating it (`POST /v1/shards`), and opening
//! the queue groups it places here (DESIGN.md §2a).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dsync_api::queue::TopicStats;
use dsync_api::shards::{preferred_leaders, InitShards, ShardMap, DEFAULT_REPLICAS, MAX_GROUPS};
use dsync_api::types::{Consistency, MemberKind};
use openraft::BasicNode;

use super::Node;
use crate::error::{Error, Result};
use crate::groups::{self, Group};
use crate::proposer::now_ms;
use crate::state::Command;

/// How long `init_shards` tries to set the old topics' settings on their
/// new groups (they elect their first leaders meanwhile).
const CARRY_FOR: Duration = Duration::from_secs(20);

impl Node {
    /// Commits the cluster's first shard map: `req.groups` queue groups
    /// placed over the current voters.
    pub async fn init_shards(&self, req: InitShards) -> Result<ShardMap> {
        if req.groups == 0 || req.groups > MAX_GROUPS {
            return Err(Error::InvalidArgument(format!(
                "groups must be 1 to {MAX_GROUPS}"
            )));
        }
        if req.replicas == Some(0) {
            return Err(Error::InvalidArgument("replicas must be at least 1".into()));
        }
        let voters: Vec<u64> = self
            .members()
            .into_iter()
            .filter(|m| m.kind == MemberKind::Voter)
            .map(|m| m.id)
            .collect();
        let replicas = req
            .replicas
            .map_or(DEFAULT_REPLICAS, |r| r as usize)
            .min(voters.len());
        let map = ShardMap::initial(&voters, req.groups, replicas)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        // The control group's (drained) topics keep their settings: they
        // are set again on the groups that hold those topics from now on.
        self.read_barrier(Consistency::Linearizable, None).await?;
        let old = self
            .control
            .sm
            .read()
            .data
            .queues
            .all_stats(now_ms(), usize::MAX);
        self.write(Command::SetShards { map: map.clone() }).await?;
        self.carry_settings(&map, old).await;
        Ok(map)
    }

    /// Sets each old topic's settings on its new group, retrying while the
    /// groups elect their first leaders. A topic whose settings could not
    /// be carried is logged; set them again with `PUT /v1/queues/TOPIC`.
    async fn carry_settings(&self, map: &ShardMap, old: Vec<TopicStats>) {
        let deadline = Instant::now() + CARRY_FOR;
        let mut applied = self.control.sm.subscribe();
        while self.groups.routing().map.epoch < map.epoch && Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(100), applied.changed()).await;
        }
        for t in old {
            let cmd = Command::QueueConfigure {
                topic: t.topic.clone(),
                max_attempts: Some(t.max_attempts),
                visibility_ms: Some(t.visibility_ms),
                max_message_bytes: Some(t.max_message_bytes),
                retention_ms: Some(t.retention_ms),
            };
            loop {
                match self.queue_write(&t.topic, cmd.clone()).await {
                    Ok(_) => break,
                    Err(e) if Instant::now() < deadline => {
                        tracing::debug!(topic = %t.topic, "settings not carried yet: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => {
                        tracing::warn!(topic = %t.topic, "settings not carried into its queue group: {e}");
                        break;
                    }
                }
            }
        }
    }

    /// The shard map as this node last applied it.
    pub fn shard_map(&self) -> ShardMap {
        self.groups.routing().map.clone()
    }

    /// Why this node is not ready for its queue groups, if it is not: a
    /// group placed here is not open yet or knows no leader.
    pub fn groups_unready(&self) -> Option<String> {
        let map = self.shard_map();
        for info in map.groups.iter().filter(|g| g.replicas.contains(&self.id)) {
            match self.groups.get(info.id) {
                None => return Some(format!("queue group {} is not open yet", info.id)),
                Some(g) if g.leader().is_none() => {
                    return Some(format!("queue group {} has no leader", info.id))
                }
                Some(_) => {}
            }
        }
        None
    }

    /// Opens every queue group `map` places on this node that is not open
    /// yet; a new group is initialized by each of its replicas (all with the
    /// same membership, which Raft allows) and its preferred leader
    /// campaigns at once.
    async fn host_groups(&self, map: &ShardMap) -> Result<()> {
        let _one = self.groups.reconciling.lock().await;
        let nodes: Vec<u64> = map
            .groups
            .iter()
            .flat_map(|g| g.replicas.iter().copied())
            .collect();
        let leaders = preferred_leaders(map, &nodes);
        for info in &map.groups {
            if !info.replicas.contains(&self.id) || self.groups.get(info.id).is_some() {
                continue;
            }
            let mut members = BTreeMap::new();
            for id in &info.replicas {
                let addr = self.member_addr(*id).ok_or_else(|| {
                    Error::Unavailable(format!(
                        "node {id} of group {} is not a member (yet)",
                        info.id
                    ))
                })?;
                members.insert(*id, BasicNode::new(addr));
            }
            let group = Arc::new(Group::open(info.id, &self.shared).await?);
            let fresh = !group
                .raft
                .is_initialized()
                .await
                .map_err(|e| Error::Internal(e.to_string()))?;
            if fresh {
                // A replica that already received the leader's first entries
                // is refused here, which is just as good.
                if let Err(e) = group.raft.initialize(members).await {
                    tracing::debug!(group = info.id, "initialize: {e}");
                }
            }
            let campaign = fresh && leaders.get(&info.id) == Some(&self.id);
            groups::spawn_tasks(&group, &self.shared, campaign);
            tracing::info!(group = info.id, fresh, "hosting queue group");
            self.groups.insert(group);
        }
        Ok(())
    }
}

/// Follows the shard map in the control group's applied state: routes by
/// each new epoch and opens the groups placed here (on start, too, from
/// the map the snapshot and log replay bring back).
pub(super) async fn run_shard_host(node: Arc<Node>) {
    let mut applied = node.control.sm.subscribe();
    let mut hosted_epoch = 0;
    loop {
        let epoch = node.control.sm.read().data.shards.epoch;
        if epoch != hosted_epoch {
            let map = node.control.sm.read().data.shards.clone();
            node.groups.set_map(&map);
            match node.host_groups(&map).await {
                Ok(()) => hosted_epoch = epoch,
                // Tried again on the next applied entry (a membership change,
                // a heartbeat's blank entry, the leader's next write).
                Err(e) => tracing::warn!(epoch, "queue groups not all open yet: {e}"),
            }
        }
        let changed = applied.changed();
        if epoch != hosted_epoch {
            // Not all open: try again soon even if nothing is applied.
            let waited = tokio::time::timeout(std::time::Duration::from_millis(500), changed).await;
            if let Ok(Err(_)) = waited {
                return;
            }
        } else if changed.await.is_err() {
            return;
        }
    }
}

/// How often the control group's leader checks that every queue group is
/// led by its preferred leader.
const BALANCE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Restores the leader spread after restarts and failovers: the control
/// group's leader (one node, so two never fight) moves each queue group
/// whose leader is not its preferred one, once that replica has caught up.
pub(super) async fn run_leader_balancer(node: Arc<Node>) {
    let mut every = tokio::time::interval(BALANCE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        if !node.is_leader() || node.shard_map().groups.is_empty() || node.is_draining() {
            continue;
        }
        match node.balance_leaders().await {
            Ok(moves) => {
                for m in moves.iter().filter(|m| m.moved) {
                    tracing::info!(group = m.group, from = ?m.from, to = m.to, "queue group leader balanced");
                }
            }
            Err(e) => tracing::debug!("leader balance: {e}"),
        }
    }
}
