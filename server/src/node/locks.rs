//! Lock requests on a node: the grant, or a wait in the replicated queue
//! watched on this node's own applied state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dsync_api::locks::{AcquireRequest, AcquireResponse};
use dsync_api::{ApiError, ErrorCode};

use super::Node;
use crate::error::{Error, Result};
use crate::proposer::now_ms;
use crate::state::command::locks;
use crate::state::locks::{holder_info, Acquired, Holder};
use crate::state::Command;
use crate::state::{LockCancel, LockExtendLeases};

/// How long past its deadline a waiter waits for the leader's expiry entry
/// before giving up on its own (e.g. while no leader can commit it).
const EXPIRY_GRACE: Duration = Duration::from_secs(2);

/// Withdraws a queued request if its client goes away before the grant is
/// delivered (the handler future is dropped) or the wait fails locally.
struct CancelOnDrop {
    node: Arc<Node>,
    cmd: Option<Command>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(cmd) = self.cmd.take() {
            let node = self.node.clone();
            self.node
                .tasks
                .clone()
                .spawn("withdraw lock request", async move {
                    if let Err(e) = node.write(cmd).await {
                        tracing::warn!("could not withdraw an abandoned lock request: {e}");
                    }
                });
        }
    }
}

impl Node {
    pub async fn lock_acquire(
        self: &Arc<Self>,
        name: String,
        req: AcquireRequest,
    ) -> Result<AcquireResponse> {
        let acquire = locks::acquire(
            name.clone(),
            req.owner.clone(),
            req.mode,
            req.ttl_ms,
            req.wait_ms,
        );
        let holder = match self.propose(acquire).await? {
            Acquired::Granted(h) => h,
            Acquired::Queued { seq } => {
                let mut guard = CancelOnDrop {
                    node: self.clone(),
                    cmd: Some(Command::LockCancel(LockCancel {
                        name: name.clone(),
                        owner: req.owner.clone(),
                        since_seq: seq,
                    })),
                };
                let started = Instant::now();
                let h = self
                    .wait_for_grant(&name, &req.owner, seq, req.wait_ms)
                    .await?;
                guard.cmd = None;
                self.metrics
                    .lock_wait_seconds
                    .observe(started.elapsed().as_secs_f64());
                h
            }
        };
        Ok(self.grant_response(name, &holder))
    }

    fn grant_response(&self, name: String, h: &Holder) -> AcquireResponse {
        let now = now_ms();
        let holders = self
            .control
            .sm
            .read()
            .data
            .locks
            .get(&name)
            .map(|l| l.holders().map(|x| holder_info(x, now)).collect())
            .unwrap_or_default();
        AcquireResponse {
            name,
            owner: h.owner.clone(),
            mode: h.mode,
            token: h.token,
            ttl_ms: h.ttl_ms,
            holders,
        }
    }

    /// Waits until this node has applied the grant answering the request
    /// queued at `seq`, or until the request left the queue.
    async fn wait_for_grant(
        &self,
        name: &str,
        owner: &str,
        seq: u64,
        wait_ms: u64,
    ) -> Result<Holder> {
        // Registered before the first look: a grant applied in between
        // still wakes us.
        let mut wakeup = self.control.sm.lock_wakeups.register(name, owner);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms) + EXPIRY_GRACE;
        let busy = || {
            Error::Api(ApiError::new(
                ErrorCode::LockBusy,
                format!("gave up waiting for lock {name:?} after {wait_ms} ms"),
            ))
        };
        loop {
            {
                let st = self.control.sm.read();
                let lock = st.data.locks.get(name);
                if let Some(h) = lock
                    .and_then(|l| l.holder_of(owner))
                    .filter(|h| h.token > seq)
                {
                    return Ok(h.clone());
                }
                // A follower may not have applied the queuing entry yet: the
                // request's absence means something only once it has.
                let caught_up = st.data.revision >= seq;
                if caught_up && lock.and_then(|l| l.waiter_of(owner)).is_none() {
                    return Err(busy());
                }
            }
            if tokio::time::timeout_at(deadline, wakeup.changed())
                .await
                .is_err()
            {
                return Err(busy());
            }
        }
    }
}

/// On the leader: extends every lease once per new term, then commits a
/// `Tick` whenever a lease, queued lock request, delayed message or
/// delivery deadline is due.
pub async fn run_deadline_ticker(node: Arc<Node>) {
    let mut metrics = node.control.raft.metrics();
    loop {
        let term = loop {
            {
                let m = metrics.borrow_and_update();
                if m.current_leader == Some(node.id) {
                    break m.current_term;
                }
            }
            if metrics.changed().await.is_err() {
                return;
            }
        };
        let grace = Command::LockExtendLeases(LockExtendLeases {
            by_ms: node.config.election_timeout_max_ms,
        });
        if let Err(e) = node.write_local(grace).await {
            tracing::warn!("lease extension for term {term} not committed: {e}");
            if metrics.changed().await.is_err() {
                return;
            }
            continue;
        }
        let mut every = tokio::time::interval(Duration::from_millis(20));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while node.is_leader() && node.term() == term {
            every.tick().await;
            let due = {
                let st = node.control.sm.read();
                let locks = st.data.locks.next_deadline();
                let queues = st.data.next_queue_deadline();
                locks
                    .into_iter()
                    .chain(queues)
                    .min()
                    .is_some_and(|d| d <= now_ms())
            };
            if due && !node.handing_off() {
                if let Err(e) = node.write_local(Command::Tick).await {
                    tracing::debug!("lock tick not committed: {e}");
                }
            }
        }
    }
}
