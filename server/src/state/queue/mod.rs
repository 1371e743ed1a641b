//! The replicated message queue: FIFO topics, delayed and in-flight
//! messages, receipts per delivery, ack/nack/extend, attempts and dead
//! letters, dedup, redrive. Pure and deterministic like the lock table.

mod expiry;
mod export;
#[cfg(test)]
mod model_tests;
mod topic;

pub use export::{Staging, TopicPart};

use std::collections::BTreeMap;

use dsync_api::queue::*;
use dsync_api::ErrorCode;
use serde::{Deserialize, Serialize};

use super::CmdError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: u64,
    /// JSON text.
    pub payload: String,
    /// Deliveries so far.
    pub attempt: u32,
    pub enqueued_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InFlight {
    pub msg: Message,
    /// Revision of this delivery; part of its receipt.
    pub delivery: u64,
    pub deadline_ms: u64,
    pub consumer: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub max_attempts: u32,
    pub visibility_ms: u64,
    pub max_message_bytes: u64,
    pub retention_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            visibility_ms: DEFAULT_VISIBILITY_MS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            retention_ms: DEFAULT_RETENTION_MS,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Topic {
    pub settings: Settings,
    next_id: u64,
    /// Ready messages by id: consumers always get the oldest first.
    ready: BTreeMap<u64, Message>,
    /// (visible at, id) → message.
    delayed: BTreeMap<(u64, u64), Message>,
    in_flight: BTreeMap<u64, InFlight>,
    /// dedup id → (message id, forgotten at).
    dedup: BTreeMap<String, (u64, u64)>,
    enqueued_total: u64,
    acked_total: u64,
    redelivered_total: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueTable {
    topics: BTreeMap<String, Topic>,
    /// (topic, id, attempt) dead-lettered by the current command, for
    /// `/v1/events`; drained by the state after every command, never stored.
    #[serde(skip)]
    dead_lettered: Vec<(String, u64, u32)>,
}

/// One message of an enqueue command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incoming {
    pub payload: String,
    pub delay_ms: u64,
    pub dedup_id: Option<String>,
}

pub fn receipt(id: u64, delivery: u64) -> String {
    format!("{id}-{delivery}")
}

fn parse_receipt(r: &str) -> Option<(u64, u64)> {
    let (a, b) = r.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

pub fn dlq_name(topic: &str) -> String {
    format!("{topic}{DLQ_SUFFIX}")
}

impl QueueTable {
    /// Topics, dead-letter topics included.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    pub fn get(&self, topic: &str) -> Option<&Topic> {
        self.topics.get(topic)
    }

    pub fn ready_count(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, |t| t.ready.len())
    }

    pub fn enqueue(
        &mut self,
        topic: &str,
        msgs: Vec<Incoming>,
        now_ms: u64,
    ) -> Result<Vec<u64>, CmdError> {
        let t = self.topics.entry(topic.to_string()).or_default();
        let limit = t.settings.max_message_bytes;
        if let Some(big) = msgs.iter().find(|m| m.payload.len() as u64 > limit) {
            return Err(CmdError::new(
                ErrorCode::TooLarge,
                format!(
                    "a payload of {} bytes exceeds topic {topic:?}'s limit of {limit}",
                    big.payload.len()
                ),
            ));
        }
        let mut ids = Vec::with_capacity(msgs.len());
        for m in msgs {
            if let Some(d) = &m.dedup_id {
                if let Some(&(id, until)) = t.dedup.get(d) {
                    if until > now_ms {
                        ids.push(id);
                        continue;
                    }
                }
            }
            t.next_id += 1;
            let msg = Message {
                id: t.next_id,
                payload: m.payload,
                attempt: 0,
                enqueued_at_ms: now_ms,
            };
            if m.delay_ms > 0 {
                t.delayed
                    .insert((now_ms.saturating_add(m.delay_ms), msg.id), msg);
            } else {
                t.ready.insert(msg.id, msg);
            }
            if let Some(d) = &m.dedup_id {
                t.dedup.insert(
                    d.clone(),
                    (t.next_id, now_ms.saturating_add(DEDUP_WINDOW_MS)),
                );
            }
            t.enqueued_total += 1;
            ids.push(t.next_id);
        }
        Ok(ids)
    }

    /// Delivers up to `max` ready messages, oldest first. `revision` numbers
    /// the deliveries.
    pub fn consume(
        &mut self,
        topic: &str,
        consumer: &str,
        max: usize,
        visibility_ms: Option<u64>,
        now_ms: u64,
        revision: &mut u64,
    ) -> Vec<InFlight> {
        let Some(t) = self.topics.get_mut(topic) else {
            return Vec::new();
        };
        let visibility = visibility_ms.unwrap_or(t.settings.visibility_ms);
        let mut out = Vec::new();
        while out.len() < max {
            let Some((_, mut msg)) = t.ready.pop_first() else {
                break;
            };
            msg.attempt += 1;
            *revision += 1;
            let f = InFlight {
                msg,
                delivery: *revision,
                deadline_ms: now_ms.saturating_add(visibility),
                consumer: consumer.to_string(),
            };
            t.in_flight.insert(f.msg.id, f.clone());
            out.push(f);
        }
        out
    }

    pub fn ack(&mut self, topic: &str, receipts: &[String]) -> Result<usize, CmdError> {
        let t = self.topic_mut(topic)?;
        let ids = t.check_receipts(topic, receipts)?;
        for id in &ids {
            t.in_flight.remove(id);
        }
        t.acked_total += ids.len() as u64;
        Ok(ids.len())
    }

    pub fn nack(
        &mut self,
        topic: &str,
        receipts: &[String],
        delay_ms: u64,
        now_ms: u64,
    ) -> Result<usize, CmdError> {
        let t = self.topic_mut(topic)?;
        let ids = t.check_receipts(topic, receipts)?;
        let mut dead = Vec::new();
        for id in &ids {
            let f = t.in_flight.remove(id).expect("checked");
            if f.msg.attempt >= t.settings.max_attempts {
                dead.push(f.msg);
            } else if delay_ms > 0 {
                t.delayed
                    .insert((now_ms.saturating_add(delay_ms), f.msg.id), f.msg);
            } else {
                t.ready.insert(f.msg.id, f.msg);
            }
        }
        self.dead_letter(topic, dead);
        Ok(ids.len())
    }

    pub fn extend(
        &mut self,
        topic: &str,
        receipts: &[String],
        visibility_ms: u64,
        now_ms: u64,
    ) -> Result<usize, CmdError> {
        let t = self.topic_mut(topic)?;
        let ids = t.check_receipts(topic, receipts)?;
        for id in &ids {
            if let Some(f) = t.in_flight.get_mut(id) {
                f.deadline_ms = now_ms.saturating_add(visibility_ms);
            }
        }
        Ok(ids.len())
    }

    /// Moves every ready dead letter of `topic` back into it, as new messages.
    pub fn redrive(&mut self, topic: &str) -> u64 {
        let Some(dlq) = self.topics.get_mut(&dlq_name(topic)) else {
            return 0;
        };
        let letters: Vec<Message> = std::mem::take(&mut dlq.ready).into_values().collect();
        let t = self.topics.entry(topic.to_string()).or_default();
        for mut m in letters.iter().cloned() {
            m.attempt = 0;
            t.push_ready(m, false);
        }
        letters.len() as u64
    }

    pub fn configure(&mut self, topic: &str, s: &TopicSettings) {
        let t = self.topics.entry(topic.to_string()).or_default();
        if let Some(v) = s.max_attempts {
            t.settings.max_attempts = v;
        }
        if let Some(v) = s.visibility_ms {
            t.settings.visibility_ms = v;
        }
        if let Some(v) = s.max_message_bytes {
            t.settings.max_message_bytes = v;
        }
        if let Some(v) = s.retention_ms {
            t.settings.retention_ms = v;
        }
    }

    fn topic_mut(&mut self, topic: &str) -> Result<&mut Topic, CmdError> {
        self.topics.get_mut(topic).ok_or_else(|| {
            CmdError::new(
                ErrorCode::NotFound,
                format!("topic {topic:?} does not exist"),
            )
        })
    }

    pub fn stats(&self, topic: &str, now_ms: u64) -> Option<TopicStats> {
        let t = self.topics.get(topic)?;
        let dead = self
            .topics
            .get(&dlq_name(topic))
            .map_or(0, |d| (d.ready.len() + d.in_flight.len()) as u64);
        Some(t.stats(topic, dead, now_ms))
    }

    pub fn all_stats(&self, now_ms: u64, limit: usize) -> Vec<TopicStats> {
        self.topics
            .keys()
            .take(limit)
            .filter_map(|n| self.stats(n, now_ms))
            .collect()
    }

    /// (ready, in flight, dead-lettered) summed over every topic, for metrics.
    /// Messages held over all topics: ready, delayed, in flight, dead-lettered.
    pub fn held(&self) -> usize {
        self.topics
            .values()
            .map(|t| t.ready.len() + t.delayed.len() + t.in_flight.len())
            .sum()
    }

    pub fn totals(&self) -> (usize, usize, usize) {
        self.topics.iter().fold((0, 0, 0), |(r, f, d), (name, t)| {
            if name.ends_with(DLQ_SUFFIX) {
                (r, f, d + t.ready.len() + t.in_flight.len())
            } else {
                (r + t.ready.len(), f + t.in_flight.len(), d)
            }
        })
    }
}
