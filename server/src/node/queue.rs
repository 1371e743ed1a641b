//! Queue consumption with long polling.

use std::future::Future;
use std::time::Duration;

use dsync_api::queue::ConsumeRequest;

use super::Node;
use crate::error::{Error, Result};
use crate::raft::state_machine::SmShared;
use crate::state::command::queue;
use crate::state::queue::InFlight;
use crate::state::{CmdValue, Command};

impl Node {
    /// Delivers up to `req.max` messages of a control-group topic.
    pub async fn queue_consume(&self, topic: String, req: ConsumeRequest) -> Result<Vec<InFlight>> {
        consume_on(&self.control.sm, topic, req, |cmd| self.write(cmd)).await
    }
}

/// Delivers up to `req.max` messages from the group whose applied state is
/// `sm`, committing the delivery with `write`. With `wait_ms`, waits for
/// ready messages by watching that state, so an empty poll costs no Raft
/// write.
pub(super) async fn consume_on<E, F, Fut>(
    sm: &SmShared,
    topic: String,
    req: ConsumeRequest,
    write: F,
) -> std::result::Result<Vec<InFlight>, E>
where
    F: Fn(Command) -> Fut,
    Fut: Future<Output = std::result::Result<CmdValue, E>>,
    E: From<Error>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_millis(req.wait_ms);
    let mut rx = sm.subscribe();
    loop {
        let ready = {
            let st = sm.read();
            // Frozen for a move (or gone): the route's caller follows it.
            if let Some(e) = st.data.leaving(&topic) {
                return Err(Error::Api(e.to_api()).into());
            }
            st.data.queues.ready_count(&topic)
        };
        if ready > 0 || req.wait_ms == 0 {
            let consume = queue::consume(
                topic.clone(),
                req.consumer.clone(),
                req.max,
                req.visibility_ms,
            );
            let (cmd, answer) = consume.split();
            let delivered = answer.read(write(cmd).await?).map_err(Error::from)?;
            // Nothing delivered: another consumer took them first (or this
            // node lagged), so keep waiting.
            if !delivered.is_empty() || req.wait_ms == 0 {
                return Ok(delivered);
            }
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(Error::Unavailable("node is stopping".into()).into()),
            Err(_) => return Ok(Vec::new()),
        }
    }
}
