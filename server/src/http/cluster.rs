//! Health, readiness, metrics, status and membership.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use dsync_api::auth::Role;
use dsync_api::routes;
use dsync_api::types::{
    Health, JoinRequest, LeaderTransferRequest, LeaderTransferResponse, MembershipResponse,
    NodeStatus,
};
use utoipa_axum::routes;

use super::error::HttpResult;
use super::extract::Json;
use super::route::Api;
use crate::auth::policy::{On, Rule};
use crate::node::Node;

pub fn api() -> Api {
    Api::operator()
        .route(Rule::Public, routes!(health))
        .route(Rule::Public, routes!(ready))
        .route(Rule::Role(Role::Read, On::Nothing), routes!(metrics))
        .route(Rule::Public, routes!(status))
        .route(Rule::ADMIN, routes!(join))
        .route(Rule::ADMIN, routes!(transfer_leader))
}

/// The process is alive and serving HTTP.
#[utoipa::path(get, path = routes::HEALTH, tag = "meta",
    responses(
        (status = 200, description = "The process is alive and serving HTTP", body = dsync_api::types::Health),
    ),
)]
async fn health(State(node): State<Arc<Node>>) -> Json<Health> {
    Json(Health {
        ok: true,
        id: node.id,
        reason: None,
    })
}

/// A leader is known and this node keeps up with what it knows committed
/// (it has not stayed short of a commit index for longer than
/// `progress::GRACE`).
#[utoipa::path(get, path = routes::READY, tag = "meta",
    responses(
        (status = 200, description = "A leader is known and this node has not stayed behind what it knows committed for over a second", body = dsync_api::types::Health),
        (status = 503, description = "Not ready (no leader, catching up, or draining): `ok` is false and `reason` says why", body = dsync_api::types::Health),
    ),
)]
async fn ready(State(node): State<Arc<Node>>) -> Response {
    let s = node.status();
    let reason = if node.is_draining() {
        Some("draining: not taking client requests".to_string())
    } else if s.leader.is_none() {
        Some("no leader is known".to_string())
    } else if let Some(target) = node.apply_lagging(s.applied_index, s.commit_index) {
        Some(format!(
            "catching up: applied {} of {} committed entries, short of {target} for over {:?}",
            s.applied_index,
            s.commit_index,
            crate::node::progress::GRACE
        ))
    } else {
        node.groups_unready()
    };
    let code = if reason.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = Health {
        ok: reason.is_none(),
        id: node.id,
        reason,
    };
    (code, Json(body)).into_response()
}

#[utoipa::path(get, path = routes::METRICS, tag = "meta",
    responses(
        (status = 200, description = "Prometheus metrics", body = String, content_type = "application/openmetrics-text"),
    ),
)]
async fn metrics(State(node): State<Arc<Node>>) -> Response {
    let now = crate::proposer::now_ms();
    let stats = |g: u64, st: &crate::state::StateData| {
        let all = st.queues.all_stats(now, 1000);
        all.into_iter().map(move |s| (g, s))
    };
    let mut topics: Vec<_> = stats(0, &node.control.sm.read().data).collect();
    // Each replica reports its groups' topics, as every node does the
    // control group's.
    for g in node.groups.all() {
        topics.extend(stats(g.id, &g.sm.read().data));
    }
    topics.truncate(1000);
    node.metrics.refresh_topics(&topics);
    node.metrics
        .refresh_peer_breakers(&node.peer_breakers(&node.members()));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        node.metrics.render(),
    )
        .into_response()
}

#[utoipa::path(get, path = routes::STATUS, tag = "cluster",
    responses(
        (status = 200, description = "This node's view of the cluster", body = dsync_api::types::NodeStatus),
    ),
)]
async fn status(State(node): State<Arc<Node>>) -> Json<NodeStatus> {
    Json(node.status())
}

#[utoipa::path(post, path = routes::MEMBERS, tag = "cluster",
    responses(
        (status = 200, description = "The membership after the join", body = dsync_api::types::MembershipResponse),
        (status = 503, description = "`unavailable`: no leader, or the membership change is refused for now", body = dsync_api::ErrorBody),
    ),
)]
async fn join(
    State(node): State<Arc<Node>>,
    Json(req): Json<JoinRequest>,
) -> HttpResult<Json<MembershipResponse>> {
    let members = node.join(req.id, req.addr, req.voter).await?;
    Ok(Json(MembershipResponse { members }))
}

#[utoipa::path(post, path = routes::LEADER_TRANSFER, tag = "cluster",
    responses(
        (status = 200, description = "Leadership moved", body = dsync_api::types::LeaderTransferResponse),
        (status = 503, description = "`unavailable`: no leader, another transfer runs, or the target did not catch up", body = dsync_api::ErrorBody),
    ),
)]
async fn transfer_leader(
    State(node): State<Arc<Node>>,
    Json(req): Json<LeaderTransferRequest>,
) -> HttpResult<Json<LeaderTransferResponse>> {
    Ok(Json(node.transfer_leader(req.to).await?))
}
