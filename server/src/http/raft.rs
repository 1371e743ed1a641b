//! Peer-only routes: Raft RPCs and forwarding, bincode in and out; their
//! errors are JSON like every other route's.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use dsync_api::routes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{invalid, HttpError};
use super::extract::ApiBytes;
use crate::error::Error;
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
        .route(routes::RAFT_GROUP_RPC, post(group_rpc))
}

/// A queue group's Raft RPC; 404 (a network error to the sender, which
/// retries) while this node does not host the group yet.
async fn group_rpc(
    State(node): State<Arc<Node>>,
    axum::extract::Path((group, rpc)): axum::extract::Path<(u64, String)>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Response {
    let Some(g) = node.groups.get(group) else {
        return HttpError::from(Error::NotFound(format!(
            "queue group {group} is not hosted on node {}",
            node.id
        )))
        .into_response();
    };
    match rpc.as_str() {
        "append" => match decode(&headers, &body) {
            Ok(req) => encode(&g.raft.append_entries(req).await),
            Err(r) => r,
        },
        "vote" => match decode(&headers, &body) {
            Ok(req) => encode(&g.raft.vote(req).await),
            Err(r) => r,
        },
        "snapshot" => match decode(&headers, &body) {
            Ok(req) => encode(&g.raft.install_snapshot(req).await),
            Err(r) => r,
        },
        other => HttpError::from(Error::NotFound(format!("no Raft RPC {other:?}"))).into_response(),
    }
}

fn decode<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, Response> {
    let protocol = headers.get(PROTOCOL_HEADER).and_then(|v| v.to_str().ok());
    let want = dsync_api::PROTOCOL_VERSION.to_string();
    if protocol != Some(want.as_str()) {
        return Err(invalid(format!(
            "peer protocol {protocol:?} is not supported (expected {want} in {PROTOCOL_HEADER})"
        ))
        .into_response());
    }
    bincode::deserialize(body)
        .map_err(|e| invalid(format!("bad peer message: {e}")).into_response())
}

fn encode<T: Serialize>(value: &T) -> Response {
    match bincode::serialize(value) {
        Ok(bytes) => ([(axum::http::header::CONTENT_TYPE, BINCODE)], bytes).into_response(),
        Err(e) => {
            HttpError::from(Error::Internal(format!("encoding a peer reply: {e}"))).into_response()
        }
    }
}

async fn append(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Response {
    let req: openraft::raft::AppendEntriesRequest<crate::raft::TypeConfig> =
        match decode(&headers, &body) {
            Ok(r) => r,
            Err(r) => return r,
        };
    crate::cache::observe_leader_term(&node, req.vote.leader_id().get_term());
    let res = node.control.raft.append_entries(req).await;
    if matches!(&res, Ok(r) if r.is_success()) {
        node.touch_leader_contact();
    }
    encode(&res)
}

async fn vote(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Response {
    match decode(&headers, &body) {
        Ok(req) => encode(&node.control.raft.vote(req).await),
        Err(r) => r,
    }
}

async fn snapshot(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Response {
    match decode(&headers, &body) {
        Ok(req) => encode(&node.control.raft.install_snapshot(req).await),
        Err(r) => r,
    }
}

async fn forward(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Response {
    match decode::<ForwardRequest>(&headers, &body) {
        Ok(req) => encode(&node.handle_forward(req).await),
        Err(r) => r,
    }
}

async fn cache_directory(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Response {
    match decode::<crate::cache::DirRequest>(&headers, &body) {
        Ok(req) => {
            node.metrics.cache.remote_requests.inc();
            let res = crate::cache::handle_directory(&*node, req)
                .await
                .map_err(|e| {
                    let api = e.to_api();
                    crate::state::CmdError::new(api.code, api.message)
                });
            encode(&res)
        }
        Err(r) => r,
    }
}

async fn cache_holder(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Response {
    match decode::<crate::cache::HolderRequest>(&headers, &body) {
        Ok(req) => {
            if !matches!(req, crate::cache::HolderRequest::State { .. }) {
                node.metrics.cache.remote_requests.inc();
            }
            encode(&crate::cache::handle_holder(&*node, req).await)
        }
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, StatusCode};
    use dsync_api::ErrorBody;

    use super::*;

    async fn error_of(resp: Response) -> (StatusCode, ErrorBody) {
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not a JSON error ({e}): {bytes:?}"));
        (status, body)
    }

    #[tokio::test]
    async fn a_wrong_protocol_or_a_garbage_body_is_a_json_400() {
        let mut headers = HeaderMap::new();
        let (status, body) = error_of(decode::<u64>(&headers, b"").unwrap_err()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.error.message.contains("peer protocol"), "{body:?}");
        headers.insert(
            PROTOCOL_HEADER,
            HeaderValue::from(dsync_api::PROTOCOL_VERSION),
        );
        let (status, body) = error_of(decode::<u64>(&headers, b"\x01").unwrap_err()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body.error.code, dsync_api::ErrorCode::InvalidArgument);
        assert!(
            body.error.message.starts_with("bad peer message"),
            "{body:?}"
        );
    }
}
