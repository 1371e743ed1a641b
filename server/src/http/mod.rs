//! HTTP: one router per domain, merged here, with the response headers,
//! metrics and JSON fallbacks every route shares.

mod auth;
mod cache;
mod cluster;
pub mod error;
mod events;
mod extract;
mod front;
mod guard;
mod head;
mod kv;
mod lifecycle;
mod locks;
pub mod openapi;
mod params;
mod queue;
mod raft;
pub mod route;
pub(crate) mod shards;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{header, Method, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::Router;
use dsync_api::{ApiError, ErrorCode};

use self::error::HttpError;
use crate::node::Node;

/// Peers may send large append batches and snapshot chunks.
const PEER_BODY_LIMIT: usize = 256 * 1024 * 1024;

pub fn router(node: Arc<Node>) -> Router {
    routes(node.config.max_body_bytes)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // `layer`, not `route_layer`: the fallbacks are guarded and counted too.
        .layer(middleware::from_fn_with_state(node.clone(), front::front))
        .with_state(node)
}

/// Every client route, with its OpenAPI entry and its rule.
pub(crate) fn api() -> route::Api {
    route::Api::operator()
        .merge(openapi::api())
        .merge(cluster::api())
        .merge(shards::api())
        .merge(lifecycle::api())
        .merge(auth::api())
        .merge(events::api())
        .merge(kv::api())
        .merge(locks::api())
        .merge(queue::api())
        .merge(cache::api())
}

/// Every route, before the layers that need a node.
pub(crate) fn routes(max_body_bytes: usize) -> Router<Arc<Node>> {
    let (client, _, _) = api().split();
    let client = client.layer(DefaultBodyLimit::max(max_body_bytes));
    let peer = raft::router().layer(DefaultBodyLimit::max(PEER_BODY_LIMIT));
    Router::new().merge(client).merge(peer)
}

async fn not_found(method: Method, uri: Uri) -> HttpError {
    HttpError(ApiError::new(
        ErrorCode::NotFound,
        format!("no route for {method} {}", uri.path()),
    ))
}

/// 405 with the `Allow` header RFC 9110 asks for (axum sets it only for a
/// router of one path).
async fn method_not_allowed(method: Method, uri: Uri, matched: Option<MatchedPath>) -> Response {
    let mut resp = HttpError(ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    ))
    .into_response();
    if let Some(allow) = matched.and_then(|m| openapi::allow(m.as_str())) {
        resp.headers_mut().insert(header::ALLOW, allow);
    }
    resp
}
