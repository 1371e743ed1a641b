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
use utoipa::openapi::path::{Operation, PathItem};
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

/// The operations a path item describes, with their methods, in the order
/// `Allow` lists them.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (Method, &mut Operation)> {
    [
        (Method::GET, item.get.as_mut()),
        (Method::PUT, item.put.as_mut()),
        (Method::POST, item.post.as_mut()),
        (Method::DELETE, item.delete.as_mut()),
        (Method::PATCH, item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, op)| Some((method, op?)))
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

    /// The table's own copy of `template`, if a client route has it.
    pub fn template(&'static self, template: &str) -> Option<&'static str> {
        self.by_path
            .get_key_value(template)
            .map(|(k, _)| k.as_str())
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

    #[cfg(test)]
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
    tag: Option<&'static str>,
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
            tag: None,
        }
    }

    /// Files the routes registered next under `tag` in the OpenAPI
    /// document, unless a handler's `#[utoipa::path]` names its own.
    pub fn tagged(mut self, tag: &'static str) -> Self {
        self.tag = Some(tag);
        self
    }

    /// Mounts the handlers of one path (`routes!(get_key, put_key)`) with
    /// the rule their calls need.
    pub fn route(mut self, rule: Rule, mut handlers: UtoipaMethodRouter<Arc<Node>>) -> Self {
        let entry = Entry {
            rule,
            traffic: self.traffic,
        };
        for (path, item) in handlers.1.paths.iter_mut() {
            for (method, op) in operations(item) {
                self.table.insert(path, method, entry);
                if let Some(tag) = self.tag {
                    op.tags.get_or_insert_with(|| vec![tag.to_string()]);
                }
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
#[path = "route_tests.rs"]
mod tests;
