//! `/v1/queues`: enqueue, consume (long poll), ack/nack/extend, redrive,
//! per-topic settings and stats.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use dsync_api::queue::*;
use dsync_api::types::{Consistency, ReadQuery};
use dsync_api::{ApiError, ErrorCode};

use super::error::{invalid, HttpError, HttpResult};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::auth::guard::Caller;
use crate::auth::limits::rate_limited;
use crate::auth::ownership::qualify_owner;
use crate::error::Error;
use crate::node::Node;
use crate::proposer::now_ms;
use crate::state::queue::{receipt, Incoming};
use crate::state::{CmdValue, Command};

pub fn router() -> Router<Arc<Node>> {
    Router::new()
        .route("/v1/queues", get(list))
        .route("/v1/queues/{topic}", get(stats).put(configure))
        .route("/v1/queues/{topic}/messages", post(enqueue))
        .route("/v1/queues/{topic}/consume", post(consume))
        .route("/v1/queues/{topic}/ack", post(ack))
        .route("/v1/queues/{topic}/nack", post(nack))
        .route("/v1/queues/{topic}/extend", post(extend))
        .route("/v1/queues/{topic}/redrive", post(redrive))
}

fn check_name(what: &str, v: &str, max: usize) -> HttpResult<()> {
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{what} must be 1 to {max} bytes of printable text"
        )));
    }
    Ok(())
}

fn check_count(what: &str, n: usize) -> HttpResult<()> {
    if n == 0 || n > MAX_BATCH {
        return Err(invalid(format!("{what} must hold 1 to {MAX_BATCH} items")));
    }
    Ok(())
}

fn count_of(v: CmdValue) -> HttpResult<u64> {
    match v {
        CmdValue::Count(n) => Ok(n),
        other => Err(Error::Internal(format!("unexpected result {other:?}")).into()),
    }
}

#[utoipa::path(
    post,
    path = "/v1/queues/{topic}/messages",
    tag = "queues",
    params(
        ("topic" = String, Path, description = "Topic: 1 to 200 bytes of printable text", min_length = 1, max_length = 200, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"),
    ),
    request_body = dsync_api::queue::EnqueueRequest,
    responses(
        (status = 201, description = "Enqueued (a repeated `dedup_id` yields the first id)", body = dsync_api::queue::EnqueueResponse),
    )
)]
async fn enqueue(
    State(node): State<Arc<Node>>,
    ApiPath(topic): ApiPath<String>,
    ApiJson(req): ApiJson<EnqueueRequest>,
) -> HttpResult<(StatusCode, Json<EnqueueResponse>)> {
    check_name("topic", &topic, MAX_TOPIC)?;
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
            check_name("dedup_id", d, MAX_DEDUP_ID)?;
        }
        msgs.push(Incoming {
            payload,
            delay_ms,
            dedup_id: m.dedup_id,
        });
    }
    let max_held = node.security.limits.config.max_queued_messages;
    let held = node.sm.read().data.queues.held();
    if held.saturating_add(msgs.len()) > max_held {
        return Err(rate_limited(format!(
            "the queues hold {held} messages and {} more would pass the limit of {max_held}; \
             consume and ack, then retry",
            msgs.len()
        ))
        .into());
    }
    match node.write(Command::QueueEnqueue { topic, msgs }).await? {
        CmdValue::Ids(ids) => Ok((StatusCode::CREATED, Json(EnqueueResponse { ids }))),
        other => Err(Error::Internal(format!("unexpected result {other:?}")).into()),
    }
}

#[utoipa::path(
    post,
    path = "/v1/queues/{topic}/consume",
    tag = "queues",
    params(
        ("topic" = String, Path, description = "Topic: 1 to 200 bytes of printable text", min_length = 1, max_length = 200, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"),
    ),
    request_body = dsync_api::queue::ConsumeRequest,
    responses(
        (status = 200, description = "Delivered messages (none if none became ready in `wait_ms`)", body = dsync_api::queue::ConsumeResponse),
    )
)]
async fn consume(
    State(node): State<Arc<Node>>,
    caller: Caller,
    ApiPath(topic): ApiPath<String>,
    ApiJson(mut req): ApiJson<ConsumeRequest>,
) -> HttpResult<Json<ConsumeResponse>> {
    check_name("topic", &topic, MAX_TOPIC)?;
    check_name("consumer", &req.consumer, MAX_CONSUMER)?;
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
        Some(node.security.limits.long_poll(&caller.key)?)
    } else {
        None
    };
    req.consumer = qualify_owner(&caller.principal, &req.consumer);
    let delivered = node.queue_consume(topic, req).await?;
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

