//! `/v1/locks`: acquire, release, keepalive, inspection and the wait-for graph.

use std::sync::Arc;

use axum::extract::State;
use dsync_api::auth::{Kind, Role};
use dsync_api::locks::*;
use dsync_api::routes;
use dsync_api::types::ReadQuery;
use utoipa_axum::routes;

use super::error::{invalid, HttpResult};
use super::extract::{ApiQuery, Json, RequestId};
use super::params::{
    check_printable, list_limit, ListLimit, LockName, ReadOptions, RequestIdHeader,
};
use super::route::Api;
use crate::auth::limits::{rate_limited, room_for_new};
use crate::auth::ownership::{not_yours, owned_by, qualify_owner};
use crate::auth::policy::{On, Rule};
use crate::auth::Caller;
use crate::node::Node;
use crate::proposer::now_ms;
use crate::state::command::locks;

/// Calls on the lock the path names.
const ONE_LOCK: Rule = Rule::Data(On::One(Kind::Locks));

pub fn api() -> Api {
    Api::client()
        .tagged("locks")
        .route(Rule::Data(On::All(Kind::Locks)), routes!(list))
        .route(Rule::Data(On::All(Kind::Locks)), routes!(graph))
        .route(ONE_LOCK, routes!(one))
        .route(ONE_LOCK, routes!(acquire))
        .route(ONE_LOCK, routes!(release))
        .route(ONE_LOCK, routes!(keepalive))
        .route(
            Rule::Role(Role::Admin, On::One(Kind::Locks)),
            routes!(force_release),
        )
}

fn check_ttl(ttl_ms: u64) -> HttpResult<()> {
    if !(MIN_TTL_MS..=MAX_TTL_MS).contains(&ttl_ms) {
        return Err(invalid(format!(
            "ttl_ms must be between {MIN_TTL_MS} and {MAX_TTL_MS}"
        )));
    }
    Ok(())
}

/// 403 if the grant `token` of `name` is held by another principal's owner.
/// Read from this node's state: where it lags, the qualified owner still
/// makes the state machine refuse (412) what is not the caller's.
fn check_grant_owner(node: &Node, caller: &Caller, name: &str, token: u64) -> HttpResult<()> {
    let st = node.control.sm.read();
    let holder = st
        .data
        .locks
        .get(name)
        .and_then(|l| l.holder_by_token(token));
    match holder {
        Some(h) if !owned_by(&caller.principal, &h.owner) => {
            Err(not_yours(&format!("grant {token} of lock {name:?}")).into())
        }
        _ => Ok(()),
    }
}

#[utoipa::path(post, path = routes::LOCK_ACQUIRE, params(LockName),
    responses(
        (status = 200, description = "Granted, with its fencing token", body = dsync_api::locks::AcquireResponse),
        (status = 409, description = "`lock_busy` (try once, or the wait ran out), or `deadlock` with `cycle`", body = dsync_api::ErrorBody),
    ),
)]
async fn acquire(
    State(node): State<Arc<Node>>,
    caller: Caller,
    LockName(name): LockName,
    Json(mut req): Json<AcquireRequest>,
) -> HttpResult<Json<AcquireResponse>> {
    check_printable("owner", &req.owner, MAX_OWNER)?;
    check_ttl(req.ttl_ms)?;
    if req.wait_ms > MAX_WAIT_MS {
        return Err(invalid(format!("wait_ms must be at most {MAX_WAIT_MS}")));
    }
    let max_waiters = node.security.limits.config.max_waiters_per_lock;
    let waiting = {
        let sm = node.control.sm.read();
        let locks = &sm.data.locks;
        let lock = locks.get(&name);
        room_for_new(
            "locks held or waited for",
            "max_locks",
            lock.is_some(),
            locks.len(),
            node.security.limits.config.max_locks,
        )?;
        lock.map_or(0, |l| l.waiter_count())
    };
    if req.wait_ms > 0 && waiting >= max_waiters {
        return Err(rate_limited(format!(
            "lock {name:?} already has {waiting} waiters (the limit is {max_waiters})"
        ))
        .into());
    }
    req.owner = qualify_owner(&caller.principal, &req.owner);
    Ok(Json(node.lock_acquire(name, req).await?))
}

