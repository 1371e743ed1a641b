//! The shard map on a node: creating it (`POST /v1/shards`), and keeping
//! each queue group led by its preferred leader (DESIGN.md §2a).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dsync_api::queue::TopicStats;
use dsync_api::shards::{InitShards, ShardMap, DEFAULT_REPLICAS, MAX_GROUPS};
use dsync_api::types::Consistency;

use super::Node;
use crate::error::{Error, Result};
use crate::proposer::now_ms;
use crate::state::Command;
use crate::state::{QueueConfigure, SetShards};

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
        let voters = self.voter_ids();
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
        self.write(Command::SetShards(SetShards { map: map.clone() }))
            .await?;
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
            let cmd = Command::QueueConfigure(QueueConfigure {
                topic: t.topic.clone(),
                max_attempts: Some(t.max_attempts),
                visibility_ms: Some(t.visibility_ms),
                max_message_bytes: Some(t.max_message_bytes),
                retention_ms: Some(t.retention_ms),
            });
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
