//! `GET /v1/events`: the node's event bus as server-sent events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use dsync_api::auth::Role;
use dsync_api::events::Event;
use dsync_api::{routes, ApiError, ErrorCode};
use futures::stream::{self, Stream};
use utoipa_axum::routes;

use super::error::HttpResult;
use super::route::Api;
use crate::auth::policy::{On, Rule};
use crate::auth::Caller;
use crate::events::MAX_SUBSCRIBERS;
use crate::node::role_event;
use crate::node::Node;

/// Comment lines keep idle connections (and proxies) from timing out and
/// let a client notice a dead node.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

pub fn api() -> Api {
    Api::client()
        .tagged("events")
        .route(Rule::Role(Role::Read, On::Everything), routes!(events))
}

/// Starts with this node's role, then streams every event published from
/// now on; a subscriber that falls behind gets a `lagged` event instead of
/// slowing the node down.
#[utoipa::path(get, path = routes::EVENTS,
    responses(
        (status = 200, description = "A never-ending `text/event-stream`: each message's `event:` is the `kind` and its `data:` one `Event` as JSON; comment lines keep the connection alive", body = String, content_type = "text/event-stream"),
        (status = 429, description = "`rate_limited`: this node already streams to its maximum of subscribers, or this client to its own (`limits.max_event_streams_per_client`)", body = dsync_api::ErrorBody),
    ),
)]
async fn events(
    State(node): State<Arc<Node>>,
    caller: Caller,
) -> HttpResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let held = node.security.limits.event_stream(&caller.key())?;
    let sub = node.events.subscribe().ok_or_else(|| {
        ApiError::new(
            ErrorCode::RateLimited,
            format!("this node already streams events to {MAX_SUBSCRIBERS} subscribers"),
        )
    })?;
    let first = stream::iter([role_event(node.id, &node.control.raft)]);
    // The client's count drops when its stream does.
    let rest = stream::unfold((sub, held), |(mut sub, held)| async move {
        sub.next().await.map(|e| (e, (sub, held)))
    });
    let body = futures::StreamExt::map(futures::StreamExt::chain(first, rest), |e| Ok(to_sse(&e)));
    Ok(Sse::new(body).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

fn to_sse(e: &Event) -> SseEvent {
    let data = serde_json::to_string(e).unwrap_or_else(|_| r#"{"kind":"unknown"}"#.into());
    SseEvent::default().event(e.kind()).data(data)
}
