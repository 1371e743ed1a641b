//! Queue consumption with long polling.

use std::time::Duration;

use dsync_api::queue::ConsumeRequest;

use super::Node;
use crate::error::{Error, Result};
use crate::state::queue::InFlight;
use crate::state::{CmdValue, Command};

impl Node {
    /// Delivers up to `req.max` messages. With `wait_ms`, waits for ready
    /// messages by watching this node's applied state, so an empty poll
    /// costs no Raft write.
    pub async fn queue_consume(&self, topic: String, req: ConsumeRequest) -> Result<Vec<InFlight>> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(req.wait_ms);
        let mut rx = self.sm.subscribe();
        loop {
            let ready = self.sm.read().data.queues.ready_count(&topic);
            if ready > 0 || req.wait_ms == 0 {
                let cmd = Command::QueueConsume {
                    topic: topic.clone(),
                    consumer: req.consumer.clone(),
                    max: req.max,
                    visibility_ms: req.visibility_ms,
                };
                match self.write(cmd).await? {
                    CmdValue::Delivered(v) if !v.is_empty() || req.wait_ms == 0 => return Ok(v),
                    // Another consumer took them first (or this node lagged): keep waiting.
                    CmdValue::Delivered(_) => {}
                    other => return Err(Error::Internal(format!("unexpected result {other:?}"))),
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::Unavailable("node is stopping".into())),
                Err(_) => return Ok(Vec::new()),
            }
        }
    }
}
