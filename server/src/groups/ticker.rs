//! A queue group's background work: ticks on its leader, its first
//! elections, and its `group`-labelled gauges.

use std::sync::Arc;
use std::time::Duration;

use super::{Group, Shared};
use crate::metrics::groups::GroupLabels;
use crate::proposer::now_ms;
use crate::state::Command;

/// Proposes a `Tick` whenever a visibility timeout or delay of the group's
/// topics is due, while this node leads the group.
pub(super) async fn run(group: Arc<Group>, me: u64) {
    let mut metrics = group.raft.metrics();
    loop {
        if metrics
            .wait_for(|m| m.current_leader == Some(me))
            .await
            .is_err()
        {
            return;
        }
        let mut every = tokio::time::interval(Duration::from_millis(20));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // `has_changed` fails once the Raft is shut down (the group moved
        // away), whatever its last metrics said.
        while group.leads(me) && metrics.has_changed().is_ok() {
            every.tick().await;
            let due = group
                .sm
                .read()
                .data
                .next_queue_deadline()
                .is_some_and(|d| d <= now_ms());
            if due {
                if let Err(e) = group.propose(Command::Tick).await {
                    tracing::debug!(group = group.id, "tick not committed: {e:?}");
                }
            }
        }
    }
}

/// Lets this replica campaign once it has heard from a leader, or after
/// the wait openraft gives a follower that knows one (leader lease plus an
/// election timeout), whichever comes first. `campaign`: this replica is a
/// new queue group's preferred leader, so it stands at once instead.
///
/// A node restarts with its vote uncommitted (`raft::log_store`), and
/// openraft lets a node with an uncommitted vote campaign at its first
/// tick. A restarted node would then campaign before the leader's first
/// heartbeat reached it; the rejections mark the other nodes as having
/// seen a greater log, which adds 2 x `election_timeout_max_ms` to their
/// next election, so the next failover took 1.4 s instead of 0.7 s.
pub async fn allow_elections(group: Arc<Group>, timeout_max_ms: u64, campaign: bool) {
    let hold = Duration::from_millis(2 * timeout_max_ms);
    let mut metrics = group.raft.metrics();
    if !campaign {
        let _ = tokio::time::timeout(hold, metrics.wait_for(|m| m.current_leader.is_some())).await;
    }
    group.raft.runtime_config().elect(true);
    if campaign {
        if let Err(e) = group.raft.trigger().elect().await {
            tracing::debug!(group = group.id, "first campaign not started: {e}");
        }
    }
}

pub(super) async fn watch_metrics(group: Arc<Group>, shared: Shared) {
    let label = GroupLabels {
        group: group.id.to_string(),
    };
    let gauges = &shared.metrics.groups;
    let mut rx = group.raft.metrics();
    loop {
        {
            let m = rx.borrow_and_update();
            gauges.term.get_or_create(&label).set(m.current_term as i64);
            gauges
                .is_leader
                .get_or_create(&label)
                .set(i64::from(m.current_leader == Some(shared.node_id)));
            gauges
                .last_log_index
                .get_or_create(&label)
                .set(m.last_log_index.unwrap_or(0) as i64);
            // The group's series holds this group's applied-index gauge.
            let applied = m.last_applied.map_or(0, |l| l.index);
            group.series.applied_index.set(applied as i64);
            group.series.raise_commit(applied, applied);
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
