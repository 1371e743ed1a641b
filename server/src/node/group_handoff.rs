//! Moving every queue group's leadership off this node before it stops or
//! drains, the way `transfer.rs` moves the control group's.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::routed::GroupRequest;
use super::Node;
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
        // Requests for these groups are turned away meanwhile: their
        // appends would renew the followers' leases and beat the campaign.
        self.groups.handing_off.store(true, Ordering::SeqCst);
        for g in &led {
            g.raft.runtime_config().heartbeat(false);
        }
        let lease = Duration::from_millis(self.config.election_timeout_max_ms);
        tokio::time::sleep(lease + LEASE_MARGIN).await;
        let moves = led.iter().map(|g| self.hand_off(g, lease * 3));
        futures::future::join_all(moves).await;
        for g in &led {
            g.raft.runtime_config().heartbeat(true);
        }
        self.groups.handing_off.store(false, Ordering::SeqCst);
        let kept = led.iter().filter(|g| g.leads(self.id)).count();
        tracing::info!(
            groups = led.len(),
            kept,
            "queue group leadership handed off"
        );
        kept
    }

    async fn hand_off(&self, group: &Group, within: Duration) {
        let Some(target) = most_caught_up(group, self.id) else {
            return;
        };
        let Some(addr) = self.member_addr(target) else {
            return;
        };
        if let Err(e) = self.ask_to_elect(target, &addr, group.id).await {
            tracing::info!(group = group.id, target, "hand-off not started: {e:?}");
            return;
        }
        let moved = group
            .raft
            .wait(Some(within))
            .metrics(
                |m| m.current_leader.is_some_and(|l| l != self.id),
                "queue group leader moved",
            )
            .await;
        if let Err(e) = moved {
            tracing::info!(group = group.id, target, "hand-off did not finish: {e}");
        }
    }

    async fn ask_to_elect(&self, to: u64, addr: &str, group: u64) -> Result<(), String> {
        self.send_group_raw(to, addr, group, &GroupRequest::Elect)
            .await
            .map(|_| ())
    }
}

/// The voter other than `me` whose log matches the leader's furthest.
fn most_caught_up(group: &Group, me: u64) -> Option<u64> {
    let m = group.raft.metrics();
    let m = m.borrow();
    let matched = |id: &u64| {
        m.replication
            .as_ref()
            .and_then(|r| r.get(id))
            .and_then(|l| l.map(|l| l.index))
    };
    m.membership_config
        .membership()
        .voter_ids()
        .filter(|id| *id != me)
        .max_by_key(|id| matched(id))
}
