//! `/v1/kv`: the replicated key-value store.

use std::sync::Arc;

use axum::extract::State;
use dsync_api::auth::Kind;
use dsync_api::routes;
use dsync_api::routes::MAX_KEY_LEN;
use dsync_api::types::{
    KvDeleteQuery, KvDeleteResponse, KvItem, KvListResponse, KvPutRequest, KvPutResponse, ReadQuery,
};
use utoipa_axum::routes;

use super::error::{invalid, HttpError, HttpResult};
use super::extract::{ApiQuery, Json, RequestId};
use super::params::{list_limit, KvKey, ListLimit, ReadOptions, RequestIdHeader};
use super::route::Api;
use crate::auth::limits::room_for_new;
use crate::auth::policy::{On, Rule};
use crate::error::Error;
use crate::node::Node;
use crate::state::command::kv;

pub fn api() -> Api {
    Api::client()
        .tagged("kv")
        .route(Rule::Data(On::Prefix(Kind::Kv)), routes!(list))
        .route(
            Rule::Data(On::One(Kind::Kv)),
            routes!(get_key, put_key, delete_key),
        )
}

/// 429 when `key` is new and the KV holds `limits.max_kv_keys` keys.
pub fn room_for_key(node: &Node, key: &str) -> HttpResult<()> {
    let sm = node.control.sm.read();
    let kv = &sm.data.kv;
    room_for_new(
        "KV keys",
        "max_kv_keys",
        kv.get(key).is_some(),
        kv.len(),
        node.security.limits.config.max_kv_keys,
    )?;
    Ok(())
}

fn parse_value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

#[utoipa::path(get, path = routes::KV_KEY, params(KvKey, ReadOptions),
    responses(
        (status = 200, description = "The value and its version", body = dsync_api::types::KvItem),
        (status = 404, description = "`not_found`: no such key", body = dsync_api::ErrorBody),
    ),
)]
async fn get_key(
    State(node): State<Arc<Node>>,
    KvKey(key): KvKey,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> HttpResult<Json<KvItem>> {
    let staleness_ms = node.read_barrier(q.consistency, q.max_staleness_ms).await?;
    let st = node.control.sm.read();
    let e = st
        .data
        .kv
        .get(&key)
        .ok_or_else(|| HttpError::from(Error::NotFound(format!("key {key:?} not found"))))?;
    Ok(Json(KvItem {
        value: parse_value(&e.value),
        version: e.version,
        key,
        staleness_ms,
    }))
}

#[utoipa::path(put, path = routes::KV_KEY, params(KvKey, RequestIdHeader),
    responses(
        (status = 200, description = "Committed on a quorum", body = dsync_api::types::KvPutResponse),
        (status = 409, description = "`conflict`: `if_version` does not match (`current_version` tells)", body = dsync_api::ErrorBody),
        (status = 412, description = "`stale_token`: the fence is not the current grant of its lock", body = dsync_api::ErrorBody),
    ),
)]
async fn put_key(
    State(node): State<Arc<Node>>,
    id: RequestId,
    KvKey(key): KvKey,
    Json(req): Json<KvPutRequest>,
) -> HttpResult<Json<KvPutResponse>> {
    room_for_key(&node, &key)?;
    let put = kv::put(
        key,
        req.value.to_string(),
        req.if_version,
        req.fence.map(|f| (f.lock, f.token)),
    );
    let version = node.propose(put.once(id.as_deref())).await?;
    Ok(Json(KvPutResponse { version }))
}

#[utoipa::path(delete, path = routes::KV_KEY,
    params(
        KvKey,
        RequestIdHeader,
        ("if_version" = Option<u64>, Query, description = "Compare-and-delete: only if the key is at this version"),
    ),
    responses(
        (status = 200, description = "Whether a value was removed", body = dsync_api::types::KvDeleteResponse),
        (status = 409, description = "`conflict`: `if_version` does not match", body = dsync_api::ErrorBody),
    ),
)]
async fn delete_key(
    State(node): State<Arc<Node>>,
    id: RequestId,
    KvKey(key): KvKey,
    ApiQuery(q): ApiQuery<KvDeleteQuery>,
) -> HttpResult<Json<KvDeleteResponse>> {
    let delete = kv::delete(key, q.if_version).once(id.as_deref());
    let deleted = node.propose(delete).await?;
    Ok(Json(KvDeleteResponse { deleted }))
}

#[utoipa::path(get, path = routes::KV,
    params(
        ("prefix" = Option<String>, Query, description = "Only keys starting with this", max_length = 512),
        ListLimit,
        ReadOptions,
    ),
    responses(
        (status = 200, description = "Keys in order, at most `limit`", body = dsync_api::types::KvListResponse),
    ),
)]
async fn list(
    State(node): State<Arc<Node>>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> HttpResult<Json<KvListResponse>> {
    let prefix = q.prefix.unwrap_or_default();
    if prefix.len() > MAX_KEY_LEN {
        return Err(invalid(format!("prefix longer than {MAX_KEY_LEN} bytes")));
    }
    let limit = list_limit(q.limit)?;
    let staleness_ms = node.read_barrier(q.consistency, q.max_staleness_ms).await?;
    let st = node.control.sm.read();
    let (items, truncated) = st.data.kv.list(&prefix, limit);
    Ok(Json(KvListResponse {
        items: items
            .into_iter()
            .map(|(k, e)| KvItem {
                key: k.clone(),
                value: parse_value(&e.value),
                version: e.version,
                staleness_ms: None,
            })
            .collect(),
        truncated,
        staleness_ms,
    }))
}