#[utoipa::path(post, path = routes::LOCK_RELEASE, params(LockName, RequestIdHeader),
    responses(
        (status = 200, description = "Released", body = dsync_api::locks::ReleaseResponse),
        (status = 412, description = "`stale_token`: not the current grant of this owner", body = dsync_api::ErrorBody),
    ),
)]
async fn release(
    State(node): State<Arc<Node>>,
    caller: Caller,
    id: RequestId,
    LockName(name): LockName,
    Json(req): Json<ReleaseRequest>,
) -> HttpResult<Json<ReleaseResponse>> {
    check_printable("owner", &req.owner, MAX_OWNER)?;
    check_grant_owner(&node, &caller, &name, req.token)?;
    let owner = qualify_owner(&caller.principal, &req.owner);
    let release = locks::release(name, owner, req.token).once(id.as_deref());
    node.propose(release).await?;
    Ok(Json(ReleaseResponse { released: true }))
}

#[utoipa::path(post, path = routes::LOCK_KEEPALIVE, params(LockName),
    responses(
        (status = 200, description = "Lease renewed", body = dsync_api::locks::KeepaliveResponse),
        (status = 412, description = "`stale_token`: not the current grant of this owner", body = dsync_api::ErrorBody),
    ),
)]
async fn keepalive(
    State(node): State<Arc<Node>>,
    caller: Caller,
    LockName(name): LockName,
    Json(req): Json<KeepaliveRequest>,
) -> HttpResult<Json<KeepaliveResponse>> {
    check_printable("owner", &req.owner, MAX_OWNER)?;
    if let Some(t) = req.ttl_ms {
        check_ttl(t)?;
    }
    check_grant_owner(&node, &caller, &name, req.token)?;
    let owner = qualify_owner(&caller.principal, &req.owner);
    let h = node
        .propose(locks::keepalive(name, owner, req.token, req.ttl_ms))
        .await?;
    Ok(Json(KeepaliveResponse {
        token: h.token,
        ttl_ms: h.ttl_ms,
    }))
}

/// Admin override for a holder that is stuck but keeps its lease alive:
/// drops every grant (their tokens become stale) and wakes the next waiter.
#[utoipa::path(post, path = routes::LOCK_FORCE_RELEASE, params(LockName),
    responses(
        (status = 200, description = "Every holder evicted", body = dsync_api::locks::ForceReleaseResponse),
    ),
)]
async fn force_release(
    State(node): State<Arc<Node>>,
    LockName(name): LockName,
) -> HttpResult<Json<ForceReleaseResponse>> {
    let released = node.propose(locks::force_release(name.clone())).await?;
    Ok(Json(ForceReleaseResponse { name, released }))
}

#[utoipa::path(get, path = routes::LOCK,
    params(
        ("name" = String, Path, description = "Lock name: 1 to 256 bytes of printable text (`graph` names the wait-for graph)", min_length = 1, max_length = 256, pattern = "^(?!graph$)[^\\x00-\\x1F\\x7F-\\x9F]*$"),
        ReadOptions,
    ),
    responses(
        (status = 200, description = "Holders and waiters (none for an unknown lock)", body = dsync_api::locks::LockInfo),
    ),
)]
async fn one(
    State(node): State<Arc<Node>>,
    LockName(name): LockName,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> HttpResult<Json<LockInfo>> {
    node.read_barrier(q.consistency, q.max_staleness_ms).await?;
    let info = node.control.sm.read().data.locks.info(&name, now_ms());
    // A lock nobody holds or waits for simply has no holders.
    Ok(Json(info.unwrap_or(LockInfo {
        name,
        holders: Vec::new(),
        waiters: Vec::new(),
    })))
}

#[utoipa::path(get, path = routes::LOCKS, params(ListLimit, ReadOptions),
    responses(
        (status = 200, description = "Held or awaited locks", body = dsync_api::locks::LockList),
    ),
)]
async fn list(
    State(node): State<Arc<Node>>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> HttpResult<Json<LockList>> {
    let limit = list_limit(q.limit)?;
    node.read_barrier(q.consistency, q.max_staleness_ms).await?;
    let locks = node.control.sm.read().data.locks.infos(now_ms(), limit);
    Ok(Json(LockList { locks }))
}

#[utoipa::path(get, path = routes::LOCK_GRAPH, params(ReadOptions),
    responses(
        (status = 200, description = "The wait-for graph and recent deadlocks", body = dsync_api::locks::LockGraph),
    ),
)]
async fn graph(
    State(node): State<Arc<Node>>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> HttpResult<Json<LockGraph>> {
    node.read_barrier(q.consistency, q.max_staleness_ms).await?;
    let st = node.control.sm.read();
    Ok(Json(LockGraph {
        edges: st.data.locks.edges(),
        deadlocks: st.data.locks.recent_deadlocks(),
    }))
}
