//! Wakes the handlers waiting for a lock request, one (lock, owner) at a
//! time: an applied entry wakes only the requests it granted or dropped,
//! not every waiter on the node (10,000 waiters woken per entry would each
//! re-read the state for nothing, and the one that was granted would wait
//! its turn behind them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

type Key = (String, String);

#[derive(Default)]
pub struct Wakeups {
    waiting: Mutex<HashMap<Key, watch::Sender<u64>>>,
}

/// A registration: `changed()` returns once the request may have left its
/// queue. Dropping it unregisters.
pub struct Wakeup {
    owner: Arc<Wakeups>,
    key: Key,
    rx: watch::Receiver<u64>,
}

impl Wakeups {
    /// Registers interest in the request of `owner` on `lock`. Register
    /// before reading the state: a wake-up after that is never missed.
    pub fn register(self: &Arc<Self>, lock: &str, owner: &str) -> Wakeup {
        let key = (lock.to_string(), owner.to_string());
        let mut map = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let rx = map
            .entry(key.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Wakeup {
            owner: self.clone(),
            key,
            rx,
        }
    }

    /// Wakes the handlers of these requests.
    pub fn wake(&self, keys: impl IntoIterator<Item = Key>) {
        let map = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if map.is_empty() {
            return;
        }
        for key in keys {
            if let Some(tx) = map.get(&key) {
                tx.send_modify(|n| *n += 1);
            }
        }
    }

    /// Wakes every handler (the whole state was replaced by a snapshot).
    pub fn wake_all(&self) {
        let map = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        for tx in map.values() {
            tx.send_modify(|n| *n += 1);
        }
    }

    #[cfg(test)]
    fn registered(&self) -> usize {
        self.waiting.lock().unwrap().len()
    }
}

impl Wakeup {
    pub async fn changed(&mut self) {
        // The sender lives as long as this registration does.
        let _ = self.rx.changed().await;
    }
}

impl Drop for Wakeup {
    fn drop(&mut self) {
        let mut map = self.owner.waiting.lock().unwrap_or_else(|p| p.into_inner());
        // Our receiver still counts: the last one out removes the entry.
        if map
            .get(&self.key)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_only_the_named_request_and_unregisters_on_drop() {
        let w = Arc::new(Wakeups::default());
        let mut a = w.register("l", "a");
        let mut a2 = w.register("l", "a");
        let b = w.register("l", "b");
        w.wake([("l".to_string(), "a".to_string())]);
        tokio::time::timeout(Duration::from_secs(5), a.changed())
            .await
            .expect("a woken");
        tokio::time::timeout(Duration::from_secs(5), a2.changed())
            .await
            .expect("second handler of a woken");
        assert!(!b.rx.has_changed().unwrap(), "b must not be woken");
        drop(a);
        assert_eq!(w.registered(), 2, "a2 still registered");
        drop(a2);
        drop(b);
        assert_eq!(w.registered(), 0);
        let mut c = w.register("m", "c");
        w.wake_all();
        tokio::time::timeout(Duration::from_secs(5), c.changed())
            .await
            .expect("c woken by wake_all");
    }
}
