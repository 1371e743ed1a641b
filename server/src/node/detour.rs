//! Requests for a topic that is moving between queue groups wait in the
//! server instead of failing (DESIGN.md §2a "Resharding"): the group that
//! refuses one says whether the topic is `moving` (frozen, or a new topic
//! the reshard puts elsewhere) or `moved` (routes reach its new group at
//! `epoch`); the routing node waits for its routes to move on and tries
//! again.

use std::future::Future;
use std::time::Duration;

use dsync_api::ErrorCode;
use tokio::time::Instant;

use super::Node;
use crate::error::{Error, Result};

/// How long a request for a moving topic waits for its new route before
/// it is answered 503. A topic of 100,000 ready messages copies in a few
/// seconds.
const MOVE_WAIT: Duration = Duration::from_secs(30);
/// Routes follow the control group's applied state a moment after it
/// changes (`run_shard_host`); this is how often a waiter looks again.
const LOOK_AGAIN: Duration = Duration::from_millis(20);

/// The routes epoch a refusal asks to wait for, if it is a move's.
fn wait_for(e: &Error, epoch: u64) -> Option<u64> {
    let Error::Api(api) = e else { return None };
    if api.code != ErrorCode::Unavailable {
        return None;
    }
    if api.details.contains_key("moving") {
        return Some(epoch + 1);
    }
    let moved = api.details.get("moved")?.get("epoch")?.as_u64()?;
    Some(if moved > epoch { moved } else { epoch + 1 })
}

impl Node {
    /// Runs `call` on the queue group that routes `topic`; while the topic
    /// moves, waits for newer routes and calls again.
    pub(super) async fn detoured<T, F, Fut>(&self, topic: &str, call: F) -> Result<T>
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let deadline = Instant::now() + MOVE_WAIT;
        let mut applied = self.control.sm.subscribe();
        loop {
            let routing = self.groups.routing();
            let err = match call(routing.group_of(topic)).await {
                Err(e) => e,
                done => return done,
            };
            let Some(want) = wait_for(&err, routing.map.epoch) else {
                return Err(err);
            };
            while self.groups.routing().map.epoch < want {
                let now = Instant::now();
                if now >= deadline {
                    return Err(Error::Unavailable(format!(
                        "topic {topic:?} is still moving between queue groups after {}s; retry",
                        MOVE_WAIT.as_secs()
                    )));
                }
                let wait = LOOK_AGAIN.min(deadline - now);
                let _ = tokio::time::timeout(wait, applied.changed()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use dsync_api::ApiError;

    use super::*;
    use crate::state::handoff::moving;

    #[test]
    fn only_a_moves_refusal_waits() {
        let e = Error::Api(moving("t", 3).to_api());
        assert_eq!(wait_for(&e, 7), Some(8));
        let mut moved = ApiError::new(ErrorCode::Unavailable, "moved");
        moved
            .details
            .insert("moved".into(), serde_json::json!({"group": 2, "epoch": 12}));
        assert_eq!(wait_for(&Error::Api(moved.clone()), 7), Some(12));
        assert_eq!(wait_for(&Error::Api(moved), 12), Some(13));
        let other = Error::Api(ApiError::new(ErrorCode::Unavailable, "no leader"));
        assert_eq!(wait_for(&other, 7), None);
        assert_eq!(wait_for(&Error::Unavailable("x".into()), 7), None);
    }
}
