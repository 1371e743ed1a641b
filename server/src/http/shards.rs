//! `/v1/shards`: which Raft group holds which topics, and each group's
//! replicas, leader and depth (DESIGN.md §2a).

use std::sync::Arc;

use axum::extract::State;
use dsync_api::auth::Role;
use dsync_api::routes;
use dsync_api::shards::{
    GroupInfo, GroupMove, GroupStatus, InitShards, RebalancePlan, RebalanceRequest, ReplicaStatus,
    ReshardPlan, ReshardRequest, ShardJob, ShardMap, ShardsStatus, CONTROL_GROUP,
};
use dsync_api::types::MemberKind;
use dsync_api::{ApiError, ErrorCode};
use utoipa_axum::routes;

use super::error::{HttpError, HttpResult};
use super::extract::{ApiPath, Json};
use super::route::Api;
use crate::auth::policy::{On, Rule};
use crate::groups::group_status;
use crate::node::Node;

pub fn api() -> Api {
    Api::client()
        .tagged("cluster")
        .route(Rule::Role(Role::Read, On::Everything), routes!(shards))
        .route(Rule::ADMIN, routes!(init))
        .route(Rule::ADMIN, routes!(balance))
        .route(Rule::ADMIN, routes!(rebalance))
        .route(Rule::ADMIN, routes!(reshard))
        .route(Rule::Role(Role::Read, On::Everything), routes!(jobs))
        .route(Rule::Role(Role::Read, On::Everything), routes!(job))
}

#[utoipa::path(get, path = routes::SHARDS,
    responses(
        (status = 200, description = "The shard map and every group's replicas (match indexes from each group's leader), leader, topics and depth; during a reshard also the groups it creates", body = dsync_api::shards::ShardsStatus),
    ),
)]
pub(super) async fn shards(State(node): State<Arc<Node>>) -> Json<ShardsStatus> {
    let map = node.shard_map();
    let control = group_status(
        CONTROL_GROUP,
        &node.control.raft,
        &node.control.sm,
        map.groups.is_empty(),
    );
    // The map's groups, and those a reshard under way is creating.
    let routing = node.groups.routing();
    let listed: Vec<GroupInfo> = routing
        .group_ids()
        .into_iter()
        .map(|id| {
            map.group(id).cloned().unwrap_or_else(|| GroupInfo {
                id,
                replicas: routing.replicas(id).to_vec(),
                vnodes: dsync_api::shards::DEFAULT_VNODES,
            })
        })
        .collect();
    let queue_groups = listed.iter().map(|g| {
        let node = node.clone();
        async move {
            match node.group_status(g.id).await {
                Ok(s) => s,
                // No leader reachable: what this node knows of it.
                Err(e) => {
                    tracing::debug!(group = g.id, "group status: {e}");
                    match node.groups.get(g.id) {
                        Some(local) => group_status(g.id, &local.raft, &local.sm, true),
                        None => unreachable_group(g),
                    }
                }
            }
        }
    });
    let mut groups = vec![control];
    groups.extend(futures::future::join_all(queue_groups).await);
    Json(ShardsStatus {
        node: node.id,
        map,
        groups,
    })
}

/// A group no replica of which answered: its placement, nothing live.
fn unreachable_group(g: &GroupInfo) -> GroupStatus {
    GroupStatus {
        id: g.id,
        holds_topics: true,
        leader: None,
        term: 0,
        last_index: 0,
        replicas: g
            .replicas
            .iter()
            .map(|id| ReplicaStatus {
                id: *id,
                kind: MemberKind::Voter,
                leader: false,
                matched_index: None,
            })
            .collect(),
        topics: 0,
        depth: 0,
    }
}

#[utoipa::path(post, path = routes::SHARDS,
    responses(
        (status = 200, description = "The first shard map, committed: every node now opens the queue groups it places there", body = dsync_api::shards::ShardMap),
        (status = 409, description = "`conflict`: the cluster already has other queue groups, or the control group still holds messages", body = dsync_api::ErrorBody),
    ),
)]
pub(super) async fn init(
    State(node): State<Arc<Node>>,
    Json(req): Json<InitShards>,
) -> HttpResult<Json<ShardMap>> {
    Ok(Json(node.init_shards(req).await?))
}

