//! What each request needs, decided from the rule its route was registered
//! with (`http::route`) and the path parameters the router extracted for
//! it — the same values the handler acts on — so a scope is checked against
//! the exact key, lock, topic or cache key, never against a path segment
//! that only looks like it. A path no route matches (answered 404) needs
//! `read` to read and `admin` to change; nothing under `/raft` is a client's.

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

/// What a route's calls need, declared where the route is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Probes, status and the API description.
    Public,
    /// Any valid credential, no role (whoami).
    Authenticated,
    /// `read` to read (`GET`, `HEAD`), `write` to change.
    Data(On),
    /// This role, whatever the method.
    Role(Role, On),
}

impl Rule {
    /// Cluster administration: the `admin` role and a token without scopes.
    pub const ADMIN: Rule = Rule::Role(Role::Admin, On::Everything);

    /// The role a call of `method` needs under this rule (`None`: none).
    pub fn role_for(&self, method: &Method) -> Option<Role> {
        match self {
            Rule::Public | Rule::Authenticated => None,
            Rule::Data(_) => Some(data_role(method)),
            Rule::Role(role, _) => Some(*role),
        }
    }
}

fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// `read` to read, `write` to change.
fn data_role(method: &Method) -> Role {
    if is_read(method) {
        Role::Read
    } else {
        Role::Write
    }
}

/// What a scope must cover for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    Nothing,
    /// Everything at once: only a token without scopes.
    Everything,
    /// The resource the route's `key`, `name` or `topic` parameter names.
    One(Kind),
    /// Every resource of the kind (a listing of all of them).
    All(Kind),
    /// Those whose names start with the `prefix` query parameter.
    Prefix(Kind),
}

/// The path parameters that name a resource, as the routes call them.
const NAME_PARAMS: [&str; 3] = ["key", "name", "topic"];

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// What a request needs: `rule` is that of the route it matched (`None`
/// if none did), `params` the path parameters the router extracted.
pub fn classify(
    method: &Method,
    path: &str,
    query: Option<&str>,
    rule: Option<Rule>,
    params: &[(&str, &str)],
) -> Access {
    // By the raw path, matched or not: nothing under /raft is a client's.
    if path == "/raft" || path.starts_with(dsync_api::routes::RAFT_PREFIX) {
        return Access::Peer;
    }
    let read = is_read(method);
    let Some(rule) = rule else {
        return unknown(read);
    };
    let target = |on: On| match on {
        On::Nothing => Target::Nothing,
        On::Everything => Target::Global,
        On::One(kind) => params
            .iter()
            .find(|(k, _)| NAME_PARAMS.contains(k))
            .map_or(Target::Global, |(_, v)| Target::Named(kind, v.to_string())),
        On::All(kind) => Target::Prefix(kind, String::new()),
        On::Prefix(kind) => Target::Prefix(kind, query_param(query, "prefix").unwrap_or_default()),
    };
    match rule {
        Rule::Public => Access::Public,
        Rule::Authenticated => Access::Authenticated,
        Rule::Data(on) => Access::Needs(data_role(method), target(on)),
        Rule::Role(role, on) => Access::Needs(role, target(on)),
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

    /// A call on a KV key, classified as the guard does once the router
    /// has matched `/v1/kv/{*key}` and extracted `key`.
    fn kv(key: &str) -> (Role, Target) {
        let rule = Some(Rule::Data(On::One(Kind::Kv)));
        let path = format!("/v1/kv/{key}");
        let Access::Needs(role, target) =
            classify(&Method::PUT, &path, None, rule, &[("key", key)])
        else {
            panic!("kv routes need a role");
        };
        (role, target)
    }

    #[test]
    fn peer_paths_and_unmatched_paths() {
        let any = Some(Rule::Public);
        let c = |m: &str, path: &str, rule| classify(&m.parse().unwrap(), path, None, rule, &[]);
        assert_eq!(c("POST", "/raft/append", any), Access::Peer);
        assert_eq!(c("POST", "/raft/cache/invalidate", None), Access::Peer);
        let admin = Access::Needs(Role::Admin, Target::Global);
        assert_eq!(c("POST", "/v1/whatever", None), admin);
        assert_eq!(c("DELETE", "/elsewhere", None), admin);
        assert_eq!(
            c("GET", "/v1/kv", None),
            Access::Needs(Role::Read, Target::Global)
        );
    }

    #[test]
    fn a_listing_by_prefix_needs_a_scope_over_the_prefix() {
        let rule = Some(Rule::Data(On::Prefix(Kind::Kv)));
        let got = classify(
            &Method::GET,
            "/v1/kv",
            Some("prefix=app%2F&limit=3"),
            rule,
            &[],
        );
        assert_eq!(
            got,
            Access::Needs(Role::Read, Target::Prefix(Kind::Kv, "app/".into()))
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
