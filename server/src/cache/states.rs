//! Views of the lines: this node's own, and one key across the cluster.

use std::time::{Duration, Instant};

use dsync_api::cache::{LineInfo, LineState, NodeLineState};
use dsync_api::routes;

use super::{HolderReply, HolderRequest};
use crate::node::Node;
use crate::raft::network::post_bincode;

const STATE_TIMEOUT: Duration = Duration::from_secs(1);

impl Node {
    /// This node's own lines, most recently used first.
    pub fn cache_lines(&self, limit: usize) -> (Vec<LineInfo>, bool) {
        self.cache.lines().list(Instant::now(), limit)
    }

    /// The state of `key` on every member (unreachable ones say why).
    pub async fn cache_states(&self, key: &str) -> Vec<NodeLineState> {
        let members: Vec<(u64, String)> = {
            let m = self.control.raft.metrics();
            let m = m.borrow();
            m.membership_config
                .membership()
                .nodes()
                .map(|(id, n)| (*id, n.addr.clone()))
                .collect()
        };
        let asks = members.into_iter().map(|(id, addr)| async move {
            let info = if id == self.id {
                Ok(self.cache.lines().info(key, Instant::now()))
            } else {
                let req = HolderRequest::State {
                    key: key.to_string(),
                };
                post_bincode::<_, HolderReply>(
                    &self.peers,
                    &self.breakers,
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
}
