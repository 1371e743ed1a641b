//! Moving queue groups' leadership: off this node before it stops or
//! drains, and to each group's preferred leader (`dsync leader balance`),
//! the way `transfer.rs` moves the control group's.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use dsync_api::shards::{preferred_leaders, GroupMove};
use dsync_api::types::MemberKind;

use super::routed::{GroupReply, GroupRequest};
use super::Node;
use crate::error::{Error, Result};
use crate::groups::Group;

/// Added to the leader lease before the target campaigns.
const LEASE_MARGIN: Duration = Duration::from_millis(30);

impl Node {
    /// Hands each queue group this node leads to its most caught-up other
    /// replica. Best effort: a group whose hand-off fails elects a leader
    /// after its election timeout once this node is gone. Returns how many
    /// groups this node still leads.
    pub async fn hand_off_groups(&self) -> usize {
        let led: Vec<Arc<Group>> = self
            .groups
            .all()
            .into_iter()
            .filter(|g| g.leads(self.id))
            .collect();
        if led.is_empty() {
            return 0;
        }
        let moves = led.iter().map(|g| self.transfer_group(g, None));
        for (g, r) in led.iter().zip(futures::future::join_all(moves).await) {
            if let Err(e) = r {
                tracing::info!(group = g.id, "hand-off did not finish: {e}");
            }
        }
        let kept = led.iter().filter(|g| g.leads(self.id)).count();
        tracing::info!(
            groups = led.len(),
            kept,
            "queue group leadership handed off"
        );
        kept
    }

    /// On the group's leader: hands leadership to `to` (default: the most
    /// caught-up other voter) and returns the new leader. The group's
    /// requests are turned away meanwhile: their appends would renew the
    /// followers' leases and beat the campaign.
    pub(super) async fn transfer_group(&self, group: &Group, to: Option<u64>) -> Result<u64> {
        let target = match to {
            Some(t) if t == self.id => return Ok(self.id),
            Some(t) => t,
            None => crate::raft::most_caught_up(&group.raft.metrics().borrow(), self.id)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!("group {} has no other voter", group.id))
                })?,
        };
        if !crate::raft::caught_up(&group.raft.metrics().borrow(), target) {
            return Err(Error::Unavailable(format!(
                "node {target} does not hold group {}'s whole log; leadership stays",
                group.id
            )));
        }
        let addr = self
            .member_addr(target)
            .ok_or_else(|| Error::InvalidArgument(format!("node {target} is not a member")))?;
        if group.handing_off.swap(true, Ordering::SeqCst) {
            return Err(Error::Unavailable(format!(
                "group {} is already being handed off",
                group.id
            )));
        }
        group.raft.runtime_config().heartbeat(false);
        let lease = Duration::from_millis(self.config.election_timeout_max_ms);
        tokio::time::sleep(lease + LEASE_MARGIN).await;
        let asked = self
            .send_group_raw(target, &addr, group.id, &GroupRequest::Elect)
            .await;
        let moved = match asked {
            Ok(_) => group
                .raft
                .wait(Some(lease * 3))
                .metrics(
                    |m| m.current_leader.is_some_and(|l| l != self.id),
                    "queue group leader moved",
                )
                .await
                .map_err(|e| Error::Unavailable(format!("no new leader: {e}"))),
            Err(e) => Err(Error::Unavailable(format!("node {target}: {e}"))),
        };
        group.raft.runtime_config().heartbeat(true);
        group.handing_off.store(false, Ordering::SeqCst);
        let m = moved?;
        Ok(m.current_leader.unwrap_or(target))
    }

    /// Moves every queue group's leadership to its preferred leader among
    /// the voters (no node leading more than ⌈G/N⌉ groups), skipping
    /// groups already there.
    pub async fn balance_leaders(&self) -> Result<Vec<GroupMove>> {
        let map = self.shard_map();
        // A draining or stopping node takes no leadership back.
        let voters: Vec<(u64, String)> = self
            .members()
            .into_iter()
            .filter(|m| m.kind == MemberKind::Voter)
            .map(|m| (m.id, m.addr))
            .collect();
        let probes = voters
            .iter()
            .map(|(id, addr)| self.answers_ready(*id, addr));
        let ready: Vec<u64> = voters
            .iter()
            .zip(futures::future::join_all(probes).await)
            .filter(|(_, ok)| *ok)
            .map(|((id, _), _)| *id)
            .collect();
        let preferred = preferred_leaders(&map, &ready);
        let moves = preferred.iter().map(|(&group, &to)| async move {
            let from = self.group_status(group).await.ok().and_then(|s| s.leader);
            if from == Some(to) {
                return GroupMove {
                    group,
                    from,
                    to,
                    moved: false,
                    error: None,
                };
            }
            let done = self
                .group_call(group, GroupRequest::Transfer { to: Some(to) })
                .await;
            let error = done
                .and_then(GroupReply::value)
                .err()
                .map(|e| e.to_string());
            GroupMove {
                group,
                from,
                to,
                moved: error.is_none(),
                error,
            }
        });
        Ok(futures::future::join_all(moves).await)
    }
}
