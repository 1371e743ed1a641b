//! Operator routes: member removal, backups, draining.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use dsync_api::types::{DrainResponse, MembershipResponse};
use dsync_api::{routes, ApiError, ErrorCode};

use super::error::{invalid, HttpError, HttpResult};
use super::extract::ApiPath;
use crate::node::Node;

pub fn router() -> Router<Arc<Node>> {
    Router::new()
        .route(&format!("{}/{{id}}", routes::MEMBERS), delete(remove))
        .route(routes::BACKUP, get(backup))
        .route(routes::NODE_DRAIN, post(drain).delete(undrain))
}

#[utoipa::path(
    delete,
    path = "/v1/cluster/members/{id}",
    tag = "cluster",
    params(
        ("id" = u64, Path, description = "Member id", minimum = 1),
    ),
    responses(
        (status = 200, description = "The membership after the removal", body = dsync_api::types::MembershipResponse),
        (status = 409, description = "`conflict`: too few healthy voters would remain", body = dsync_api::ErrorBody),
        (status = 503, description = "`unavailable`: no leader, or the change is refused for now", body = dsync_api::ErrorBody),
    )
)]
async fn remove(
    State(node): State<Arc<Node>>,
    ApiPath(id): ApiPath<String>,
) -> HttpResult<Json<MembershipResponse>> {
    let id: u64 = id
        .parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| invalid(format!("member id {id:?} is not a positive integer")))?;
    let members = node.remove_member(id).await?;
    Ok(Json(MembershipResponse { members }))
}

#[utoipa::path(
    get,
    path = "/v1/cluster/backup",
    tag = "cluster",
    responses(
        (status = 200, description = "A backup file of the whole state at a linearizable point", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 503, description = "`unavailable`: no leader or no quorum", body = dsync_api::ErrorBody),
    )
)]
async fn backup(State(node): State<Arc<Node>>) -> HttpResult<Response> {
    let bytes = node.backup().await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"dsync.backup\"",
            ),
        ],
        bytes,
    )
        .into_response())
}

/// Drains the node asked (not the leader): it turns clients away and, if
/// it leads, hands leadership to the most caught-up follower. If that
/// hand-off fails the drain is called off and the error returned; repeating
/// a drain is harmless.
#[utoipa::path(
    post,
    path = "/v1/node/drain",
    tag = "cluster",
    responses(
        (status = 200, description = "This node now turns clients away (503)", body = dsync_api::types::DrainResponse),
        (status = 400, description = "`invalid_argument`: this node leads and has no one to hand off to; the drain is called off", body = dsync_api::ErrorBody),
        (status = 503, description = "`unavailable`: the hand-off failed; the drain is called off", body = dsync_api::ErrorBody),
    )
)]
async fn drain(State(node): State<Arc<Node>>) -> HttpResult<Json<DrainResponse>> {
    node.set_draining(true);
    tracing::info!(id = node.id, "draining: client requests now get 503");
    let was_leader = node.is_leader();
    let leader = if was_leader {
        match node.transfer_leader(None).await {
            Ok(t) => Some(t.leader),
            Err(e) => {
                // A leader that cannot hand off (e.g. a one-node cluster)
                // keeps serving rather than leaving the cluster leaderless
                // for clients.
                node.set_draining(false);
                tracing::warn!(id = node.id, "drain called off, hand-off failed: {e}");
                return Err(e.into());
            }
        }
    } else {
        node.status().leader
    };
    // Best effort, like a stop: a group still led here elects again
    // when the node goes.
    let kept = node.hand_off_groups().await;
    if kept > 0 {
        tracing::warn!(
            id = node.id,
            kept,
            "draining: some queue groups are still led here"
        );
    }
    Ok(Json(DrainResponse {
        id: node.id,
        draining: true,
        leader,
        was_leader,
    }))
}

/// Ends a drain without a restart (e.g. when a maintenance is called off).
#[utoipa::path(
    delete,
    path = "/v1/node/drain",
    tag = "cluster",
    responses(
        (status = 200, description = "This node takes client requests again", body = dsync_api::types::DrainResponse),
    )
)]
async fn undrain(State(node): State<Arc<Node>>) -> Json<DrainResponse> {
    node.set_draining(false);
    tracing::info!(id = node.id, "drain ended: taking client requests again");
    Json(DrainResponse {
        id: node.id,
        draining: false,
        leader: node.status().leader,
        was_leader: false,
    })
}

/// Whether a request is client traffic a draining node turns away. Status,
/// health, admin and peer routes keep working so operators and the rest of
/// the cluster can still reach it.
pub(super) fn is_client_traffic(path: &str) -> bool {
    path.starts_with("/v1/")
        && path != routes::STATUS
        && !path.starts_with("/v1/cluster/")
        && !path.starts_with("/v1/node/")
}

/// Middleware: 503 `unavailable` with `Retry-After` on a draining node.
pub async fn drain_gate(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    if node.is_draining() && is_client_traffic(req.uri().path()) {
        return HttpError(ApiError::new(
            ErrorCode::Unavailable,
            format!("node {} is draining; use another node", node.id),
        ))
        .into_response();
    }
    let _serving = is_client_traffic(req.uri().path()).then(|| node.client_requests.enter());
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_client_traffic_is_drained() {
        assert!(is_client_traffic("/v1/kv/a"));
        assert!(is_client_traffic("/v1/locks/x/acquire"));
        assert!(is_client_traffic("/v1/queues/t/consume"));
        assert!(!is_client_traffic("/v1/status"));
        assert!(!is_client_traffic("/v1/cluster/members"));
        assert!(!is_client_traffic("/v1/node/drain"));
        assert!(!is_client_traffic("/health"));
        assert!(!is_client_traffic("/raft/append"));
    }
}
