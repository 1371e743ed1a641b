//! The background tasks of one node: named, stopped on shutdown and
//! awaited, never detached.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    /// Work that must not be cut off: shutdown waits for it first.
    finishing: TaskTracker,
    stop: CancellationToken,
}

impl Tasks {
    /// Runs `work` until it ends or the node stops, whichever comes first.
    pub fn spawn<F>(&self, name: &'static str, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = work => {}
                _ = stop.cancelled() => tracing::debug!(task = name, "stopped"),
            }
        });
    }

    /// Runs `work` to its end even when the node stops: shutdown waits for
    /// it (within its bound) before it stops the other tasks. For work whose
    /// loss would lose what was acknowledged, such as committing write-back
    /// writes.
    pub fn spawn_to_end<F>(&self, name: &'static str, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.finishing.spawn(async move {
            work.await;
            tracing::debug!(task = name, "finished");
        });
    }

    /// Whether shutdown has begun.
    pub fn stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Running tasks, for status and tests.
    pub fn len(&self) -> usize {
        self.tracker.len() + self.finishing.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty() && self.finishing.is_empty()
    }

    /// Waits for the work that must finish, then stops every other task
    /// and waits for them, at most `bound` for each. Returns whether all
    /// ended in time. Tasks spawned later stop at once.
    pub async fn shutdown(&self, bound: Duration) -> bool {
        self.finishing.close();
        let finished = tokio::time::timeout(bound, self.finishing.wait())
            .await
            .is_ok();
        self.stop.cancel();
        self.tracker.close();
        let stopped = tokio::time::timeout(bound, self.tracker.wait())
            .await
            .is_ok();
        finished && stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_stops_endless_tasks_and_waits_for_them() {
        let tasks = Tasks::default();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        tasks.spawn("endless", async move {
            let _alive = tx;
            std::future::pending::<()>().await
        });
        tasks.spawn("short", async {});
        assert!(!tasks.stopping());
        assert!(tasks.shutdown(Duration::from_secs(5)).await);
        assert!(tasks.stopping());
        assert!(tasks.is_empty());
        // The endless task's future was dropped, so its sender is gone.
        assert!(rx.recv().await.is_none());
        // Work that must finish is waited for, not cut off.
        let tasks = Tasks::default();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tasks.spawn_to_end("finishing", async move {
            tokio::task::yield_now().await;
            let _ = tx.send(());
        });
        assert!(tasks.shutdown(Duration::from_secs(5)).await);
        assert!(rx.await.is_ok(), "the work ran to its end");
        // Spawned after shutdown: stopped at once.
        tasks.spawn("late", std::future::pending());
        assert!(tasks.shutdown(Duration::from_secs(5)).await);
    }
}
