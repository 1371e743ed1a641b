//! `/v1/shards`: which Raft group holds which topics, and each group's
//! replicas, leader and depth (DESIGN.md §2a).

use std::sync::Arc;

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use dsync_api::routes;
use dsync_api::shards::{
    GroupStatus, ReplicaStatus, ShardMap, ShardsStatus, CONTROL_GROUP, HEADER_GROUP,
};

use crate::node::Node;

/// The shard map this node routes by. Queue groups are not built yet
/// (issue 17): every topic lives in the control group, which is the map of
/// a cluster made before shards (epoch 0, no queue groups).
pub(crate) fn shard_map(_node: &Node) -> ShardMap {
    ShardMap::default()
}

pub fn router() -> Router<Arc<Node>> {
    Router::new().route(routes::SHARDS, get(shards))
}

#[utoipa::path(
    get,
    path = "/v1/shards",
    tag = "cluster",
    responses(
        (status = 200, description = "The shard map and every group's replicas (match indexes on the group's leader), leader, topics and depth", body = dsync_api::shards::ShardsStatus),
    )
)]
pub(super) async fn shards(State(node): State<Arc<Node>>) -> Json<ShardsStatus> {
    let map = shard_map(&node);
    let (leader, term, last_index) = {
        let m = node.raft.metrics();
        let m = m.borrow();
        (
            m.current_leader,
            m.current_term,
            m.last_log_index.unwrap_or(0),
        )
    };
    let (topics, depth) = {
        let st = node.sm.read();
        let q = &st.data.queues;
        (q.topic_count() as u64, q.held() as u64)
    };
    let replicas = node
        .members()
        .into_iter()
        .map(|m| ReplicaStatus {
            id: m.id,
            kind: m.kind,
            leader: leader == Some(m.id),
            matched_index: m.match_index,
        })
        .collect();
    let control = GroupStatus {
        id: CONTROL_GROUP,
        holds_topics: map.groups.is_empty(),
        leader,
        term,
        last_index,
        replicas,
        topics,
        depth,
    };
    Json(ShardsStatus {
        node: node.id,
        map,
        groups: vec![control],
    })
}

/// Middleware of the queue routes: `x-dsync-group` names the group that
/// holds the request's topic.
pub async fn group_header(
    State(node): State<Arc<Node>>,
    matched: Option<MatchedPath>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    req: Request,
    next: Next,
) -> Response {
    let queue_route = matched.is_some_and(|m| m.as_str().starts_with("/v1/queues/"));
    let group = params
        .iter()
        .flat_map(|p| p.iter())
        .find(|(k, _)| queue_route && *k == "topic")
        .map(|(_, topic)| shard_map(&node).group_of(topic));
    let mut resp = next.run(req).await;
    if let Some(g) = group {
        resp.headers_mut()
            .insert(HEADER_GROUP, HeaderValue::from(g));
    }
    resp
}
