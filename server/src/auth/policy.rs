//! What each request needs, decided from its method and path alone, so
//! routes added later fall under the rule of their prefix: reads need
//! `read`, mutations `write`, cluster, node, backup, token and force-release
//! routes `admin`; anything unknown that mutates needs `admin`.

use axum::http::Method;
use dsync_api::auth::{Kind, Role};
use dsync_api::{ApiError, ErrorCode};
use percent_encoding::percent_decode_str;

use super::Principal;

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// No named resource (status, metrics).
    Nothing,
    /// Everything at once (cluster admin, events): scoped tokens are refused.
    Global,
    /// One named resource.
    Named(Kind, String),
    /// Every name starting with the prefix (lists): a scope must cover it all.
    Prefix(Kind, String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// Probes and the API description.
    Public,
    /// Any valid credential (whoami).
    Authenticated,
    /// `/raft/*`: only the cluster secret, never a client token.
    Peer,
    Needs(Role, Target),
}

fn kind_of(seg: &str) -> Option<Kind> {
    match seg {
        "locks" => Some(Kind::Locks),
        "queues" => Some(Kind::Queues),
        "kv" => Some(Kind::Kv),
        "cache" => Some(Kind::Cache),
        _ => None,
    }
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| {
            percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

pub fn classify(method: &Method, path: &str, query: Option<&str>) -> Access {
    if path == "/raft" || path.starts_with(dsync_api::routes::RAFT_PREFIX) {
        return Access::Peer;
    }
    let read = method == Method::GET || method == Method::HEAD;
    let by_method =
        |target: Target| Access::Needs(if read { Role::Read } else { Role::Write }, target);
    match path {
        // Status shows topology, never data; tools poll it while a cluster
        // forms, as with Consul's /v1/status.
        "/health" | "/ready" | "/openapi.json" | "/v1/status" => return Access::Public,
        "/metrics" => return Access::Needs(Role::Read, Target::Nothing),
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/v1/") else {
        return unknown(read);
    };
    let segs: Vec<String> = rest
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["auth", "whoami"] => Access::Authenticated,
        ["auth", ..] | ["cluster", ..] | ["node", ..] => Access::Needs(Role::Admin, Target::Global),
        ["events"] => Access::Needs(Role::Read, Target::Global),
        [k, name, "force-release"] => match kind_of(k) {
            Some(kind) => Access::Needs(Role::Admin, Target::Named(kind, name.to_string())),
            None => unknown(read),
        },
        ["kv"] => {
            let prefix = query_param(query, "prefix").unwrap_or_default();
            by_method(Target::Prefix(Kind::Kv, prefix))
        }
        ["locks", "graph"] => by_method(Target::Prefix(Kind::Locks, String::new())),
        [k] => match kind_of(k) {
            Some(kind) => by_method(Target::Prefix(kind, String::new())),
            None => unknown(read),
        },
        [k, name, ..] => match kind_of(k) {
            Some(kind) => by_method(Target::Named(kind, name.to_string())),
            None => unknown(read),
        },
        [] => unknown(read),
    }
}

fn unknown(read: bool) -> Access {
    if read {
        Access::Needs(Role::Read, Target::Global)
    } else {
        Access::Needs(Role::Admin, Target::Global)
    }
}

fn denied(msg: String) -> ApiError {
    ApiError::new(ErrorCode::PermissionDenied, msg)
}

/// 403 unless `p` has `role` and a scope covering `target`.
pub fn permit(p: &Principal, role: Role, target: &Target) -> Result<(), ApiError> {
    if p.role < role {
        return Err(denied(format!(
            "this call needs the {role} role; {} has {}",
            p.name, p.role
        )));
    }
    if p.scopes.is_empty() {
        return Ok(());
    }
    let ok = match target {
        Target::Nothing => true,
        Target::Global => false,
        Target::Named(kind, name) => p.scopes.iter().any(|s| s.matches(*kind, name)),
        Target::Prefix(kind, prefix) => p.scopes.iter().any(|s| s.covers_prefix(*kind, prefix)),
    };
    if ok {
        Ok(())
    } else {
        Err(denied(match target {
            Target::Named(kind, name) => {
                format!("{}:{name} is outside the token's scopes", kind.as_str())
            }
            Target::Prefix(kind, prefix) => format!(
                "listing {}:{prefix}* needs a scope covering all of it",
                kind.as_str()
            ),
            _ => "this call needs a token without scopes".to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(m: &str, path: &str) -> Access {
        let (p, q) = path
            .split_once('?')
            .map_or((path, None), |(p, q)| (p, Some(q)));
        classify(&m.parse().unwrap(), p, q)
    }

    fn needs(role: Role, t: Target) -> Access {
        Access::Needs(role, t)
    }

    #[test]
    fn every_route_group_is_classified() {
        use Kind::*;
        let n = |k, s: &str| Target::Named(k, s.to_string());
        let p = |k, s: &str| Target::Prefix(k, s.to_string());
        assert_eq!(c("POST", "/raft/append"), Access::Peer);
        assert_eq!(c("POST", "/raft/cache/invalidate"), Access::Peer);
        assert_eq!(c("GET", "/health"), Access::Public);
        assert_eq!(c("GET", "/v1/auth/whoami"), Access::Authenticated);
        assert_eq!(
            c("POST", "/v1/auth/tokens"),
            needs(Role::Admin, Target::Global)
        );
        assert_eq!(c("GET", "/v1/status"), Access::Public);
        assert_eq!(c("GET", "/metrics"), needs(Role::Read, Target::Nothing));
        assert_eq!(
            c("GET", "/v1/cluster/backup"),
            needs(Role::Admin, Target::Global)
        );
        assert_eq!(
            c("POST", "/v1/cluster/leader/transfer"),
            needs(Role::Admin, Target::Global)
        );
        assert_eq!(
            c("DELETE", "/v1/cluster/members/3"),
            needs(Role::Admin, Target::Global)
        );
        assert_eq!(
            c("POST", "/v1/node/drain"),
            needs(Role::Admin, Target::Global)
        );
        assert_eq!(c("GET", "/v1/events"), needs(Role::Read, Target::Global));
        assert_eq!(c("GET", "/v1/locks"), needs(Role::Read, p(Locks, "")));
        assert_eq!(c("GET", "/v1/locks/graph"), needs(Role::Read, p(Locks, "")));
        assert_eq!(
            c("GET", "/v1/locks/a%2Fb"),
            needs(Role::Read, n(Locks, "a/b"))
        );
        assert_eq!(
            c("POST", "/v1/locks/a/acquire"),
            needs(Role::Write, n(Locks, "a"))
        );
        assert_eq!(
            c("POST", "/v1/locks/a/force-release"),
            needs(Role::Admin, n(Locks, "a"))
        );
        assert_eq!(
            c("POST", "/v1/queues/jobs/ack"),
            needs(Role::Write, n(Queues, "jobs"))
        );
        assert_eq!(
            c("GET", "/v1/queues/jobs"),
            needs(Role::Read, n(Queues, "jobs"))
        );
        assert_eq!(
            c("GET", "/v1/kv?prefix=app%2F"),
            needs(Role::Read, p(Kv, "app/"))
        );
        assert_eq!(
            c("PUT", "/v1/kv/app%2Fx"),
            needs(Role::Write, n(Kv, "app/x"))
        );
        assert_eq!(
            c("GET", "/v1/cache/k/states"),
            needs(Role::Read, n(Cache, "k"))
        );
        assert_eq!(
            c("DELETE", "/v1/cache/k"),
            needs(Role::Write, n(Cache, "k"))
        );
        assert_eq!(c("GET", "/v1/cache"), needs(Role::Read, p(Cache, "")));
        assert_eq!(
            c("POST", "/v1/whatever"),
            needs(Role::Admin, Target::Global)
        );
        assert_eq!(c("POST", "/elsewhere"), needs(Role::Admin, Target::Global));
    }

    #[test]
    fn roles_and_scopes_are_enforced() {
        let p = Principal {
            name: "svc".into(),
            role: Role::Write,
            scopes: vec!["locks:billing/*".parse().unwrap()],
            expires_at: None,
            bound: true,
        };
        let named = |s: &str| Target::Named(Kind::Locks, s.into());
        assert!(permit(&p, Role::Write, &named("billing/x")).is_ok());
        assert!(permit(&p, Role::Write, &named("hr/x")).is_err());
        assert!(permit(&p, Role::Admin, &named("billing/x")).is_err());
        assert!(permit(&p, Role::Read, &Target::Global).is_err());
        assert!(permit(&p, Role::Read, &Target::Nothing).is_ok());
        assert!(permit(&p, Role::Read, &Target::Prefix(Kind::Locks, String::new())).is_err());
        assert!(permit(
            &p,
            Role::Read,
            &Target::Prefix(Kind::Locks, "billing/".into())
        )
        .is_ok());
        assert!(permit(&Principal::anonymous(), Role::Admin, &Target::Global).is_ok());
    }
}
