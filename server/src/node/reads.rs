//! Read consistency: linearizable (ReadIndex), leader, or bounded-stale.

use std::time::Duration;

use dsync_api::types::Consistency;
use openraft::error::{CheckIsLeaderError, RaftError};

use super::{ForwardRequest, Node};
use crate::error::{Error, Result};

const APPLY_WAIT: Duration = Duration::from_secs(5);

impl Node {
    pub fn applied_index(&self) -> u64 {
        self.control.sm.read().last_applied.map_or(0, |l| l.index)
    }

    /// Waits until this node may serve a read at `consistency`. Returns the
    /// staleness bound for `stale` reads.
    pub async fn read_barrier(
        &self,
        consistency: Consistency,
        max_staleness_ms: Option<u64>,
    ) -> Result<Option<u64>> {
        match consistency {
            Consistency::Linearizable => {
                let index = if self.is_leader() {
                    self.local_read_index().await?
                } else {
                    self.remote_index(ForwardRequest::ReadIndex).await?
                };
                self.wait_applied(index).await?;
                Ok(None)
            }
            Consistency::Leader => {
                if !self.is_leader() {
                    let index = self.remote_index(ForwardRequest::AppliedIndex).await?;
                    self.wait_applied(index).await?;
                }
                Ok(None)
            }
            Consistency::Stale => {
                let bound = max_staleness_ms.unwrap_or(self.config.max_staleness_ms);
                let staleness = if self.is_leader() {
                    0
                } else {
                    self.since_leader_contact()
                        .map_or(u64::MAX, |d| d.as_millis() as u64)
                };
                if staleness > bound {
                    let shown = if staleness == u64::MAX {
                        "never heard from a leader".to_string()
                    } else {
                        format!("last heard from the leader {staleness} ms ago")
                    };
                    return Err(Error::Unavailable(format!(
                        "this node may be stale beyond max_staleness_ms={bound}: {shown}"
                    )));
                }
                Ok(Some(staleness))
            }
        }
    }

    /// ReadIndex on the leader: confirms leadership with a quorum and waits
    /// for the state machine to reach the commit point.
    pub(super) async fn local_read_index(&self) -> Result<u64> {
        // A ReadIndex round would renew the voters' leases mid hand-off.
        self.refuse_while_handing_off()?;
        match self.control.read_point(&self.handing_off).await {
            Ok(read_log_id) => Ok(read_log_id.map_or(0, |l| l.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => {
                Err(Error::Unavailable("leadership moved; retry".into()))
            }
            Err(e) => Err(Error::Unavailable(format!(
                "cannot confirm leadership: {e}"
            ))),
        }
    }

    /// The leader's read index (or applied index, for `AppliedIndex`),
    /// asked once for the reads that arrive together, as the leader shares
    /// its rounds (`groups/read_rounds.rs`): each read gets an index asked
    /// for after it arrived.
    async fn remote_index(&self, req: ForwardRequest) -> Result<u64> {
        let (leader, addr) = self
            .leader()
            .ok_or_else(|| Error::Unavailable("no leader is elected yet".into()))?;
        let rounds = match req {
            ForwardRequest::ReadIndex => &self.remote_reads,
            _ => &self.remote_applied,
        };
        let (forwarding, control) = (self.forwarding(), self.control.clone());
        rounds
            .share(move || async move {
                // The leader as of the round's start, which may be later.
                let (to, addr) = control.leader().unwrap_or((leader, addr));
                let reply = forwarding.send(to, &addr, &req);
                reply.await.and_then(|r| r.index()).map_err(|e| e.to_api())
            })
            .await
            .map_err(Error::Api)
    }

    pub(super) async fn wait_applied(&self, index: u64) -> Result<()> {
        if self.applied_index() >= index {
            return Ok(());
        }
        self.control
            .raft
            .wait(Some(APPLY_WAIT))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map(|_| ())
            .map_err(|e| {
                Error::Unavailable(format!("this node did not catch up to index {index}: {e}"))
            })
    }
}
