//! Queue commands.

use serde::{Deserialize, Serialize};

use super::Command;
use crate::state::proposal::{count, done, Proposal};
use crate::state::queue::{self, QueueTable};
use crate::state::{CmdOutput, CmdValue};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEnqueue {
    pub topic: String,
    pub msgs: Vec<queue::Incoming>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueConsume {
    pub topic: String,
    pub consumer: String,
    pub max: usize,
    pub visibility_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueAck {
    pub topic: String,
    pub receipts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueNack {
    pub topic: String,
    pub receipts: Vec<String>,
    pub delay_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueExtend {
    pub topic: String,
    pub receipts: Vec<String>,
    pub visibility_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueRedrive {
    pub topic: String,
}

/// Plain fields: bincode cannot carry the wire type's skipped options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueConfigure {
    pub topic: String,
    pub max_attempts: Option<u32>,
    pub visibility_ms: Option<u64>,
    pub max_message_bytes: Option<u64>,
    pub retention_ms: Option<u64>,
}

/// How many receipts took effect.
fn counted(n: usize) -> CmdValue {
    CmdValue::Count(n as u64)
}

impl QueueEnqueue {
    pub(in crate::state) fn apply(self, q: &mut QueueTable, now_ms: u64) -> CmdOutput {
        q.enqueue(&self.topic, self.msgs, now_ms).map(CmdValue::Ids)
    }
}

impl QueueConsume {
    pub(in crate::state) fn apply(
        self,
        q: &mut QueueTable,
        now_ms: u64,
        revision: &mut u64,
    ) -> CmdOutput {
        Ok(CmdValue::Delivered(q.consume(
            &self.topic,
            &self.consumer,
            self.max,
            self.visibility_ms,
            now_ms,
            revision,
        )))
    }
}

impl QueueAck {
    pub(in crate::state) fn apply(self, q: &mut QueueTable) -> CmdOutput {
        q.ack(&self.topic, &self.receipts).map(counted)
    }
}

impl QueueNack {
    pub(in crate::state) fn apply(self, q: &mut QueueTable, now_ms: u64) -> CmdOutput {
        q.nack(&self.topic, &self.receipts, self.delay_ms, now_ms)
            .map(counted)
    }
}

impl QueueExtend {
    pub(in crate::state) fn apply(self, q: &mut QueueTable, now_ms: u64) -> CmdOutput {
        q.extend(&self.topic, &self.receipts, self.visibility_ms, now_ms)
            .map(counted)
    }
}

impl QueueRedrive {
    pub(in crate::state) fn apply(self, q: &mut QueueTable) -> CmdOutput {
        Ok(CmdValue::Count(q.redrive(&self.topic)))
    }
}

impl QueueConfigure {
    pub(in crate::state) fn apply(self, q: &mut QueueTable) -> CmdOutput {
        let s = dsync_api::queue::TopicSettings {
            max_attempts: self.max_attempts,
            visibility_ms: self.visibility_ms,
            max_message_bytes: self.max_message_bytes,
            retention_ms: self.retention_ms,
        };
        q.configure(&self.topic, &s);
        Ok(CmdValue::Done)
    }
}

/// Answers the new messages' ids, in order.
pub fn enqueue(topic: String, msgs: Vec<queue::Incoming>) -> Proposal<Vec<u64>> {
    Proposal::new(
        Command::QueueEnqueue(QueueEnqueue { topic, msgs }),
        |v| match v {
            CmdValue::Ids(ids) => Ok(ids),
            other => Err(other),
        },
    )
}

/// Answers the messages delivered (maybe none).
pub fn consume(
    topic: String,
    consumer: String,
    max: usize,
    visibility_ms: Option<u64>,
) -> Proposal<Vec<queue::InFlight>> {
    let cmd = Command::QueueConsume(QueueConsume {
        topic,
        consumer,
        max,
        visibility_ms,
    });
    Proposal::new(cmd, |v| match v {
        CmdValue::Delivered(msgs) => Ok(msgs),
        other => Err(other),
    })
}

/// Each answers how many receipts took effect.
pub fn ack(topic: String, receipts: Vec<String>) -> Proposal<u64> {
    Proposal::new(Command::QueueAck(QueueAck { topic, receipts }), count)
}

pub fn nack(topic: String, receipts: Vec<String>, delay_ms: u64) -> Proposal<u64> {
    let cmd = Command::QueueNack(QueueNack {
        topic,
        receipts,
        delay_ms,
    });
    Proposal::new(cmd, count)
}

pub fn extend(topic: String, receipts: Vec<String>, visibility_ms: u64) -> Proposal<u64> {
    let cmd = Command::QueueExtend(QueueExtend {
        topic,
        receipts,
        visibility_ms,
    });
    Proposal::new(cmd, count)
}

/// Answers how many dead letters went back to the topic.
pub fn redrive(topic: String) -> Proposal<u64> {
    Proposal::new(Command::QueueRedrive(QueueRedrive { topic }), count)
}

pub fn configure(topic: String, s: &dsync_api::queue::TopicSettings) -> Proposal<()> {
    let cmd = Command::QueueConfigure(QueueConfigure {
        topic,
        max_attempts: s.max_attempts,
        visibility_ms: s.visibility_ms,
        max_message_bytes: s.max_message_bytes,
        retention_ms: s.retention_ms,
    });
    Proposal::new(cmd, done)
}
