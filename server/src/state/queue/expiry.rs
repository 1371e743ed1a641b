//! Time passing in the queue: delays ending, deliveries expiring (and
//! dead-lettering past their attempts), retention and dedup windows.

use super::{dlq_name, Message, QueueTable};

impl QueueTable {
    /// Due work at `now_ms`: delayed messages become ready, expired
    /// deliveries are redelivered (or dead-lettered past max_attempts),
    /// messages past retention and old dedup ids are dropped.
    pub fn tick(&mut self, now_ms: u64) {
        self.tick_except(now_ms, |_| false)
    }

    /// [`tick`](Self::tick) for every topic but those `frozen` names (a
    /// topic moving to another group keeps still while it is copied).
    pub fn tick_except(&mut self, now_ms: u64, frozen: impl Fn(&str) -> bool) {
        let names: Vec<String> = self.topics.keys().filter(|n| !frozen(n)).cloned().collect();
        for name in names {
            let t = self.topics.get_mut(&name).expect("listed");
            while let Some(entry) = t.delayed.first_entry() {
                if entry.key().0 > now_ms {
                    break;
                }
                let m = entry.remove();
                t.ready.insert(m.id, m);
            }
            let expired: Vec<u64> = t
                .in_flight
                .iter()
                .filter(|(_, f)| f.deadline_ms <= now_ms)
                .map(|(id, _)| *id)
                .collect();
            let mut dead = Vec::new();
            for id in expired {
                let f = t.in_flight.remove(&id).expect("listed");
                t.redelivered_total += 1;
                if f.msg.attempt >= t.settings.max_attempts {
                    dead.push(f.msg);
                } else {
                    t.ready.insert(f.msg.id, f.msg);
                }
            }
            let retention = t.settings.retention_ms;
            t.ready
                .retain(|_, m| m.enqueued_at_ms.saturating_add(retention) > now_ms);
            t.dedup.retain(|_, &mut (_, until)| until > now_ms);
            self.dead_letter(&name, dead);
        }
    }

    /// The earliest moment `tick` has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        self.next_deadline_except(|_| false)
    }

    /// [`next_deadline`](Self::next_deadline) of the topics not `frozen`.
    pub fn next_deadline_except(&self, frozen: impl Fn(&str) -> bool) -> Option<u64> {
        self.topics
            .iter()
            .filter(|(n, _)| !frozen(n))
            .map(|(_, t)| t)
            .flat_map(|t| {
                let delayed = t.delayed.keys().next().map(|k| k.0);
                let in_flight = t.in_flight.values().map(|f| f.deadline_ms).min();
                let retention = t
                    .ready
                    .values()
                    .next()
                    .map(|m| m.enqueued_at_ms.saturating_add(t.settings.retention_ms));
                [delayed, in_flight, retention].into_iter().flatten()
            })
            .min()
    }

    pub(super) fn dead_letter(&mut self, topic: &str, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        self.dead_lettered
            .extend(msgs.iter().map(|m| (topic.to_string(), m.id, m.attempt)));
        let dlq = self.topics.entry(dlq_name(topic)).or_default();
        for m in msgs {
            dlq.enqueued_total += 1;
            dlq.push_ready(m, false);
        }
    }

    /// What the last commands dead-lettered, as (topic, id, attempt).
    pub fn take_dead_lettered(&mut self) -> Vec<(String, u64, u32)> {
        std::mem::take(&mut self.dead_lettered)
    }
}
