//! What each request needs, decided from the route it matched and the path
//! parameters the router extracted for it — the same values the handler
//! acts on — so a scope is checked against the exact key, lock, topic or
//! cache key, never against a path segment that only looks like it. Routes
//! added later fall under the rule of their prefix: reads need `read`,
//! mutations `write`, cluster, node, backup, token and force-release routes
//! `admin`; anything unknown that mutates needs `admin`.

use axum::http::Method;
use dsync_api::auth::{Kind, Role};
use dsync_api::{ApiError, ErrorCode};

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

/// What the router found for a request: the route template it matched
/// (`/v1/kv/{*key}`), if any, and the decoded path parameters it extracted.
#[derive(Debug, Clone, Copy)]
pub struct Matched<'a> {
    pub route: Option<&'a str>,
    pub params: &'a [(&'a str, &'a str)],
}

/// The path parameters that name a resource, as the routes call them.
const NAME_PARAMS: [&str; 3] = ["key", "name", "topic"];

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
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

pub fn classify(method: &Method, path: &str, query: Option<&str>, m: Matched<'_>) -> Access {
    // By the raw path, matched or not: nothing under /raft is a client's.
    if path == "/raft" || path.starts_with(dsync_api::routes::RAFT_PREFIX) {
        return Access::Peer;
    }
    let read = method == Method::GET || method == Method::HEAD;
    let by_method =
        |target: Target| Access::Needs(if read { Role::Read } else { Role::Write }, target);
    // An unmatched path is answered 404 by the fallback; what it needs
    // follows from the method alone.
    let Some(route) = m.route else {
        return unknown(read);
    };
    match route {
        // Status shows topology, never data; tools poll it while a cluster
        // forms, as with Consul's /v1/status.
        "/health" | "/ready" | "/openapi.json" | "/v1/status" => return Access::Public,
        "/metrics" => return Access::Needs(Role::Read, Target::Nothing),
        "/v1/auth/whoami" => return Access::Authenticated,
        "/v1/events" => return Access::Needs(Role::Read, Target::Global),
        _ => {}
    }
    let Some(rest) = route.strip_prefix("/v1/") else {
        return unknown(read);
    };
    let mut segs = rest.split('/');
    let first = segs.next().unwrap_or_default();
    if matches!(first, "auth" | "cluster" | "node") {
        return Access::Needs(Role::Admin, Target::Global);
    }
    let Some(kind) = kind_of(first) else {
        return unknown(read);
    };
    let name = m
        .params
        .iter()
        .find(|(k, _)| NAME_PARAMS.contains(k))
        .map(|(_, v)| v.to_string());
    match name {
        Some(name) if route.ends_with("/force-release") => {
            Access::Needs(Role::Admin, Target::Named(kind, name))
        }
        Some(name) => by_method(Target::Named(kind, name)),
        // A route of the domain without a name lists it (`/v1/locks`,
        // `/v1/locks/graph`, `/v1/cache/lines`): all of it, or the prefix
        // the KV listing asks for.
        None if route == dsync_api::routes::KV => by_method(Target::Prefix(
            kind,
            query_param(query, "prefix").unwrap_or_default(),
        )),
        None => by_method(Target::Prefix(kind, String::new())),
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

    /// Classifies a request the way the guard does once the router has
    /// matched `route` and extracted `params` from `path`.
    fn c(m: &str, path: &str, route: Option<&str>, params: &[(&str, &str)]) -> Access {
        let (p, q) = path
            .split_once('?')
            .map_or((path, None), |(p, q)| (p, Some(q)));
        classify(&m.parse().unwrap(), p, q, Matched { route, params })
    }

    /// A route without parameters, matched as itself.
    fn plain(m: &str, path: &str) -> Access {
        let route = path.split('?').next().unwrap();
        c(m, path, Some(route), &[])
    }

    fn needs(role: Role, t: Target) -> Access {
        Access::Needs(role, t)
    }

    #[test]
    fn every_route_group_is_classified() {
        use Kind::*;
        let n = |k, s: &str| Target::Named(k, s.to_string());
        let p = |k, s: &str| Target::Prefix(k, s.to_string());
        assert_eq!(plain("POST", "/raft/append"), Access::Peer);
        assert_eq!(c("POST", "/raft/cache/invalidate", None, &[]), Access::Peer);
        assert_eq!(plain("GET", "/health"), Access::Public);
        assert_eq!(plain("GET", "/v1/auth/whoami"), Access::Authenticated);
        let admin = needs(Role::Admin, Target::Global);
        assert_eq!(plain("POST", "/v1/auth/tokens"), admin);
        assert_eq!(plain("GET", "/v1/status"), Access::Public);
        assert_eq!(plain("GET", "/metrics"), needs(Role::Read, Target::Nothing));
        assert_eq!(plain("GET", "/v1/cluster/backup"), admin);
        assert_eq!(plain("POST", "/v1/cluster/leader/transfer"), admin);
        let member = c(
            "DELETE",
            "/v1/cluster/members/3",
            Some("/v1/cluster/members/{id}"),
            &[("id", "3")],
        );
        assert_eq!(member, admin);
        assert_eq!(plain("POST", "/v1/node/drain"), admin);
        assert_eq!(
            plain("GET", "/v1/events"),
            needs(Role::Read, Target::Global)
        );
        assert_eq!(plain("GET", "/v1/locks"), needs(Role::Read, p(Locks, "")));
        assert_eq!(
            plain("GET", "/v1/locks/graph"),
            needs(Role::Read, p(Locks, ""))
        );
        let lock = |verb: &str| format!("/v1/locks/{{name}}{verb}");
        assert_eq!(
            c(
                "GET",
                "/v1/locks/a%2Fb",
                Some(&lock("")),
                &[("name", "a/b")]
            ),
            needs(Role::Read, n(Locks, "a/b"))
        );
        assert_eq!(
            c(
                "POST",
                "/v1/locks/a/acquire",
                Some(&lock("/acquire")),
                &[("name", "a")]
            ),
            needs(Role::Write, n(Locks, "a"))
        );
        assert_eq!(
            c(
                "POST",
                "/v1/locks/a/force-release",
                Some(&lock("/force-release")),
                &[("name", "a")]
            ),
            needs(Role::Admin, n(Locks, "a"))
        );
        assert_eq!(
            c(
                "POST",
                "/v1/queues/jobs/ack",
                Some("/v1/queues/{topic}/ack"),
                &[("topic", "jobs")]
            ),
            needs(Role::Write, n(Queues, "jobs"))
        );
        assert_eq!(
            c(
                "GET",
                "/v1/queues/jobs",
                Some("/v1/queues/{topic}"),
                &[("topic", "jobs")]
            ),
            needs(Role::Read, n(Queues, "jobs"))
        );
        assert_eq!(
            c("GET", "/v1/kv?prefix=app%2F", Some("/v1/kv"), &[]),
            needs(Role::Read, p(Kv, "app/"))
        );
        assert_eq!(
            c(
                "PUT",
                "/v1/kv/app%2Fx",
                Some("/v1/kv/{*key}"),
                &[("key", "app/x")]
            ),
            needs(Role::Write, n(Kv, "app/x"))
        );
        assert_eq!(
            c(
                "GET",
                "/v1/cache/k/states",
                Some("/v1/cache/{key}/states"),
                &[("key", "k")]
            ),
            needs(Role::Read, n(Cache, "k"))
        );
        assert_eq!(
            c(
                "DELETE",
                "/v1/cache/k",
                Some("/v1/cache/{key}"),
                &[("key", "k")]
            ),
            needs(Role::Write, n(Cache, "k"))
        );
        assert_eq!(plain("GET", "/v1/cache"), needs(Role::Read, p(Cache, "")));
        assert_eq!(
            plain("GET", "/v1/cache/lines"),
            needs(Role::Read, p(Cache, ""))
        );
        // Unmatched paths (answered 404) need what their method implies.
        assert_eq!(c("POST", "/v1/whatever", None, &[]), admin);
        assert_eq!(c("POST", "/elsewhere", None, &[]), admin);
        assert_eq!(
            c("GET", "/v1/kv", None, &[]),
            needs(Role::Read, Target::Global)
        );
    }

    /// The key a scope is checked against is the whole key the handler
    /// gets, not the first path segment: `/v1/kv/app/db-password` is the
    /// key `app/db-password`, which a `kv:app` scope does not name.
    #[test]
    fn a_scope_is_checked_against_the_whole_key() {
        let p = |scope: &str| Principal {
            name: "svc".into(),
            role: Role::Write,
            scopes: vec![scope.parse().unwrap()],
            expires_at: None,
            bound: true,
        };
        let kv = |key: &str| {
            let Access::Needs(role, target) = c(
                "PUT",
                &format!("/v1/kv/{key}"),
                Some("/v1/kv/{*key}"),
                &[("key", key)],
            ) else {
                panic!("kv routes need a role");
            };
            (role, target)
        };
        let (role, t) = kv("app/db-password");
        assert!(permit(&p("kv:app"), role, &t).is_err());
        let (role, t) = kv("app/config/evil");
        assert!(permit(&p("kv:app/config"), role, &t).is_err());
        assert!(permit(&p("kv:app/config*"), role, &t).is_ok());
        let (role, t) = kv("app");
        assert!(permit(&p("kv:app"), role, &t).is_ok());
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
