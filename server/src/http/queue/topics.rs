//! Topic-level queue routes: settings, counters, listing and redrive.

use std::sync::Arc;

use axum::extract::State;
use dsync_api::queue::*;
use dsync_api::routes;
use dsync_api::types::{Consistency, ReadQuery};

use crate::error::Error;
use crate::http::error::{invalid, HttpResult};
use crate::http::extract::{ApiQuery, Json};
use crate::http::params::{list_limit, ListLimit, ReadOptions, Topic};
use crate::node::Node;
use crate::proposer::now_ms;
use crate::state::command::queue;

#[utoipa::path(post, path = routes::TOPIC_REDRIVE, params(Topic),
    responses(
        (status = 200, description = "Dead letters moved back to the topic", body = dsync_api::queue::RedriveResponse),
    ),
)]
pub async fn redrive(
    State(node): State<Arc<Node>>,
    Topic(topic): Topic,
) -> HttpResult<Json<RedriveResponse>> {
    let moved = node
        .propose_for_topic(&topic, queue::redrive(topic.clone()))
        .await?;
    Ok(Json(RedriveResponse { moved }))
}

#[utoipa::path(put, path = routes::TOPIC, params(Topic),
    responses(
        (status = 200, description = "The topic with its new settings", body = dsync_api::queue::TopicStats),
    ),
)]
pub async fn configure(
    State(node): State<Arc<Node>>,
    Topic(topic): Topic,
    Json(s): Json<TopicSettings>,
) -> HttpResult<Json<TopicStats>> {
    super::room_for_topic(&node, &topic)?;
    if s.max_attempts.is_some_and(|v| v == 0 || v > 1000) {
        return Err(invalid("max_attempts must be 1 to 1000"));
    }
    if s.visibility_ms
        .is_some_and(|v| v == 0 || v > MAX_VISIBILITY_MS)
    {
        return Err(invalid(format!(
            "visibility_ms must be 1 to {MAX_VISIBILITY_MS}"
        )));
    }
    if s.max_message_bytes
        .is_some_and(|v| v == 0 || v > HARD_MAX_MESSAGE_BYTES)
    {
        return Err(invalid(format!(
            "max_message_bytes must be 1 to {HARD_MAX_MESSAGE_BYTES}"
        )));
    }
    if s.retention_ms
        .is_some_and(|v| !(1000..=14 * 24 * 3600 * 1000).contains(&v))
    {
        return Err(invalid("retention_ms must be 1 s to 14 days"));
    }
    node.propose_for_topic(&topic, queue::configure(topic.clone(), &s))
        .await?;
    let stats = match node.group_topic_stats(&topic).await? {
        Some(in_group) => in_group,
        None => {
            node.read_barrier(Consistency::Leader, None).await?;
            node.control.sm.read().data.queues.stats(&topic, now_ms())
        }
    };
    stats
        .map(|s| Json(with_group(&node, s)))
        .ok_or_else(|| Error::Internal("topic vanished after configuration".into()).into())
}

#[utoipa::path(get, path = routes::TOPIC, params(Topic, ReadOptions),
    responses(
        (status = 200, description = "The topic's counters and settings", body = dsync_api::queue::TopicStats),
        (status = 404, description = "`not_found`: no such topic", body = dsync_api::ErrorBody),
    ),
)]
pub async fn stats(
    State(node): State<Arc<Node>>,
    Topic(topic): Topic,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> HttpResult<Json<TopicStats>> {
    // A queue group's topic is read on its leader, whatever was asked:
    // that is at least as fresh as any consistency level.
    let stats = match node.group_topic_stats(&topic).await? {
        Some(in_group) => in_group,
        None => {
            node.read_barrier(q.consistency, q.max_staleness_ms).await?;
            node.control.sm.read().data.queues.stats(&topic, now_ms())
        }
    };
    stats
        .map(|s| Json(with_group(&node, s)))
        .ok_or_else(|| Error::NotFound(format!("topic {topic:?} does not exist")).into())
}

#[utoipa::path(get, path = routes::QUEUES, params(ListLimit, ReadOptions),
    responses(
        (status = 200, description = "Every topic's stats", body = dsync_api::queue::TopicList),
    ),
)]
pub async fn list(
    State(node): State<Arc<Node>>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> HttpResult<Json<TopicList>> {
    let limit = list_limit(q.limit)?;
    node.read_barrier(q.consistency, q.max_staleness_ms).await?;
    // Once there are queue groups, what the control group still lists are
    // the drained copies of topics from before them: the groups hold them.
    let topics = if node.groups.routing().map.groups.is_empty() {
        let st = node.control.sm.read();
        st.data.queues.all_stats(now_ms(), limit)
    } else {
        node.groups_all_stats(limit).await?
    };
    let topics = topics.into_iter().map(|s| with_group(&node, s)).collect();
    Ok(Json(TopicList { topics }))
}

fn with_group(node: &Node, mut s: TopicStats) -> TopicStats {
    s.group = node.groups.routing().group_of(&s.topic);
    s
}
