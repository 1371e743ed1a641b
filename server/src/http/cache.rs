//! `/v1/cache`: reads and writes through this node's coherent cache.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dsync_api::cache::{
    CacheDeleteResponse, CacheLines, CachePutRequest, CachePutResponse, CacheStates, CacheStats,
};
use dsync_api::routes;
use serde::Deserialize;

use super::error::{invalid, HttpResult};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::kv::validate_key;
use crate::node::Node;

const MAX_LINES: usize = 10_000;

pub fn router() -> Router<Arc<Node>> {
    Router::new()
        .route(routes::CACHE, get(stats))
        .route(routes::CACHE_LINES, get(lines))
        .route(
            "/v1/cache/{key}",
            get(get_key).put(put_key).delete(delete_key),
        )
        .route("/v1/cache/{key}/states", get(states))
}

/// Cache keys are KV keys, one path segment (the client percent-encodes
/// `/`); `lines` names this node's line listing instead.
fn validate_cache_key(key: &str) -> HttpResult<()> {
    validate_key(key)?;
    if key == "lines" {
        return Err(invalid(
            "\"lines\" is reserved (GET /v1/cache/lines lists this node's lines)",
        ));
    }
    Ok(())
}

/// `CacheItem` as JSON. The stored value is already JSON text: it is spliced
/// in rather than parsed and serialized again on every hit.
async fn get_key(
    State(node): State<Arc<Node>>,
    ApiPath(key): ApiPath<String>,
) -> HttpResult<Response> {
    validate_cache_key(&key)?;
    let r = node.cache_get(&key).await?;
    let body = format!(
        r#"{{"value":{},"version":{},"state":"{}","node":{},"hit":{}}}"#,
        r.value,
        r.version,
        r.state.as_str(),
        node.id,
        r.hit
    );
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn put_key(
    State(node): State<Arc<Node>>,
    ApiPath(key): ApiPath<String>,
    ApiJson(req): ApiJson<CachePutRequest>,
) -> HttpResult<Json<CachePutResponse>> {
    validate_cache_key(&key)?;
    let out = node.cache_write(&key, Some(req.value.to_string())).await?;
    Ok(Json(CachePutResponse {
        version: out.version,
        state: out.state,
        node: node.id,
    }))
}

async fn delete_key(
    State(node): State<Arc<Node>>,
    ApiPath(key): ApiPath<String>,
) -> HttpResult<Json<CacheDeleteResponse>> {
    validate_cache_key(&key)?;
    let out = node.cache_write(&key, None).await?;
    Ok(Json(CacheDeleteResponse {
        deleted: out.deleted,
    }))
}

async fn states(
    State(node): State<Arc<Node>>,
    ApiPath(key): ApiPath<String>,
) -> HttpResult<Json<CacheStates>> {
    validate_cache_key(&key)?;
    let nodes = node.cache_states(&key).await;
    Ok(Json(CacheStates { key, nodes }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinesQuery {
    limit: Option<usize>,
}

async fn lines(
    State(node): State<Arc<Node>>,
    ApiQuery(q): ApiQuery<LinesQuery>,
) -> HttpResult<Json<CacheLines>> {
    let limit = q.limit.unwrap_or(1000);
    if limit == 0 || limit > MAX_LINES {
        return Err(invalid(format!("limit must be between 1 and {MAX_LINES}")));
    }
    let (lines, truncated) = node.cache_lines(limit);
    Ok(Json(CacheLines {
        node: node.id,
        lines,
        truncated,
    }))
}

async fn stats(State(node): State<Arc<Node>>) -> Json<CacheStats> {
    node.update_line_gauges();
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
