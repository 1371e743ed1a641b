//! What the guard (`http/guard.rs`) checks requests against, built once per
//! node, and the caller it hands to the handlers.

use std::net::IpAddr;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;

use super::audit::Audit;
use super::limits::Limits;
use super::{Auth, AuthConfig, LimitsConfig, Principal};
use crate::serve::ConnInfo;
use crate::tls::{Tls, TlsConfig};

/// Everything the guard needs, built once per node.
pub struct Security {
    /// This node's id, for the audit log.
    pub node_id: u64,
    pub auth: Auth,
    pub limits: Limits,
    pub audit: Option<Audit>,
    /// With TLS, peer routes also need a certificate signed by the cluster CA.
    pub tls: Option<Tls>,
}

impl Security {
    /// From node `node_id`'s settings: credentials, limits, the audit log
    /// file and TLS.
    pub fn new(
        node_id: u64,
        auth: &AuthConfig,
        limits: &LimitsConfig,
        audit_log: Option<&std::path::Path>,
        tls: Option<&TlsConfig>,
    ) -> Result<Security, String> {
        let audit = audit_log
            .map(|p| {
                Audit::open(p).map_err(|e| format!("cannot open audit log {}: {e}", p.display()))
            })
            .transpose()?;
        Ok(Security {
            node_id,
            auth: Auth::from_config(auth)?,
            limits: Limits::new(limits.clone()),
            audit,
            tls: tls.map(Tls::load).transpose()?,
        })
    }

    /// Whether a request may use the peer routes: the cluster secret (when
    /// there is one) and, with TLS, a certificate signed by the cluster CA.
    pub fn is_peer(&self, req: &Request) -> bool {
        self.auth.is_peer(req.headers()) && (self.tls.is_none() || peer_certificate(req))
    }
}

/// Whether the request's connection presented a certificate of the cluster CA.
pub fn peer_certificate(req: &Request) -> bool {
    req.extensions()
        .get::<ConnInfo>()
        .is_some_and(|c| c.peer_certificate)
}

/// The caller of a client request, for handlers that bind ownership or
/// count per-client resources.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The remote address, for [`key`](Caller::key) when no principal is bound.
    pub remote: Option<IpAddr>,
}

impl Caller {
    /// Whom per-client limits count against: the principal, or the remote
    /// IP when auth is off. Made on demand: formatting an address for every
    /// request cost a cache hit about 4 % of its instructions.
    pub fn key(&self) -> String {
        if self.principal.bound || self.principal.is_peer() {
            return self.principal.name.clone();
        }
        self.remote
            .map_or_else(|| "anonymous".into(), |ip| ip.to_string())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Caller>().cloned().unwrap_or(Caller {
            principal: Principal::anonymous(),
            remote: None,
        }))
    }
}
