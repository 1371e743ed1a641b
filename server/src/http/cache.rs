//! `/v1/cache`: reads and writes through this node's coherent cache.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use dsync_api::auth::Kind;
use dsync_api::cache::{
    CacheDeleteResponse, CacheLines, CachePutRequest, CachePutResponse, CacheStates, CacheStats,
};
use dsync_api::routes;
use serde::Deserialize;
use utoipa_axum::routes;

use super::error::HttpResult;
use super::extract::{ApiQuery, Json};
use super::params::{list_limit, CacheKey, ListLimit};
use super::route::Api;
use crate::auth::policy::{On, Rule};
use crate::cache;
use crate::node::Node;

pub fn api() -> Api {
    Api::client()
        .tagged("cache")
        .route(Rule::Data(On::All(Kind::Cache)), routes!(stats))
        .route(Rule::Data(On::All(Kind::Cache)), routes!(lines))
        .route(
            Rule::Data(On::One(Kind::Cache)),
            routes!(get_key, put_key, delete_key),
        )
        .route(Rule::Data(On::One(Kind::Cache)), routes!(states))
}

/// `CacheItem` as JSON. The stored value is already JSON text: it is spliced
/// in rather than parsed and serialized again on every hit.
#[utoipa::path(get, path = routes::CACHE_KEY, params(CacheKey),
    responses(
        (status = 200, description = "The latest acknowledged value, and this node's line state", body = dsync_api::cache::CacheItem),
        (status = 404, description = "`not_found`: no such key", body = dsync_api::ErrorBody),
    ),
)]
async fn get_key(State(node): State<Arc<Node>>, CacheKey(key): CacheKey) -> HttpResult<Response> {
    let r = cache::get(&node, &key).await?;
    let body = item_body(&r.value, r.version, r.state.as_str(), node.id, r.hit);
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, JSON_CONTENT.clone());
    Ok(resp)
}

const JSON_CONTENT: HeaderValue = HeaderValue::from_static("application/json");

/// A `CacheItem` around `value`, already JSON text. Built by hand: through
/// `format!`, the hit path spent about 5 % of its instructions formatting.
fn item_body(value: &str, version: u64, state: &str, node: u64, hit: bool) -> Vec<u8> {
    let mut n = itoa::Buffer::new();
    let mut b = Vec::with_capacity(value.len() + 80);
    b.extend_from_slice(br#"{"value":"#);
    b.extend_from_slice(value.as_bytes());
    b.extend_from_slice(br#","version":"#);
    b.extend_from_slice(n.format(version).as_bytes());
    b.extend_from_slice(br#","state":""#);
    b.extend_from_slice(state.as_bytes());
    b.extend_from_slice(br#"","node":"#);
    b.extend_from_slice(n.format(node).as_bytes());
    b.extend_from_slice(if hit {
        br#","hit":true}"#
    } else {
        br#","hit":false}"#
    });
    b
}

#[utoipa::path(put, path = routes::CACHE_KEY, params(CacheKey),
    responses(
        (status = 200, description = "Written; this node holds the line in M", body = dsync_api::cache::CachePutResponse),
    ),
)]
async fn put_key(
    State(node): State<Arc<Node>>,
    CacheKey(key): CacheKey,
    Json(req): Json<CachePutRequest>,
) -> HttpResult<Json<CachePutResponse>> {
    super::kv::room_for_key(&node, &key)?;
    let out = cache::write(&*node, &key, Some(req.value.to_string())).await?;
    Ok(Json(CachePutResponse {
        version: out.version,
        state: out.state,
        node: node.id,
    }))
}

#[utoipa::path(delete, path = routes::CACHE_KEY, params(CacheKey),
    responses(
        (status = 200, description = "Whether a value was removed", body = dsync_api::cache::CacheDeleteResponse),
    ),
)]
async fn delete_key(
    State(node): State<Arc<Node>>,
    CacheKey(key): CacheKey,
) -> HttpResult<Json<CacheDeleteResponse>> {
    let out = cache::write(&*node, &key, None).await?;
    Ok(Json(CacheDeleteResponse {
        deleted: out.deleted,
    }))
}

#[utoipa::path(get, path = routes::CACHE_KEY_STATES, params(CacheKey),
    responses(
        (status = 200, description = "Every node's line state for the key", body = dsync_api::cache::CacheStates),
    ),
)]
async fn states(
    State(node): State<Arc<Node>>,
    CacheKey(key): CacheKey,
) -> HttpResult<Json<CacheStates>> {
    let nodes = cache::states(&*node, &key).await;
    Ok(Json(CacheStates { key, nodes }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinesQuery {
    limit: Option<usize>,
}

#[utoipa::path(get, path = routes::CACHE_LINES, params(ListLimit),
    responses(
        (status = 200, description = "This node's own lines", body = dsync_api::cache::CacheLines),
    ),
)]
async fn lines(
    State(node): State<Arc<Node>>,
    ApiQuery(q): ApiQuery<LinesQuery>,
) -> HttpResult<Json<CacheLines>> {
    let limit = list_limit(q.limit)?;
    let (lines, truncated) = cache::lines(&*node, limit);
    Ok(Json(CacheLines {
        node: node.id,
        lines,
        truncated,
    }))
}

#[utoipa::path(get, path = routes::CACHE,
    responses(
        (status = 200, description = "This node's cache counters", body = dsync_api::cache::CacheStats),
    ),
)]
async fn stats(State(node): State<Arc<Node>>) -> Json<CacheStats> {
    cache::update_line_gauges(&*node);
    let m = &node.metrics.cache;
    let c = &node.cache.config;
    let (lines, entries, bytes) = {
        let l = node.cache.lines();
        (l.by_state(), l.len() as u64, l.bytes() as u64)
    };
    Json(CacheStats {
        node: node.id,
        hits: m.hits.get(),
        misses: m.misses.get(),
        evictions: m.evictions.get(),
        invalidations_sent: m.invalidations_sent.get(),
        invalidations_received: m.invalidations_received.get(),
        remote_requests: m.remote_requests.get(),
        lines,
        entries,
        bytes,
        capacity_entries: c.capacity_entries as u64,
        capacity_bytes: c.capacity_bytes as u64,
        write_policy: match c.write_policy {
            crate::config::WritePolicy::WriteThrough => "write-through".into(),
            crate::config::WritePolicy::WriteBack => "write-back".into(),
        },
        lease_ms: c.lease_ms,
    })
}

#[cfg(test)]
mod tests {
    use dsync_api::cache::{CacheItem, LineState};
    use serde_json::json;

    use super::item_body;

    #[test]
    fn a_hit_body_is_the_cache_item_of_the_stored_json() {
        let stored = json!({"a": [1, "two\"", null]}).to_string();
        for (hit, state) in [(true, LineState::S), (false, LineState::I)] {
            let body = item_body(&stored, u64::MAX, state.as_str(), 3, hit);
            let item: CacheItem = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                item,
                CacheItem {
                    value: json!({"a": [1, "two\"", null]}),
                    version: u64::MAX,
                    state,
                    node: 3,
                    hit,
                }
            );
        }
    }
}