#[utoipa::path(post, path = routes::SHARDS_LEADERS,
    responses(
        (status = 200, description = "Each queue group's leadership, moved to its preferred leader where it was elsewhere (no node then leads more than ⌈G/N⌉ groups)", body = Vec<dsync_api::shards::GroupMove>),
    ),
)]
pub(super) async fn balance(State(node): State<Arc<Node>>) -> HttpResult<Json<Vec<GroupMove>>> {
    Ok(Json(node.balance_leaders().await?))
}

#[utoipa::path(post, path = routes::SHARDS_REBALANCE,
    responses(
        (status = 200, description = "The replica moves that balance every group over the voters (less `exclude`), and the job carrying them out (none for a dry run or when nothing needs to move)", body = dsync_api::shards::RebalancePlan),
        (status = 400, description = "`invalid_argument`: no queue groups, or `exclude` names a node that is not a voter or every voter", body = dsync_api::ErrorBody),
        (status = 409, description = "`conflict`: another shard job is still running", body = dsync_api::ErrorBody),
    ),
)]
pub(super) async fn rebalance(
    State(node): State<Arc<Node>>,
    Json(req): Json<RebalanceRequest>,
) -> HttpResult<Json<RebalancePlan>> {
    if req.exclude.len() > 1024 {
        return Err(
            crate::error::Error::InvalidArgument("exclude: at most 1024 nodes".into()).into(),
        );
    }
    Ok(Json(node.rebalance(req).await?))
}

#[utoipa::path(post, path = routes::SHARDS_RESHARD,
    responses(
        (status = 200, description = "The map the reshard leads to, the topics it moves (from the group that holds each to the one the new ring names) and the job carrying them out (none for a dry run)", body = dsync_api::shards::ReshardPlan),
        (status = 400, description = "`invalid_argument`: no queue groups yet, or `groups` outside 1 to 1,024", body = dsync_api::ErrorBody),
        (status = 409, description = "`conflict`: another shard job is still running", body = dsync_api::ErrorBody),
    ),
)]
pub(super) async fn reshard(
    State(node): State<Arc<Node>>,
    Json(req): Json<ReshardRequest>,
) -> HttpResult<Json<ReshardPlan>> {
    Ok(Json(node.reshard(req).await?))
}

#[utoipa::path(get, path = routes::SHARDS_JOBS,
    responses(
        (status = 200, description = "The running shard job, then the last finished ones, newest first, as this node last applied them", body = Vec<dsync_api::shards::ShardJob>),
    ),
)]
pub(super) async fn jobs(State(node): State<Arc<Node>>) -> Json<Vec<ShardJob>> {
    Json(node.shard_jobs())
}

#[utoipa::path(get, path = routes::SHARDS_JOB,
    params(("id" = u64, Path, description = "Shard job id", minimum = 1)),
    responses(
        (status = 200, description = "The job as this node last applied it", body = dsync_api::shards::ShardJob),
        (status = 404, description = "`not_found`: this node has not applied that job, or no longer keeps it", body = dsync_api::ErrorBody),
    ),
)]
pub(super) async fn job(
    State(node): State<Arc<Node>>,
    ApiPath(id): ApiPath<u64>,
) -> HttpResult<Json<ShardJob>> {
    node.shard_job(id).map(Json).ok_or_else(|| {
        HttpError(ApiError::new(
            ErrorCode::NotFound,
            format!("node {} knows no shard job {id}", node.id),
        ))
    })
}

/// The group holding the topic of a queue route (for `x-dsync-group`);
/// `None` for other routes.
pub fn group_of(node: &Node, route: &str, params: &[(&str, &str)]) -> Option<u64> {
    if !route.starts_with("/v1/queues/") {
        return None;
    }
    let topic = params.iter().find(|(k, _)| *k == "topic")?.1;
    Some(node.groups.routing().group_of(topic))
}