/// The shared part of ack, nack and extend: validate, build the command
/// with `make`, apply it, report how many receipts took effect.
async fn settle(
    node: &Node,
    caller: &Caller,
    topic: String,
    req: &ReceiptsRequest,
    make: impl FnOnce(String, Vec<String>) -> Command,
) -> HttpResult<Json<ReceiptsResponse>> {
    check_name("topic", &topic, MAX_TOPIC)?;
    check_count("receipts", req.receipts.len())?;
    if req.receipts.iter().any(|r| r.len() > 64) {
        return Err(invalid("a receipt is at most 64 bytes"));
    }
    // A receipt delivered to another principal is refused before anything
    // is applied (403), like the all-or-nothing check of stale receipts.
    let receipts = req
        .receipts
        .iter()
        .map(|r| node.security.auth.open_receipt(&caller.principal, r))
        .collect::<Result<Vec<_>, _>>()?;
    let cmd = make(topic, receipts);
    let n = count_of(node.write(cmd).await?)?;
    Ok(Json(ReceiptsResponse { count: n as usize }))
}

#[utoipa::path(
    post,
    path = "/v1/queues/{topic}/ack",
    tag = "queues",
    params(
        ("topic" = String, Path, description = "Topic: 1 to 200 bytes of printable text", min_length = 1, max_length = 200, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"),
    ),
    request_body = dsync_api::queue::ReceiptsRequest,
    responses(
        (status = 200, description = "Acknowledged", body = dsync_api::queue::ReceiptsResponse),
        (status = 409, description = "`stale_receipt`: a receipt of an earlier delivery", body = dsync_api::ErrorBody),
    )
)]
async fn ack(
    State(node): State<Arc<Node>>,
    caller: Caller,
    ApiPath(topic): ApiPath<String>,
    ApiJson(req): ApiJson<ReceiptsRequest>,
) -> HttpResult<Json<ReceiptsResponse>> {
    settle(&node, &caller, topic, &req, |topic, receipts| {
        Command::QueueAck { topic, receipts }
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/queues/{topic}/nack",
    tag = "queues",
    params(
        ("topic" = String, Path, description = "Topic: 1 to 200 bytes of printable text", min_length = 1, max_length = 200, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"),
    ),
    request_body = dsync_api::queue::ReceiptsRequest,
    responses(
        (status = 200, description = "Made visible again after `delay_ms`", body = dsync_api::queue::ReceiptsResponse),
        (status = 409, description = "`stale_receipt`: a receipt of an earlier delivery", body = dsync_api::ErrorBody),
    )
)]
async fn nack(
    State(node): State<Arc<Node>>,
    caller: Caller,
    ApiPath(topic): ApiPath<String>,
    ApiJson(req): ApiJson<ReceiptsRequest>,
) -> HttpResult<Json<ReceiptsResponse>> {
    let delay_ms = req.delay_ms.unwrap_or(0);
    if delay_ms > MAX_DELAY_MS {
        return Err(invalid(format!("delay_ms must be at most {MAX_DELAY_MS}")));
    }
    settle(&node, &caller, topic, &req, |topic, receipts| {
        Command::QueueNack {
            topic,
            receipts,
            delay_ms,
        }
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/queues/{topic}/extend",
    tag = "queues",
    params(
        ("topic" = String, Path, description = "Topic: 1 to 200 bytes of printable text", min_length = 1, max_length = 200, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"),
    ),
    request_body = dsync_api::queue::ReceiptsRequest,
    responses(
        (status = 200, description = "Invisible for `visibility_ms` more", body = dsync_api::queue::ReceiptsResponse),
        (status = 409, description = "`stale_receipt`: a receipt of an earlier delivery", body = dsync_api::ErrorBody),
    )
)]
async fn extend(
    State(node): State<Arc<Node>>,
    caller: Caller,
    ApiPath(topic): ApiPath<String>,
    ApiJson(req): ApiJson<ReceiptsRequest>,
) -> HttpResult<Json<ReceiptsResponse>> {
    let visibility_ms = req
        .visibility_ms
        .filter(|v| (1..=MAX_VISIBILITY_MS).contains(v))
        .ok_or_else(|| {
            invalid(format!(
                "extend needs visibility_ms between 1 and {MAX_VISIBILITY_MS}"
            ))
        })?;
    settle(&node, &caller, topic, &req, |topic, receipts| {
        Command::QueueExtend {
            topic,
            receipts,
            visibility_ms,
        }
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/queues/{topic}/redrive",
    tag = "queues",
    params(
        ("topic" = String, Path, description = "Topic: 1 to 200 bytes of printable text", min_length = 1, max_length = 200, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"),
    ),
    responses(
        (status = 200, description = "Dead letters moved back to the topic", body = dsync_api::queue::RedriveResponse),
    )
)]
async fn redrive(
    State(node): State<Arc<Node>>,
    ApiPath(topic): ApiPath<String>,
) -> HttpResult<Json<RedriveResponse>> {
    check_name("topic", &topic, MAX_TOPIC)?;
    let moved = count_of(node.write(Command::QueueRedrive { topic }).await?)?;
    Ok(Json(RedriveResponse { moved }))
}

#[utoipa::path(
    put,
    path = "/v1/queues/{topic}",
    tag = "queues",
    params(
        ("topic" = String, Path, description = "Topic: 1 to 200 bytes of printable text", min_length = 1, max_length = 200, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"),
    ),
    request_body = dsync_api::queue::TopicSettings,
    responses(
        (status = 200, description = "The topic with its new settings", body = dsync_api::queue::TopicStats),
    )
)]
async fn configure(
    State(node): State<Arc<Node>>,
    ApiPath(topic): ApiPath<String>,
    ApiJson(s): ApiJson<TopicSettings>,
) -> HttpResult<Json<TopicStats>> {
    check_name("topic", &topic, MAX_TOPIC)?;
    if s.max_attempts.is_some_and(|v| v == 0 || v > 1000) {
        return Err(invalid("max_attempts must be 1 to 1000"));
    }
    if s.visibility_ms
        .is_some_and(|v| v == 0 || v > MAX_VISIBILITY_MS)
    {
        return Err(invalid(format!(
            "visibility_ms must be 1 to {MAX_VISIBILITY_MS}"
        )));
    }
    if s.max_message_bytes
        .is_some_and(|v| v == 0 || v > HARD_MAX_MESSAGE_BYTES)
    {
        return Err(invalid(format!(
            "max_message_bytes must be 1 to {HARD_MAX_MESSAGE_BYTES}"
        )));
    }
    if s.retention_ms
        .is_some_and(|v| !(1000..=14 * 24 * 3600 * 1000).contains(&v))
    {
        return Err(invalid("retention_ms must be 1 s to 14 days"));
    }
    let cmd = Command::QueueConfigure {
        topic: topic.clone(),
        max_attempts: s.max_attempts,
        visibility_ms: s.visibility_ms,
        max_message_bytes: s.max_message_bytes,
        retention_ms: s.retention_ms,
    };
    node.write(cmd).await?;
    node.read_barrier(Consistency::Leader, None).await?;
    let stats = node.sm.read().data.queues.stats(&topic, now_ms());
    stats
        .map(Json)
        .ok_or_else(|| Error::Internal("topic vanished after configuration".into()).into())
}

#[utoipa::path(
    get,
    path = "/v1/queues/{topic}",
    tag = "queues",
    params(
        ("topic" = String, Path, description = "Topic: 1 to 200 bytes of printable text", min_length = 1, max_length = 200, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"),
        ("consistency" = Option<dsync_api::types::Consistency>, Query, description = "Read consistency (default `linearizable`)"),
        ("max_staleness_ms" = Option<u64>, Query, description = "With `consistency=stale`: refuse (503) if this node may be further behind"),
    ),
    responses(
        (status = 200, description = "The topic's counters and settings", body = dsync_api::queue::TopicStats),
        (status = 404, description = "`not_found`: no such topic", body = dsync_api::ErrorBody),
    )
)]
async fn stats(
    State(node): State<Arc<Node>>,
    ApiPath(topic): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> HttpResult<Json<TopicStats>> {
    check_name("topic", &topic, MAX_TOPIC)?;
    node.read_barrier(q.consistency, q.max_staleness_ms).await?;
    let stats = node.sm.read().data.queues.stats(&topic, now_ms());
    stats
        .map(Json)
        .ok_or_else(|| Error::NotFound(format!("topic {topic:?} does not exist")).into())
}

#[utoipa::path(
    get,
    path = "/v1/queues",
    tag = "queues",
    params(
        ("limit" = Option<usize>, Query, description = "Most items listed (default 1000)", minimum = 1, maximum = 10000),
        ("consistency" = Option<dsync_api::types::Consistency>, Query, description = "Read consistency (default `linearizable`)"),
        ("max_staleness_ms" = Option<u64>, Query, description = "With `consistency=stale`: refuse (503) if this node may be further behind"),
    ),
    responses(
        (status = 200, description = "Every topic's stats", body = dsync_api::queue::TopicList),
    )
)]
async fn list(
    State(node): State<Arc<Node>>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> HttpResult<Json<TopicList>> {
    node.read_barrier(q.consistency, q.max_staleness_ms).await?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let topics = node.sm.read().data.queues.all_stats(now_ms(), limit);
    Ok(Json(TopicList { topics }))
}
