//! Who may call what, the guard part of [`front`](super::front): peer
//! routes need the cluster secret; client routes need a credential whose
//! role and scopes cover what
//! [`policy::classify`](crate::auth::policy::classify) says the call needs;
//! then the per-client rate limit; then the audit record.

use std::net::SocketAddr;

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use dsync_api::auth::Role;
use dsync_api::{ApiError, ErrorCode};

use super::error::HttpError;
use crate::auth::audit::{outcome_of, printable, Record};
use crate::auth::limits::rate_limited;
use crate::auth::policy::{permit, Access};
use crate::auth::{peer_certificate, Caller, Principal, Security};
use crate::proposer::now_ms;
use crate::serve::{ConnInfo, ConnMark};

fn refuse(e: ApiError) -> Response {
    HttpError(e).into_response()
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

/// What [`admit`] let through, for [`settle`] to audit once the answer
/// is known.
pub enum Pass {
    /// Peers, public routes, and every call when no audit log is kept.
    Quiet,
    Audited {
        name: String,
        remote: Option<SocketAddr>,
        method: Method,
        path: String,
        admin: bool,
    },
}

/// Lets `req` through, with its [`Caller`] attached, or answers it: peer
/// routes need the cluster secret; client routes a credential whose role
/// and scopes cover `access`; then the per-client rate limit. Refusals are
/// audited here, what passes in [`settle`].
pub async fn admit(
    sec: &Security,
    mut req: Request,
    access: &Access,
) -> Result<(Request, Pass), Response> {
    let info = req.extensions().get::<ConnInfo>();
    let remote = info.map(|c| c.remote);
    let conn = info.map(|c| &c.mark);
    let peer = *access == Access::Peer && sec.is_peer(&req);
    if peer {
        // A peer's connection is never closed to make room for clients.
        if let Some(conn) = conn {
            conn.mark_peer();
        }
        return Ok((req, Pass::Quiet));
    }
    if conn.is_some_and(ConnMark::on_probation) {
        return Err(node_full());
    }
    if *access == Access::Public {
        return Ok((req, Pass::Quiet));
    }
    let checked = match sec.auth.authenticate(req.headers()) {
        // Without the cluster secret (checked above), a peer route is refused
        // whatever else the request carries.
        _ if *access == Access::Peer => Err((credential_hint(&req), peer_refusal(&req))),
        Err(e) => Err((credential_hint(&req), e)),
        Ok(p) => {
            let refused = match access {
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
        Ok(p) if p.is_anonymous() && sec.tls.is_some() => {
            match with_tls_without_tokens(&req, access) {
                Ok(p) => p,
                Err(e) => return Err(refused(sec, p.name, remote, req_line(&req), refuse(e)).await),
            }
        }
        Ok(p) => p,
        Err((who, e)) => return Err(refused(sec, who, remote, req_line(&req), refuse(e)).await),
    };
    let caller = Caller {
        principal,
        remote: remote.map(|a| a.ip()),
    };
    if !caller.principal.is_peer() && sec.limits.rate_limited() {
        if let Err(wait) = sec.limits.check_rate(&caller.key()) {
            let mut resp = refuse(rate_limited(format!(
                "more than {} requests per second",
                sec.limits.config.rate_limit_per_sec
            )));
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            return Err(refused(sec, caller.principal.name, remote, req_line(&req), resp).await);
        }
    }
    let pass = if sec.audit.is_some() {
        let (method, path) = req_line(&req);
        Pass::Audited {
            name: caller.principal.name.clone(),
            remote,
            method,
            path,
            admin: matches!(access, Access::Needs(Role::Admin, _)),
        }
    } else {
        Pass::Quiet
    };
    req.extensions_mut().insert(caller);
    Ok((req, pass))
}

/// Audits a call [`admit`] let through: every change, every admin call,
/// and every refusal the handler gave.
pub async fn settle(sec: &Security, pass: Pass, status: StatusCode) {
    let Pass::Audited {
        name,
        remote,
        method,
        path,
        admin,
    } = pass
    else {
        return;
    };
    let mutating = !(method == Method::GET || method == Method::HEAD);
    let status = status.as_u16();
    if mutating || admin || outcome_of(status) == "denied" {
        audit(sec, name, remote, (method, path), status).await;
    }
}

async fn refused(
    sec: &Security,
    who: String,
    remote: Option<SocketAddr>,
    line: (Method, String),
    resp: Response,
) -> Response {
    audit(sec, who, remote, line, resp.status().as_u16()).await;
    resp
}

fn req_line(req: &Request) -> (Method, String) {
    (req.method().clone(), req.uri().path().to_string())
}

/// With TLS but no token auth, a certificate of the cluster CA is the admin
/// credential: other callers may read and write, not change the cluster.
fn with_tls_without_tokens(req: &Request, access: &Access) -> Result<Principal, ApiError> {
    if peer_certificate(req) {
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
    (method, path): (Method, String),
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
            path: printable(&path),
            status,
            outcome: outcome_of(status),
        })
        .await;
}
