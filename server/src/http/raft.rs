//! Peer-only routes: Raft RPCs and forwarding, bincode in and out.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use dsync_api::routes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::node::{ForwardRequest, Node};
use crate::raft::network::{BINCODE, PROTOCOL_HEADER};

pub fn router() -> Router<Arc<Node>> {
    Router::new()
        .route(routes::RAFT_APPEND, post(append))
        .route(routes::RAFT_VOTE, post(vote))
        .route(routes::RAFT_SNAPSHOT, post(snapshot))
        .route(routes::RAFT_FORWARD, post(forward))
        .route(routes::RAFT_CACHE_DIRECTORY, post(cache_directory))
        .route(routes::RAFT_CACHE_HOLDER, post(cache_holder))
}

fn reject(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, msg).into_response()
}

fn decode<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, Response> {
    let protocol = headers.get(PROTOCOL_HEADER).and_then(|v| v.to_str().ok());
    let want = dsync_api::PROTOCOL_VERSION.to_string();
    if protocol != Some(want.as_str()) {
        return Err(reject(format!(
            "peer protocol {protocol:?} is not supported (expected {want})"
        )));
    }
    bincode::deserialize(body).map_err(|e| reject(format!("bad peer message: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Response {
    match bincode::serialize(value) {
        Ok(bytes) => ([(axum::http::header::CONTENT_TYPE, BINCODE)], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn append(State(node): State<Arc<Node>>, headers: HeaderMap, body: Bytes) -> Response {
    let req: openraft::raft::AppendEntriesRequest<crate::raft::TypeConfig> =
        match decode(&headers, &body) {
            Ok(r) => r,
            Err(r) => return r,
        };
    node.observe_leader_term(req.vote.leader_id().get_term());
    let res = node.raft.append_entries(req).await;
    if matches!(&res, Ok(r) if r.is_success()) {
        node.touch_leader_contact();
    }
    encode(&res)
}

async fn vote(State(node): State<Arc<Node>>, headers: HeaderMap, body: Bytes) -> Response {
    match decode(&headers, &body) {
        Ok(req) => encode(&node.raft.vote(req).await),
        Err(r) => r,
    }
}

async fn snapshot(State(node): State<Arc<Node>>, headers: HeaderMap, body: Bytes) -> Response {
    match decode(&headers, &body) {
        Ok(req) => encode(&node.raft.install_snapshot(req).await),
        Err(r) => r,
    }
}

async fn forward(State(node): State<Arc<Node>>, headers: HeaderMap, body: Bytes) -> Response {
    match decode::<ForwardRequest>(&headers, &body) {
        Ok(req) => encode(&node.handle_forward(req).await),
        Err(r) => r,
    }
}

async fn cache_directory(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match decode::<crate::cache::DirRequest>(&headers, &body) {
        Ok(req) => {
            node.metrics.cache.remote_requests.inc();
            let res = node.handle_directory(req).await.map_err(|e| {
                let api = e.to_api();
                crate::state::CmdError::new(api.code, api.message)
            });
            encode(&res)
        }
        Err(r) => r,
    }
}

async fn cache_holder(State(node): State<Arc<Node>>, headers: HeaderMap, body: Bytes) -> Response {
    match decode::<crate::cache::HolderRequest>(&headers, &body) {
        Ok(req) => {
            if !matches!(req, crate::cache::HolderRequest::State { .. }) {
                node.metrics.cache.remote_requests.inc();
            }
            encode(&node.handle_holder(req).await)
        }
        Err(r) => r,
    }
}
