//! The one middleware in front of every route: peer routes need the cluster
//! secret; client routes need a credential whose role and scopes cover what
//! [`policy::classify`](crate::auth::policy::classify) says the call needs; then
//! the per-client rate limit; then the audit record.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dsync_api::auth::Role;
use dsync_api::{ApiError, ErrorCode};

use super::error::HttpError;
use super::route;
use crate::auth::audit::{outcome_of, printable, Record};
use crate::auth::limits::rate_limited;
use crate::auth::policy::{classify, permit, Access};
use crate::auth::{Caller, Principal, Security};
use crate::proposer::now_ms;
use crate::serve::ConnMark;
use crate::tls::PeerCertificate;

fn refuse(e: ApiError) -> Response {
    HttpError(e).into_response()
}

/// What `req` needs, from the rule of the route the router matched and the
/// path parameters it extracted (the handler's own values), or the 400 that
/// the handler would give for parameters that do not decode.
async fn access_of(req: Request) -> Result<(Request, Access), ApiError> {
    let (mut parts, body) = req.into_parts();
    let route = parts.extensions.get::<MatchedPath>().cloned();
    let params = match RawPathParams::from_request_parts(&mut parts, &()).await {
        Ok(params) => Some(params),
        // Unmatched paths (the 404 fallback) carry no parameters.
        Err(RawPathParamsRejection::MissingPathParams(_)) => None,
        Err(rej) => return Err(ApiError::new(ErrorCode::InvalidArgument, rej.body_text())),
    };
    let params: Vec<(&str, &str)> = params.iter().flatten().collect();
    let rule = route.and_then(|r| route::table().rule(r.as_str(), &parts.method));
    let access = classify(
        &parts.method,
        parts.uri.path(),
        parts.uri.query(),
        rule,
        &params,
    );
    Ok((Request::from_parts(parts, body), access))
}

/// A client request on a connection admitted past the caps, in the room
/// kept for peers: refused, and the connection closed.
fn node_full() -> Response {
    let e = ApiError::new(
        ErrorCode::Unavailable,
        "this node has no free connection for clients (limits.max_connections, \
         limits.max_connections_per_client); retry, or use another node",
    );
    let mut resp = HttpError(e).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

pub async fn guard(State(sec): State<Arc<Security>>, req: Request, next: Next) -> Response {
    let (mut req, access) = match access_of(req).await {
        Ok(found) => found,
        Err(e) => return refuse(e),
    };
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let peer = access == Access::Peer && sec.is_peer(&req);
    let conn = req.extensions().get::<ConnMark>();
    if peer {
        // A peer's connection is never closed to make room for clients.
        if let Some(conn) = conn {
            conn.mark_peer();
        }
        return next.run(req).await;
    }
    if conn.is_some_and(ConnMark::on_probation) {
        return node_full();
    }
    if access == Access::Public {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let checked = match sec.auth.authenticate(req.headers()) {
        // Without the cluster secret (checked above), a peer route is refused
        // whatever else the request carries.
        _ if access == Access::Peer => Err((credential_hint(&req), peer_refusal(&req))),
        Err(e) => Err((credential_hint(&req), e)),
        Ok(p) => {
            let refused = match &access {
                Access::Peer => Some(peer_refusal(&req)),
                Access::Needs(role, target) => permit(&p, *role, target).err(),
                Access::Public | Access::Authenticated => None,
            };
            match refused {
                Some(e) => Err((p.name, e)),
                None => Ok(p),
            }
        }
    };
    let principal = match checked {
        Ok(p) if p == Principal::anonymous() && sec.tls.is_some() => {
            match with_tls_without_tokens(&req, &access) {
                Ok(p) => p,
                Err(e) => {
                    let resp = refuse(e);
                    audit(&sec, p.name, remote, &method, &path, resp.status().as_u16()).await;
                    return resp;
                }
            }
        }
        Ok(p) => p,
        Err((who, e)) => {
            let resp = refuse(e);
            audit(&sec, who, remote, &method, &path, resp.status().as_u16()).await;
            return resp;
        }
    };
    let admin = matches!(access, Access::Needs(Role::Admin, _));
    let key = if principal.bound || principal == Principal::peer() {
        principal.name.clone()
    } else {
        remote.map_or_else(|| "anonymous".into(), |a| a.ip().to_string())
    };
    if principal != Principal::peer() {
        if let Err(wait) = sec.limits.check_rate(&key) {
            let mut resp = refuse(rate_limited(format!(
                "more than {} requests per second",
                sec.limits.config.rate_limit_per_sec
            )));
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            audit(&sec, principal.name, remote, &method, &path, 429).await;
            return resp;
        }
    }
    let name = principal.name.clone();
    req.extensions_mut().insert(Caller { principal, key });
    let resp = next.run(req).await;
    let mutating = !(method == Method::GET || method == Method::HEAD);
    let status = resp.status().as_u16();
    if mutating || admin || outcome_of(status) == "denied" {
        audit(&sec, name, remote, &method, &path, status).await;
    }
    resp
}

/// With TLS but no token auth, a certificate of the cluster CA is the admin
/// credential: other callers may read and write, not change the cluster.
fn with_tls_without_tokens(req: &Request, access: &Access) -> Result<Principal, ApiError> {
    if req.extensions().get::<PeerCertificate>().is_some() {
        return Ok(Principal::peer());
    }
    let p = Principal {
        role: Role::Write,
        ..Principal::anonymous()
    };
    if let Access::Needs(role, target) = access {
        permit(&p, *role, target)?;
    }
    Ok(p)
}

/// Why a request without the cluster secret cannot reach a peer route.
fn peer_refusal(req: &Request) -> ApiError {
    if req.headers().contains_key(header::AUTHORIZATION) {
        ApiError::new(
            ErrorCode::PermissionDenied,
            "peer routes accept only peers (cluster secret, and with TLS a certificate of the cluster CA), never a client credential",
        )
    } else {
        ApiError::new(
            ErrorCode::Unauthenticated,
            "peer routes need the cluster secret (and with TLS a certificate of the cluster CA)",
        )
    }
}

/// Who a refused request claimed to be, without keeping its credential.
fn credential_hint(req: &Request) -> String {
    if req.headers().contains_key(dsync_api::HEADER_CLUSTER_SECRET) {
        "(bad cluster secret)".into()
    } else if req.headers().contains_key(header::AUTHORIZATION) {
        "(invalid token)".into()
    } else {
        "(none)".into()
    }
}

async fn audit(
    sec: &Security,
    principal: String,
    remote: Option<SocketAddr>,
    method: &Method,
    path: &str,
    status: u16,
) {
    let Some(audit) = &sec.audit else {
        return;
    };
    audit
        .record(Record {
            ts_ms: now_ms(),
            node: sec.node_id,
            principal: printable(&principal),
            remote: remote.map(|a| a.to_string()),
            method: method.to_string(),
            path: printable(path),
            status,
            outcome: outcome_of(status),
        })
        .await;
}
