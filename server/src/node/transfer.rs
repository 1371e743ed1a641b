//! Leadership transfer on openraft 0.9, which has no transfer primitive.
//!
//! Every voter refuses to vote while its leader lease (election_timeout_max
//! since it last heard from the leader) runs. So the leader pauses: no new
//! writes, no ReadIndex rounds, no heartbeats. Once the target holds the
//! whole log and the voters' leases have run out, the target is told to
//! campaign; its log is the longest, so it wins before anyone else's timer.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dsync_api::types::LeaderTransferResponse;

use super::{ForwardRequest, Node};
use crate::error::{Error, Result};

/// Safety margin past the voters' lease before the target campaigns.
const LEASE_MARGIN: Duration = Duration::from_millis(30);

/// Restores normal service when the hand-off ends, however it ends.
struct Pause<'a>(&'a Node);

impl Drop for Pause<'_> {
    fn drop(&mut self) {
        self.0.control.raft.runtime_config().heartbeat(true);
        self.0.handing_off.store(false, Ordering::SeqCst);
    }
}

impl Node {
    /// True while this leader is handing off: writes and ReadIndex rounds get
    /// 503 so clients retry against the next leader.
    pub fn handing_off(&self) -> bool {
        self.handing_off.load(Ordering::SeqCst)
    }

    pub(super) fn refuse_while_handing_off(&self) -> Result<()> {
        if self.handing_off() {
            return Err(Error::Unavailable(
                "leadership is being transferred; retry shortly".into(),
            ));
        }
        Ok(())
    }

    /// Moves leadership to `to` (default: the most caught-up follower).
    /// Runs on the leader; any other node forwards it.
    pub async fn transfer_leader(&self, to: Option<u64>) -> Result<LeaderTransferResponse> {
        match self.leader() {
            Some((leader, _)) if leader == self.id => self.transfer_local(to).await,
            Some((leader, addr)) => self
                .forward(leader, &addr, &ForwardRequest::TransferLeader { to })
                .await?
                .transferred(),
            None => Err(Error::Unavailable("no leader is elected yet".into())),
        }
    }

    pub(super) async fn transfer_local(&self, to: Option<u64>) -> Result<LeaderTransferResponse> {
        let started = Instant::now();
        let target = self.pick_transfer_target(to)?;
        if target == self.id {
            return Ok(LeaderTransferResponse {
                from: self.id,
                leader: self.id,
                term: self.term(),
                elapsed_ms: 0,
            });
        }
        let _one_at_a_time = self
            .transfer_lock
            .try_lock()
            .map_err(|_| Error::Unavailable("another leadership transfer is in progress".into()))?;
        let term = self.term();
        self.handing_off.store(true, Ordering::SeqCst);
        let pause = Pause(self);

        let lease = Duration::from_millis(self.config.election_timeout_max_ms);
        let catch_up = lease * 2;
        self.control
            .raft
            .wait(Some(catch_up))
            .metrics(
                |m| crate::raft::caught_up(m, target),
                "transfer target caught up",
            )
            .await
            .map_err(|e| {
                Error::Unavailable(format!(
                    "node {target} did not catch up within {catch_up:?}: {e}; leadership stays here"
                ))
            })?;

        self.control.raft.runtime_config().heartbeat(false);
        let quiet_since = Instant::now();
        tokio::time::sleep(lease + LEASE_MARGIN).await;

        let addr = self
            .member_addr(target)
            .ok_or_else(|| Error::InvalidArgument(format!("node {target} left the cluster")))?;
        // The target may lose one vote round (e.g. to a slow voter whose lease
        // started late); it campaigns again until the deadline.
        let deadline = quiet_since + lease * 3;
        loop {
            self.forward(target, &addr, &ForwardRequest::Elect).await?;
            let round = Duration::from_millis(self.config.election_timeout_min_ms);
            let moved = self
                .control
                .raft
                .wait(Some(round))
                .metrics(
                    |m| m.current_term > term && m.current_leader.is_some(),
                    "new leader after transfer",
                )
                .await;
            if let Ok(m) = moved {
                drop(pause);
                let leader = m.current_leader.unwrap_or(target);
                tracing::info!(
                    from = self.id,
                    to = leader,
                    term = m.current_term,
                    "leadership transferred"
                );
                return Ok(LeaderTransferResponse {
                    from: self.id,
                    leader,
                    term: m.current_term,
                    elapsed_ms: started.elapsed().as_millis() as u64,
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::Unavailable(format!(
                    "node {target} did not win an election within {:?}; leadership stays here",
                    deadline - quiet_since
                )));
            }
        }
    }

    /// On the transfer target: campaign now.
    pub(super) async fn elect_now(&self) -> Result<()> {
        self.control
            .raft
            .trigger()
            .elect()
            .await
            .map_err(|e| Error::Unavailable(format!("cannot start an election: {e}")))
    }

    fn pick_transfer_target(&self, to: Option<u64>) -> Result<u64> {
        let m = self.control.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        if let Some(to) = to {
            if !voters.contains(&to) {
                return Err(Error::InvalidArgument(format!(
                    "node {to} is not a voter; voters are {voters:?}"
                )));
            }
            return Ok(to);
        }
        crate::raft::most_caught_up(&m, self.id).ok_or_else(|| {
            Error::InvalidArgument("this is the only voter; there is no one to hand off to".into())
        })
    }
}
