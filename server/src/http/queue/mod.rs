//! `/v1/queues`: enqueue, consume (long poll), ack/nack/extend, redrive,
//! per-topic settings and stats.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use dsync_api::auth::Kind;
use dsync_api::queue::*;
use dsync_api::routes;
use dsync_api::shards::CONTROL_GROUP;
use dsync_api::{ApiError, ErrorCode};
use utoipa_axum::routes;

use super::error::{invalid, HttpError, HttpResult};
use super::extract::{Json, RequestId};
use super::route::Api;
use crate::auth::limits::{rate_limited, room_for_new};
use crate::auth::ownership::qualify_owner;
use crate::auth::policy::{On, Rule};
use crate::auth::Caller;
use crate::http::params::{check_printable, RequestIdHeader, Topic};
use crate::node::Node;
use crate::state::command::queue;
use crate::state::queue::{receipt, Incoming};

mod settle;
pub mod topics;

/// Calls on the topic the path names.
const ONE_TOPIC: Rule = Rule::Data(On::One(Kind::Queues));

pub fn api() -> Api {
    Api::client()
        .tagged("queues")
        .route(Rule::Data(On::All(Kind::Queues)), routes!(topics::list))
        .route(ONE_TOPIC, routes!(topics::stats, topics::configure))
        .route(ONE_TOPIC, routes!(enqueue))
        .route(ONE_TOPIC, routes!(consume))
        .route(ONE_TOPIC, routes!(settle::ack))
        .route(ONE_TOPIC, routes!(settle::nack))
        .route(ONE_TOPIC, routes!(settle::extend))
        .route(ONE_TOPIC, routes!(topics::redrive))
}

/// 429 when `topic` is new and `limits.max_topics` topics exist.
/// (A queue group's leader checks its own topics.)
pub(super) fn room_for_topic(node: &Node, topic: &str) -> HttpResult<()> {
    if node.groups.routing().group_of(topic) != CONTROL_GROUP {
        return Ok(());
    }
    let sm = node.control.sm.read();
    let queues = &sm.data.queues;
    room_for_new(
        "topics",
        "max_topics",
        queues.get(topic).is_some(),
        queues.topic_count(),
        node.security.limits.config.max_topics,
    )?;
    Ok(())
}

pub(super) fn check_count(what: &str, n: usize) -> HttpResult<()> {
    if n == 0 || n > MAX_BATCH {
        return Err(invalid(format!("{what} must hold 1 to {MAX_BATCH} items")));
    }
    Ok(())
}

#[utoipa::path(post, path = routes::TOPIC_MESSAGES, params(Topic, RequestIdHeader),
    responses(
        (status = 201, description = "Enqueued (a repeated `dedup_id` yields the first id)", body = dsync_api::queue::EnqueueResponse),
    ),
)]
async fn enqueue(
    State(node): State<Arc<Node>>,
    id: RequestId,
    Topic(topic): Topic,
    Json(req): Json<EnqueueRequest>,
) -> HttpResult<(StatusCode, Json<EnqueueResponse>)> {
    let messages = req.into_messages();
    check_count("messages", messages.len())?;
    let mut msgs = Vec::with_capacity(messages.len());
    for m in messages {
        let payload = m.payload.to_string();
        if payload.len() as u64 > HARD_MAX_MESSAGE_BYTES {
            return Err(HttpError(ApiError::new(
                ErrorCode::TooLarge,
                format!(
                    "payload of {} bytes exceeds the {HARD_MAX_MESSAGE_BYTES}-byte cap",
                    payload.len()
                ),
            )));
        }
        let delay_ms = m.delay_ms.unwrap_or(0);
        if delay_ms > MAX_DELAY_MS {
            return Err(invalid(format!("delay_ms must be at most {MAX_DELAY_MS}")));
        }
        if let Some(d) = &m.dedup_id {
            check_printable("dedup_id", d, MAX_DEDUP_ID)?;
        }
        msgs.push(Incoming {
            payload,
            delay_ms,
            dedup_id: m.dedup_id,
        });
    }
    room_for_topic(&node, &topic)?;
    // A queue group's leader checks the bounds against its own tables.
    if node.groups.routing().group_of(&topic) == CONTROL_GROUP {
        let max_held = node.security.limits.config.max_queued_messages;
        let held = node.control.sm.read().data.queues.held();
        if held.saturating_add(msgs.len()) > max_held {
            return Err(rate_limited(format!(
                "the queues hold {held} messages and {} more would pass the limit of {max_held}; \
                 consume and ack, then retry",
                msgs.len()
            ))
            .into());
        }
    }
    let enqueue = queue::enqueue(topic.clone(), msgs).once(id.as_deref());
    let ids = node.propose_for_topic(&topic, enqueue).await?;
    Ok((StatusCode::CREATED, Json(EnqueueResponse { ids })))
}

#[utoipa::path(post, path = routes::TOPIC_CONSUME, params(Topic),
    responses(
        (status = 200, description = "Delivered messages (none if none became ready in `wait_ms`)", body = dsync_api::queue::ConsumeResponse),
    ),
)]
async fn consume(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Topic(topic): Topic,
    Json(mut req): Json<ConsumeRequest>,
) -> HttpResult<Json<ConsumeResponse>> {
    check_printable("consumer", &req.consumer, MAX_CONSUMER)?;
    check_count("max", req.max)?;
    if req
        .visibility_ms
        .is_some_and(|v| v == 0 || v > MAX_VISIBILITY_MS)
    {
        return Err(invalid(format!(
            "visibility_ms must be 1 to {MAX_VISIBILITY_MS}"
        )));
    }
    if req.wait_ms > MAX_WAIT_MS {
        return Err(invalid(format!("wait_ms must be at most {MAX_WAIT_MS}")));
    }
    let _poll = if req.wait_ms > 0 {
        Some(node.security.limits.long_poll(&caller.key())?)
    } else {
        None
    };
    req.consumer = qualify_owner(&caller.principal, &req.consumer);
    let delivered = node.queue_consume_routed(topic, req).await?;
    let auth = &node.security.auth;
    Ok(Json(ConsumeResponse {
        messages: delivered
            .into_iter()
            .map(|f| Delivered {
                id: f.msg.id,
                payload: serde_json::from_str(&f.msg.payload).unwrap_or(serde_json::Value::Null),
                attempt: f.msg.attempt,
                receipt: auth.seal_receipt(&caller.principal, receipt(f.msg.id, f.delivery)),
                enqueued_at_ms: f.msg.enqueued_at_ms,
            })
            .collect(),
    }))
}
