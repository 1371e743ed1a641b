//! The node's event bus behind `GET /v1/events`: a bounded broadcast that
//! never blocks its publishers (the state machine's apply, the role watcher).
//! A subscriber that falls behind loses the oldest events and is told how
//! many with a `lagged` event.

use std::sync::Arc;

use dsync_api::events::Event;
use tokio::sync::{broadcast, watch};

/// Events kept for a slow subscriber before it starts skipping.
const CAPACITY: usize = 1024;
/// Open streams per node; more are refused (each costs a task and a queue).
pub const MAX_SUBSCRIBERS: usize = 64;

/// Cheap to clone; clones publish to the same subscribers.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    /// Set once the node shuts down, so open streams end and the HTTP server
    /// can finish its graceful shutdown.
    closed: Arc<watch::Sender<bool>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            tx: broadcast::channel(CAPACITY).0,
            closed: Arc::new(watch::channel(false).0),
        }
    }
}

impl EventBus {
    /// Never blocks; with no subscriber the event is dropped.
    pub fn publish(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// A new subscription, or `None` when [`MAX_SUBSCRIBERS`] are open.
    pub fn subscribe(&self) -> Option<Subscription> {
        if self.tx.receiver_count() >= MAX_SUBSCRIBERS {
            return None;
        }
        Some(Subscription {
            rx: self.tx.subscribe(),
            closed: self.closed.subscribe(),
        })
    }

    /// Ends every open subscription.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }
}

pub struct Subscription {
    rx: broadcast::Receiver<Event>,
    closed: watch::Receiver<bool>,
}

impl Subscription {
    /// The next event, a `lagged` event if some were skipped, or `None`
    /// once the bus closes.
    pub async fn next(&mut self) -> Option<Event> {
        if *self.closed.borrow() {
            return None;
        }
        tokio::select! {
            r = self.rx.recv() => match r {
                Ok(e) => Some(e),
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    Some(Event::Lagged { skipped })
                }
                Err(broadcast::error::RecvError::Closed) => None,
            },
            _ = self.closed.wait_for(|c| *c) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lagged() -> Event {
        Event::Lagged { skipped: 0 }
    }

    #[tokio::test]
    async fn a_slow_subscriber_skips_and_is_told() {
        let bus = EventBus::default();
        let mut sub = bus.subscribe().unwrap();
        for i in 0..(CAPACITY as u64 + 10) {
            bus.publish(Event::Lagged { skipped: i });
        }
        assert_eq!(sub.next().await, Some(Event::Lagged { skipped: 10 }));
        // Then the oldest event still kept.
        assert_eq!(sub.next().await, Some(Event::Lagged { skipped: 10 }));
        assert_eq!(sub.next().await, Some(Event::Lagged { skipped: 11 }));
    }

    #[tokio::test]
    async fn closing_ends_subscriptions() {
        let bus = EventBus::default();
        let mut sub = bus.subscribe().unwrap();
        bus.publish(lagged());
        bus.close();
        assert_eq!(sub.next().await, None);
        let mut late = bus.subscribe().unwrap();
        assert_eq!(late.next().await, None);
    }

    #[test]
    fn subscribers_are_bounded_and_freed_on_drop() {
        let bus = EventBus::default();
        let subs: Vec<_> = (0..MAX_SUBSCRIBERS)
            .map(|_| bus.subscribe().expect("below the limit"))
            .collect();
        assert!(bus.subscribe().is_none());
        drop(subs);
        assert!(bus.subscribe().is_some());
    }
}
