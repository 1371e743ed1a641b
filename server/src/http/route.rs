//! A client route is registered once: `Api::route(rule, routes!(handler))`
//! takes the path and methods from the handler's `#[utoipa::path]` (whose
//! path is a `dsync_api::routes` constant, the one the client calls), mounts
//! the handler there, adds its OpenAPI entry and records what the call
//! needs. The guard, the drain gate, the `Allow` header and the shared
//! responses of the document all read that record, so none of them keeps a
//! list of paths of its own.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::http::Method;
use axum::Router;
use utoipa::openapi::path::PathItem;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::auth::policy::Rule;
use crate::node::Node;

/// Whether a draining node turns a route away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// Data and shard calls: refused while draining, and waited for.
    Client,
    /// Probes, status, metrics and cluster administration: they keep
    /// working so operators and the rest of the cluster reach the node.
    Operator,
}

/// What one method of one route needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    pub rule: Rule,
    pub traffic: Traffic,
}

/// The methods a path item describes, in the order `Allow` lists them.
fn methods_of(item: &PathItem) -> Vec<Method> {
    [
        (Method::GET, item.get.is_some()),
        (Method::PUT, item.put.is_some()),
        (Method::POST, item.post.is_some()),
        (Method::DELETE, item.delete.is_some()),
        (Method::PATCH, item.patch.is_some()),
    ]
    .into_iter()
    .filter_map(|(m, present)| present.then_some(m))
    .collect()
}

/// Every registered route's methods and entries, by axum's template
/// (`/v1/kv/{*key}`).
#[derive(Debug, Default)]
pub struct Table {
    by_path: HashMap<String, Vec<(Method, Entry)>>,
}

impl Table {
    fn insert(&mut self, path: &str, method: Method, entry: Entry) {
        let methods = self.by_path.entry(path.to_string()).or_default();
        assert!(
            methods.iter().all(|(m, _)| *m != method),
            "{method} {path} is registered twice"
        );
        methods.push((method, entry));
    }

    fn merge(&mut self, other: Table) {
        for (path, methods) in other.by_path {
            for (method, entry) in methods {
                self.insert(&path, method, entry);
            }
        }
    }

    /// The entry of `method` on the route `template` matched; `HEAD` is
    /// answered by the `GET` handler, so it needs what `GET` needs.
    pub fn get(&self, template: &str, method: &Method) -> Option<Entry> {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.by_path
            .get(template)?
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, e)| *e)
    }

    /// The rule a call of `method` on the route `template` needs. A method
    /// the route does not take (answered 405) needs the most the route's
    /// other methods would, so a 405 tells nobody more than a 403 would.
    pub fn rule(&self, template: &str, method: &Method) -> Option<Rule> {
        if let Some(e) = self.get(template, method) {
            return Some(e.rule);
        }
        self.by_path
            .get(template)?
            .iter()
            .map(|(_, e)| e.rule)
            .max_by_key(|r| r.role_for(method))
    }

    /// The `Allow` header of a route: its methods, `HEAD` with `GET`.
    pub fn allow(&self, template: &str) -> Option<String> {
        let methods = self.by_path.get(template)?;
        let order = [
            Method::GET,
            Method::PUT,
            Method::POST,
            Method::DELETE,
            Method::PATCH,
        ];
        let allow: Vec<&str> = order
            .iter()
            .filter(|m| methods.iter().any(|(have, _)| have == *m))
            .map(|m| {
                if *m == Method::GET {
                    "GET,HEAD"
                } else {
                    m.as_str()
                }
            })
            .collect();
        Some(allow.join(","))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Method, &Entry)> {
        self.by_path
            .iter()
            .flat_map(|(p, ms)| ms.iter().map(move |(m, e)| (p.as_str(), m, e)))
    }
}

/// Client routes being registered: the axum router, the OpenAPI paths and
/// the table, built by the same calls.
pub struct Api {
    router: OpenApiRouter<Arc<Node>>,
    table: Table,
    traffic: Traffic,
}

impl Api {
    /// Routes a draining node refuses.
    pub fn client() -> Self {
        Self::of(Traffic::Client)
    }

    /// Routes that keep working on a draining node.
    pub fn operator() -> Self {
        Self::of(Traffic::Operator)
    }

    fn of(traffic: Traffic) -> Self {
        Self {
            router: OpenApiRouter::new(),
            table: Table::default(),
            traffic,
        }
    }

    /// Mounts the handlers of one path (`routes!(get_key, put_key)`) with
    /// the rule their calls need.
    pub fn route(mut self, rule: Rule, handlers: UtoipaMethodRouter<Arc<Node>>) -> Self {
        let entry = Entry {
            rule,
            traffic: self.traffic,
        };
        for (path, item) in handlers.1.paths.iter() {
            for method in methods_of(item) {
                self.table.insert(path, method, entry);
            }
        }
        self.router = self.router.routes(handlers);
        self
    }

    pub fn merge(mut self, other: Api) -> Self {
        self.table.merge(other.table);
        self.router = self.router.merge(other.router);
        self
    }

    pub fn split(self) -> (Router<Arc<Node>>, OpenApi, Table) {
        let (router, doc) = self.router.split_for_parts();
        (router, doc, self.table)
    }
}

/// The client routes' OpenAPI paths and table, as `http::api` registers
/// them (built once; the router itself is built by `http::router`).
pub fn described() -> &'static (OpenApi, Table) {
    static BUILT: OnceLock<(OpenApi, Table)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let (_, doc, table) = super::api().split();
        (doc, table)
    })
}

/// The table of every client route.
pub fn table() -> &'static Table {
    &described().1
}

#[cfg(test)]
mod tests {
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
}
