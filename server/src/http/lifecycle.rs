//! Operator routes: member removal, backups, draining.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use dsync_api::types::{DrainResponse, MembershipResponse};
use dsync_api::{routes, ApiError, ErrorCode};
use utoipa_axum::routes;

use super::error::{invalid, HttpError, HttpResult};
use super::extract::{ApiPath, Json};
use super::route::Api;
use crate::auth::policy::Rule;
use crate::node::Node;

pub fn api() -> Api {
    Api::operator()
        .tagged("cluster")
        .route(Rule::ADMIN, routes!(remove))
        .route(Rule::ADMIN, routes!(backup))
        .route(Rule::ADMIN, routes!(drain, undrain))
}

#[utoipa::path(delete, path = routes::MEMBER,
    params(("id" = u64, Path, description = "Member id", minimum = 1)),
    responses(
        (status = 200, description = "The membership after the removal", body = dsync_api::types::MembershipResponse),
        (status = 409, description = "`conflict`: too few healthy voters would remain", body = dsync_api::ErrorBody),
        (status = 503, description = "`unavailable`: no leader, or the change is refused for now", body = dsync_api::ErrorBody),
    ),
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

#[utoipa::path(get, path = routes::BACKUP,
    responses(
        (status = 200, description = "A backup file of the whole state at a linearizable point", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 503, description = "`unavailable`: no leader or no quorum", body = dsync_api::ErrorBody),
    ),
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
#[utoipa::path(post, path = routes::NODE_DRAIN,
    responses(
        (status = 200, description = "This node now turns clients away (503)", body = dsync_api::types::DrainResponse),
        (status = 400, description = "`invalid_argument`: this node leads and has no one to hand off to; the drain is called off", body = dsync_api::ErrorBody),
        (status = 503, description = "`unavailable`: the hand-off failed; the drain is called off", body = dsync_api::ErrorBody),
    ),
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
#[utoipa::path(delete, path = routes::NODE_DRAIN,
    responses(
        (status = 200, description = "This node takes client requests again", body = dsync_api::types::DrainResponse),
    ),
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

/// The 503 `unavailable` a draining node gives client traffic (routes
/// registered as `route::Traffic::Client`). Status, health, admin and peer
/// routes keep working so operators and the rest of the cluster can still
/// reach it; a path no route takes is answered 404 either way.
pub fn draining(node: &Node) -> HttpError {
    HttpError(ApiError::new(
        ErrorCode::Unavailable,
        format!("node {} is draining; use another node", node.id),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::route::{self, Traffic};
    use super::*;

    fn traffic(method: &str, route: &str) -> Option<Traffic> {
        let method = method.parse().unwrap();
        route::table().get(route, &method).map(|e| e.traffic)
    }

    #[test]
    fn only_client_traffic_is_drained() {
        use Traffic::*;
        assert_eq!(traffic("GET", routes::KV_KEY), Some(Client));
        assert_eq!(traffic("HEAD", routes::KV_KEY), Some(Client));
        assert_eq!(traffic("POST", routes::LOCK_ACQUIRE), Some(Client));
        assert_eq!(traffic("POST", routes::TOPIC_CONSUME), Some(Client));
        assert_eq!(traffic("POST", routes::SHARDS_RESHARD), Some(Client));
        assert_eq!(traffic("GET", routes::STATUS), Some(Operator));
        assert_eq!(traffic("POST", routes::MEMBERS), Some(Operator));
        assert_eq!(traffic("DELETE", routes::NODE_DRAIN), Some(Operator));
        assert_eq!(traffic("GET", routes::HEALTH), Some(Operator));
        assert_eq!(traffic("GET", routes::METRICS), Some(Operator));
        // Peer routes are not client routes at all.
        assert_eq!(traffic("POST", routes::RAFT_APPEND), None);
    }
}
