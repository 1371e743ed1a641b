//! Stopping a node on SIGTERM: refuse new client requests, hand leadership
//! on, let open requests end, commit buffered cache writes, stop every
//! background task, stop Raft; each step bounded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::Node;

/// The longest a leader spends handing leadership on before it stops.
const HANDOFF: Duration = Duration::from_secs(5);
/// The longest client requests in flight get to end (lock waits and long
/// polls are cut after it).
const REQUESTS: Duration = Duration::from_secs(8);
/// The longest background tasks get to end once told to.
const TASKS: Duration = Duration::from_secs(2);

/// Client requests being served, so shutdown can wait for them while the
/// listener still takes peer connections (a lock wait here ends when the
/// new leader's entries reach this node).
#[derive(Default)]
pub struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// One request being served; dropped when its handler returns.
pub struct Serving<'a>(&'a InFlight);

impl InFlight {
    pub fn enter(&self) -> Serving<'_> {
        self.count.fetch_add(1, Ordering::SeqCst);
        Serving(self)
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns `true` when no request is in flight, `false` after `bound`.
    pub async fn wait_idle(&self, bound: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let idle = self.idle.notified();
            if self.is_empty() {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.is_empty();
            }
        }
    }
}

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Node {
    /// Commits the write-back writes this node acknowledged and still
    /// holds (for up to a lease each).
    async fn commit_write_back(&self, what: &'static str) {
        let dirty = self.cache.lines().clear();
        crate::cache::update_line_gauges(self);
        if !dirty.is_empty() {
            tracing::info!(lines = dirty.len(), "{what}");
            crate::cache::flush_all(self, dirty).await;
        }
    }

    /// First half, while the listener still runs (peers must reach this
    /// node until its requests are done): client requests are refused
    /// (503, use another node), a leader moves leadership to its most
    /// caught-up follower so writes go on without an election timeout, and
    /// the requests in flight are answered. Returns when none is open, or
    /// after a bound.
    pub async fn begin_shutdown(&self) {
        tracing::info!(id = self.id, "stopping: refusing new client requests");
        self.set_draining(true);
        // Before leadership moves: the new term would clear these lines
        // and leave their commit to a task the stop might cut short.
        self.commit_write_back("stopping: committing write-back writes")
            .await;
        if self.is_leader() {
            match tokio::time::timeout(HANDOFF, self.transfer_local(None)).await {
                Ok(Ok(t)) => {
                    tracing::info!(
                        to = t.leader,
                        term = t.term,
                        "stopping: leadership handed on"
                    )
                }
                Ok(Err(e)) => tracing::info!("stopping: leadership not handed on: {e}"),
                Err(_) => tracing::warn!("stopping: leadership not handed on within {HANDOFF:?}"),
            }
        }
        self.hand_off_groups().await;
        // Event streams never end on their own.
        self.events.close();
        let open = self.client_requests.len();
        if open > 0 {
            tracing::info!(open, "stopping: waiting for client requests in flight");
        }
        if !self.client_requests.wait_idle(REQUESTS).await {
            tracing::warn!(
                open = self.client_requests.len(),
                "stopping: client requests still open after {REQUESTS:?} are cut off"
            );
        }
    }

    /// Second half, once the listener is closed: write-back writes this
    /// node acknowledged are committed (for up to a lease each), background
    /// tasks stop, then Raft.
    pub async fn shutdown(&self) {
        self.events.close();
        // Lines written by requests that were still open above.
        self.commit_write_back("stopping: committing the last write-back writes")
            .await;
        if !self.tasks.shutdown(TASKS).await {
            tracing::warn!("stopping: background tasks still running after {TASKS:?}");
        }
        self.groups.shutdown().await;
        if let Err(e) = self.control.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_the_last_request_in_flight() {
        let f = InFlight::default();
        assert!(f.wait_idle(Duration::ZERO).await);
        let a = f.enter();
        let b = f.enter();
        assert!(!f.wait_idle(Duration::from_millis(10)).await);
        drop(a);
        assert_eq!(f.len(), 1);
        let (done, _) = tokio::join!(f.wait_idle(Duration::from_secs(5)), async move {
            tokio::task::yield_now().await;
            drop(b)
        });
        assert!(done && f.is_empty());
    }
}
