//! Linearizable reads that share ReadIndex rounds.
//!
//! openraft's `ensure_linearizable` sends a heartbeat to every voter for
//! each call, so 64 clients reading through a leader of three cost it two
//! peer requests a read. A read may share a round only if the round takes
//! its read point after the read arrived (or a write acknowledged in
//! between could be missed), so reads that arrive while a round runs wait
//! for the next one, which they all share: at most one round runs and one
//! waits, whatever the number of readers.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use futures::future::{BoxFuture, FutureExt, Shared};

type Round<T> = Shared<BoxFuture<'static, T>>;

pub struct ReadRounds<T> {
    slots: Arc<Mutex<Slots<T>>>,
}

struct Slots<T> {
    /// The round whose read point is taken (or being taken).
    running: Option<(u64, Round<T>)>,
    /// The round that starts when `running` ends; reads arriving join it.
    next: Option<(u64, Round<T>)>,
    rounds: u64,
}

impl<T> Default for ReadRounds<T> {
    fn default() -> Self {
        ReadRounds {
            slots: Arc::new(Mutex::new(Slots {
                running: None,
                next: None,
                rounds: 0,
            })),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding it; a poisoned lock's data is whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: Clone + Send + Sync + 'static> ReadRounds<T> {
    /// The outcome of a round `start`ed after this call began: the waiting
    /// round if there is one, else a new one, which starts once the
    /// running round (if any) has ended.
    pub async fn share<F, Fut>(&self, start: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let round = {
            let mut s = lock(&self.slots);
            match &s.next {
                Some((_, round)) => round.clone(),
                None => {
                    s.rounds += 1;
                    let id = s.rounds;
                    let before = s.running.as_ref().map(|(_, r)| r.clone());
                    // Weak: the slots hold this round until it ends, and a
                    // round nobody awaits any more must not keep them alive.
                    let slots: Weak<_> = Arc::downgrade(&self.slots);
                    let round = async move {
                        if let Some(before) = before {
                            // Its outcome, even a panic, is its own readers'.
                            let _ = AssertUnwindSafe(before).catch_unwind().await;
                        }
                        if let Some(slots) = slots.upgrade() {
                            // From here on, arriving reads need a later round.
                            let mut s = lock(&slots);
                            if s.next.as_ref().is_some_and(|(i, _)| *i == id) {
                                s.running = s.next.take();
                            }
                        }
                        let out = start().await;
                        if let Some(slots) = slots.upgrade() {
                            let mut s = lock(&slots);
                            if s.running.as_ref().is_some_and(|(i, _)| *i == id) {
                                s.running = None;
                            }
                        }
                        out
                    }
                    .boxed()
                    .shared();
                    s.next = Some((id, round.clone()));
                    round
                }
            }
        };
        round.await
    }

    /// Rounds started so far.
    #[cfg(test)]
    fn rounds(&self) -> u64 {
        lock(&self.slots).rounds
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::sync::{mpsc, oneshot, Semaphore};

    use super::*;

    struct Bench {
        rounds: Arc<ReadRounds<u64>>,
        /// Reads that have joined or started a round.
        joined: Arc<AtomicU64>,
        /// A round holds until a permit is added.
        gate: Arc<Semaphore>,
        started: mpsc::UnboundedSender<u64>,
    }

    impl Bench {
        /// A read, once it has joined a round; its answer is the number of
        /// reads that had joined when its round took the read point.
        async fn read(&self, joined_tx: &mpsc::UnboundedSender<()>) -> oneshot::Receiver<u64> {
            let (joined, gate, started) =
                (self.joined.clone(), self.gate.clone(), self.started.clone());
            let rounds = self.rounds.clone();
            let (tx, rx) = oneshot::channel();
            let joined_tx = joined_tx.clone();
            tokio::spawn(async move {
                let point = joined.clone();
                let read = rounds.share(move || async move {
                    let at = point.load(Ordering::SeqCst);
                    let _ = started.send(at);
                    gate.acquire().await.unwrap().forget();
                    at
                });
                tokio::pin!(read);
                // The first poll joins or starts a round.
                joined.fetch_add(1, Ordering::SeqCst);
                let out = match futures::poll!(&mut read) {
                    std::task::Poll::Ready(out) => out,
                    std::task::Poll::Pending => {
                        let _ = joined_tx.send(());
                        read.await
                    }
                };
                let _ = tx.send(out);
            });
            rx
        }
    }

    /// A wrong implementation would leave a round unstarted: fail, not hang.
    async fn soon<T>(f: impl Future<Output = T>) -> T {
        tokio::time::timeout(std::time::Duration::from_secs(10), f)
            .await
            .expect("no answer in 10 s")
    }

    #[tokio::test]
    async fn reads_arriving_during_a_round_share_the_next_one_never_the_running_one() {
        let (started, mut started_rx) = mpsc::unbounded_channel();
        let (joined_tx, mut joined_rx) = mpsc::unbounded_channel();
        let b = Bench {
            rounds: Arc::new(ReadRounds::default()),
            joined: Arc::new(AtomicU64::new(0)),
            gate: Arc::new(Semaphore::new(0)),
            started,
        };

        let first = b.read(&joined_tx).await;
        assert_eq!(
            started_rx.recv().await,
            Some(1),
            "the first read starts a round"
        );
        // Five reads join while it runs: none may share it.
        let mut later = Vec::new();
        for _ in 0..5 {
            later.push(b.read(&joined_tx).await);
        }
        for _ in 0..6 {
            soon(joined_rx.recv()).await.unwrap();
        }
        b.gate.add_permits(1);
        assert_eq!(soon(first).await.unwrap(), 1);
        assert_eq!(
            soon(started_rx.recv()).await,
            Some(6),
            "one round for the five"
        );
        b.gate.add_permits(1);
        for r in later {
            assert_eq!(soon(r).await.unwrap(), 6);
        }
        assert_eq!(b.rounds.rounds(), 2);

        // With nothing running, the next read starts a round at once.
        let last = b.read(&joined_tx).await;
        assert_eq!(soon(started_rx.recv()).await, Some(7));
        b.gate.add_permits(1);
        assert_eq!(soon(last).await.unwrap(), 7);
        assert_eq!(b.rounds.rounds(), 3);
    }
}
