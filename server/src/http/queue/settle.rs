//! Ack, nack and extend: three verbs on delivered messages' receipts, one
//! implementation. What sets them apart is [`Verb`]'s.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use dsync_api::queue::*;
use dsync_api::routes;

use super::check_count;
use crate::auth::Caller;
use crate::http::error::{invalid, HttpError, HttpResult};
use crate::http::extract::{Json, RequestId};
use crate::http::params::{RequestIdHeader, Topic};
use crate::node::Node;
use crate::state::command::queue;
use crate::state::Proposal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Ack,
    Nack,
    Extend,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Ack => "ack",
            Verb::Nack => "nack",
            Verb::Extend => "extend",
        }
    }

    /// 400 for a field another verb takes (silently ignoring it would leave
    /// the caller believing, say, that an ack was delayed) or a bad value.
    fn check(self, req: &ReceiptsRequest) -> HttpResult<()> {
        let not_taken = |field: &str, sent: bool, taker: Verb| {
            if sent && taker != self {
                let (verb, taker) = (self.name(), taker.name());
                return Err(invalid(format!("{verb} takes no `{field}` ({taker} does)")));
            }
            Ok(())
        };
        not_taken("delay_ms", req.delay_ms.is_some(), Verb::Nack)?;
        not_taken("visibility_ms", req.visibility_ms.is_some(), Verb::Extend)?;
        match self {
            Verb::Ack => Ok(()),
            Verb::Nack if req.delay_ms.unwrap_or(0) > MAX_DELAY_MS => {
                Err(invalid(format!("delay_ms must be at most {MAX_DELAY_MS}")))
            }
            Verb::Nack => Ok(()),
            Verb::Extend => match req.visibility_ms {
                Some(v) if (1..=MAX_VISIBILITY_MS).contains(&v) => Ok(()),
                _ => Err(invalid(format!(
                    "extend needs visibility_ms between 1 and {MAX_VISIBILITY_MS}"
                ))),
            },
        }
    }

    /// The command, for a request [`Verb::check`] passed.
    fn command(self, topic: String, receipts: Vec<String>, req: &ReceiptsRequest) -> Proposal<u64> {
        match self {
            Verb::Ack => queue::ack(topic, receipts),
            Verb::Nack => queue::nack(topic, receipts, req.delay_ms.unwrap_or(0)),
            Verb::Extend => queue::extend(topic, receipts, req.visibility_ms.unwrap_or(0)),
        }
    }
}

/// What each of the three takes: the topic, the caller, the request id
/// and the receipts.
pub struct Settle {
    node: Arc<Node>,
    caller: Caller,
    id: RequestId,
    topic: String,
    req: ReceiptsRequest,
}

impl FromRequest<Arc<Node>> for Settle {
    type Rejection = HttpError;

    async fn from_request(req: Request, node: &Arc<Node>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let Ok(caller) = Caller::from_request_parts(&mut parts, node).await;
        let id = RequestId::from_request_parts(&mut parts, node).await?;
        let Topic(topic) = Topic::from_request_parts(&mut parts, node).await?;
        let Json(req) = Json::from_request(Request::from_parts(parts, body), node).await?;
        Ok(Settle {
            node: node.clone(),
            caller,
            id,
            topic,
            req,
        })
    }
}

impl Settle {
    /// Validates, applies the verb, reports how many receipts took effect.
    async fn apply(self, verb: Verb) -> HttpResult<Json<ReceiptsResponse>> {
        let Settle {
            node,
            caller,
            id,
            topic,
            req,
        } = self;
        verb.check(&req)?;
        check_count("receipts", req.receipts.len())?;
        if req.receipts.iter().any(|r| r.len() > 64) {
            return Err(invalid("a receipt is at most 64 bytes"));
        }
        // A receipt delivered to another principal is refused before
        // anything is applied (403), like the all-or-nothing check of
        // stale receipts.
        let receipts = req
            .receipts
            .iter()
            .map(|r| node.security.auth.open_receipt(&caller.principal, r))
            .collect::<Result<Vec<_>, _>>()?;
        let settled = verb
            .command(topic.clone(), receipts, &req)
            .once(id.as_deref());
        let n = node.propose_for_topic(&topic, settled).await?;
        Ok(Json(ReceiptsResponse { count: n as usize }))
    }
}

/// One route per verb: its path, its OpenAPI entry and its handler.
macro_rules! settle_routes {
    ($($handler:ident: $path:ident, $verb:ident, $done:literal;)+) => {$(
        #[utoipa::path(post, path = routes::$path, params(Topic, RequestIdHeader),
            request_body = ReceiptsRequest,
            responses(
                (status = 200, description = $done, body = ReceiptsResponse),
                (status = 409, description = "`stale_receipt`: a receipt of an earlier delivery", body = dsync_api::ErrorBody),
            ),
        )]
        pub async fn $handler(call: Settle) -> HttpResult<Json<ReceiptsResponse>> {
            call.apply(Verb::$verb).await
        }
    )+};
}

settle_routes! {
    ack: TOPIC_ACK, Ack, "Acknowledged";
    nack: TOPIC_NACK, Nack, "Made visible again after `delay_ms`";
    extend: TOPIC_EXTEND, Extend, "Invisible for `visibility_ms` more";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(delay_ms: Option<u64>, visibility_ms: Option<u64>) -> ReceiptsRequest {
        ReceiptsRequest {
            receipts: vec!["r".into()],
            delay_ms,
            visibility_ms,
        }
    }

    #[test]
    fn each_verb_takes_its_own_fields_only() {
        assert!(Verb::Ack.check(&request(None, None)).is_ok());
        assert!(Verb::Ack.check(&request(Some(1), None)).is_err());
        assert!(Verb::Ack.check(&request(None, Some(1))).is_err());
        assert!(Verb::Nack.check(&request(Some(1), None)).is_ok());
        assert!(Verb::Nack
            .check(&request(Some(MAX_DELAY_MS + 1), None))
            .is_err());
        assert!(Verb::Nack.check(&request(None, Some(1))).is_err());
        assert!(Verb::Extend.check(&request(None, Some(1))).is_ok());
        assert!(Verb::Extend.check(&request(None, None)).is_err());
        assert!(Verb::Extend.check(&request(Some(1), Some(1))).is_err());
        let e = Verb::Ack.check(&request(Some(1), None)).unwrap_err();
        assert!(
            e.0.message.contains("ack takes no `delay_ms` (nack does)"),
            "{}",
            e.0.message
        );
    }
}
