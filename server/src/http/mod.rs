//! HTTP: one router per domain, merged here, with the response headers,
//! metrics and JSON fallbacks every route shares.

mod auth;
mod cache;
mod cluster;
pub mod error;
mod events;
mod extract;
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
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use dsync_api::{ApiError, ErrorCode, HEADER_LEADER, HEADER_NODE, HEADER_TERM};

use self::error::HttpError;
use self::guard::guard;
use crate::metrics::RouteLabels;
use crate::node::Node;

/// Peers may send large append batches and snapshot chunks.
const PEER_BODY_LIMIT: usize = 256 * 1024 * 1024;

pub fn router(node: Arc<Node>) -> Router {
    routes(node.config.max_body_bytes)
        // After routing (the topic is a path parameter), before the fallbacks.
        .route_layer(middleware::from_fn_with_state(
            node.clone(),
            shards::group_header,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Outside every route, so routes any router adds are guarded too.
        .layer(middleware::from_fn_with_state(node.security.clone(), guard))
        .layer(middleware::from_fn_with_state(
            node.clone(),
            lifecycle::drain_gate,
        ))
        // Before any work on the request, inside `observe` so the refusal
        // carries the node headers and is counted.
        .layer(middleware::from_fn_with_state(node.clone(), head::limits))
        .layer(middleware::from_fn_with_state(node.clone(), observe))
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

/// The method as a metric label. Any token is a valid HTTP method, so a
/// client could otherwise mint a series per request (the request metrics
/// are recorded before auth): methods no route takes share one label.
fn method_label(m: &Method) -> String {
    match *m {
        Method::GET | Method::HEAD | Method::POST | Method::PUT | Method::DELETE => {
            m.as_str().to_string()
        }
        _ => "other".to_string(),
    }
}

/// Adds `x-dsync-node`, `x-dsync-leader`, `x-dsync-term` and records latency.
async fn observe(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let mut resp = next.run(req).await;
    let (leader, term) = {
        let m = node.control.raft.metrics();
        let m = m.borrow();
        (m.current_leader, m.current_term)
    };
    let h = resp.headers_mut();
    h.insert(HEADER_NODE, HeaderValue::from(node.id));
    h.insert(
        HEADER_LEADER,
        leader.map_or(HeaderValue::from_static(""), HeaderValue::from),
    );
    h.insert(HEADER_TERM, HeaderValue::from(term));
    node.metrics
        .requests
        .get_or_create(&RouteLabels {
            method,
            route,
            status: resp.status().as_u16(),
        })
        .observe(started.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_metric_label() {
        assert_eq!(method_label(&Method::PUT), "PUT");
        for m in ["M1", "M2", "PATCH", "OPTIONS"] {
            assert_eq!(method_label(&m.parse().unwrap()), "other");
        }
    }
}
