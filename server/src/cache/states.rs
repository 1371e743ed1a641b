//! Views of the lines: this node's own, and one key across the cluster.

use std::time::{Duration, Instant};

use dsync_api::cache::{LineInfo, LineState, NodeLineState};
use dsync_api::routes;

use super::{HolderReply, HolderRequest, Host};
use crate::raft::network::post_bincode;

const STATE_TIMEOUT: Duration = Duration::from_secs(1);

/// This node's own lines, most recently used first.
pub fn lines(h: &impl Host, limit: usize) -> (Vec<LineInfo>, bool) {
    h.cache().lines().list(Instant::now(), limit)
}

/// The state of `key` on every member (unreachable ones say why).
pub async fn states(h: &impl Host, key: &str) -> Vec<NodeLineState> {
    let (peers, breakers) = h.peers();
    let asks = h
        .control()
        .members()
        .into_iter()
        .map(|(id, addr)| async move {
            let info = if id == h.id() {
                Ok(h.cache().lines().info(key, Instant::now()))
            } else {
                let req = HolderRequest::State {
                    key: key.to_string(),
                };
                post_bincode::<_, HolderReply>(
                    peers,
                    breakers,
                    (id, &addr),
                    routes::RAFT_CACHE_HOLDER,
                    &req,
                    STATE_TIMEOUT,
                )
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| match r {
                    HolderReply::State(s) => Ok(s),
                    other => Err(format!("unexpected reply {other:?}")),
                })
            };
            match info {
                Ok(Some(l)) => NodeLineState {
                    node: id,
                    state: l.state,
                    version: Some(l.version),
                    lease_remaining_ms: Some(l.lease_remaining_ms),
                    error: None,
                },
                Ok(None) => NodeLineState {
                    node: id,
                    state: LineState::I,
                    version: None,
                    lease_remaining_ms: None,
                    error: None,
                },
                Err(e) => NodeLineState {
                    node: id,
                    state: LineState::I,
                    version: None,
                    lease_remaining_ms: None,
                    error: Some(e),
                },
            }
        });
    futures::future::join_all(asks).await
}
