//! The rules routes are registered with, as the guard reads them.

use dsync_api::auth::{Kind, Role};
use dsync_api::routes;

use super::*;
use crate::auth::policy::{classify, Access, Target};

/// Classifies a request the way the guard does once the router has
/// matched `route` and extracted `params` from `path`.
fn c(m: &str, path: &str, route: Option<&str>, params: &[(&str, &str)]) -> Access {
    let (p, q) = path
        .split_once('?')
        .map_or((path, None), |(p, q)| (p, Some(q)));
    let method = m.parse().unwrap();
    let rule = route.and_then(|r| table().rule(r, &method));
    classify(&method, p, q, rule, params)
}

/// A route without parameters, matched as itself.
fn plain(m: &str, path: &str) -> Access {
    let route = path.split('?').next().unwrap();
    c(m, path, Some(route), &[])
}

fn needs(role: Role, t: Target) -> Access {
    Access::Needs(role, t)
}

/// The rules routes are registered with, seen as the guard sees them.
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

#[test]
fn shard_routes_read_with_read_and_change_with_admin() {
    let global = |role| needs(role, Target::Global);
    assert_eq!(plain("GET", "/v1/shards"), global(Role::Read));
    assert_eq!(plain("GET", "/v1/shards/jobs"), global(Role::Read));
    assert_eq!(plain("POST", "/v1/shards"), global(Role::Admin));
    assert_eq!(plain("POST", "/v1/shards/reshard"), global(Role::Admin));
    assert_eq!(plain("HEAD", "/v1/shards"), global(Role::Read));
}

#[test]
fn a_method_a_route_does_not_take_needs_the_most_its_others_do() {
    let admin = needs(Role::Admin, Target::Global);
    assert_eq!(plain("GET", "/v1/node/drain"), admin);
    assert_eq!(plain("PUT", "/v1/shards"), admin);
    let lock = Some("/v1/locks/{name}/acquire");
    let n = Target::Named(Kind::Locks, "a".into());
    assert_eq!(
        c("GET", "/v1/locks/a/acquire", lock, &[("name", "a")]),
        needs(Role::Read, n.clone())
    );
    assert_eq!(
        c("PATCH", "/v1/locks/a/acquire", lock, &[("name", "a")]),
        needs(Role::Write, n)
    );
}

#[test]
fn allow_lists_each_registered_method_once() {
    let t = table();
    assert_eq!(
        t.allow(routes::KV_KEY).as_deref(),
        Some("GET,HEAD,PUT,DELETE")
    );
    assert_eq!(t.allow(routes::NODE_DRAIN).as_deref(), Some("POST,DELETE"));
    assert_eq!(t.allow("/nowhere"), None);
    for (path, method, _) in t.iter() {
        let allow = t.allow(path).unwrap();
        assert!(
            allow.split(',').any(|m| m == method.as_str()),
            "{method} {path}"
        );
    }
}

#[test]
#[should_panic(expected = "registered twice")]
fn a_method_cannot_be_registered_twice_on_one_path() {
    let entry = Entry {
        rule: Rule::Public,
        traffic: Traffic::Operator,
    };
    let mut t = Table::default();
    t.insert("/x", Method::GET, entry);
    t.insert("/x", Method::GET, entry);
}
