//! `GET /openapi.json`: the OpenAPI 3.1 description of every client route,
//! built from the handlers' `#[utoipa::path]` annotations and the wire
//! types of `dsync-api`. The responses every route shares (auth, rate limit,
//! drain, bad input, an oversized head) are added here from the same rules the middleware
//! enforces, so the document cannot promise less than the server does.
//! Peer routes (`/raft/*`) are left out: they speak bincode between nodes
//! of one release and are no client's business.

use std::sync::OnceLock;

use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use dsync_api::{routes, ErrorBody, ErrorCode};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::OpenApi;
use utoipa_axum::routes;

use super::route::{self, Api, Table, Traffic};
use crate::auth::policy::Rule;

pub fn api() -> Api {
    Api::operator().route(Rule::Public, routes!(serve))
}

/// What the document says besides its paths, which `http::api` registers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "dsync",
        description = "Distributed locks with fencing tokens, an at-least-once queue, a \
            replicated KV and a MESI cache over Raft. Every error is \
            `{\"error\": {\"code\", \"message\", ...details}}` (see `ErrorBody`). Every \
            response carries `x-dsync-node`, `x-dsync-leader` and `x-dsync-term`. \
            Peer routes (`/raft/*`) are internal and not described here."
    ),
    components(schemas(
        ErrorBody,
        ErrorCode,
        dsync_api::types::Consistency,
        dsync_api::events::Event
    )),
    tags(
        (name = "meta", description = "Probes, metrics and this document"),
        (name = "cluster", description = "Status, membership, leadership, backup, drain"),
        (name = "auth", description = "Who am I, and token signing"),
        (name = "kv", description = "The replicated key-value store"),
        (name = "locks", description = "Leased locks with fencing tokens"),
        (name = "queues", description = "At-least-once topics with visibility timeouts"),
        (name = "cache", description = "This node's MESI-coherent cache"),
        (name = "events", description = "Server-sent events"),
    )
)]
struct ApiDoc;

/// The document as served, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let (paths, table) = route::described();
        let mut doc = ApiDoc::openapi();
        doc.merge(paths.clone());
        add_shared(&mut doc, table);
        // axum's catch-all `{*key}` is one parameter `{key}` to OpenAPI.
        let described = std::mem::take(&mut doc.paths.paths);
        doc.paths.paths = described
            .into_iter()
            .map(|(path, item)| (path.replace("{*", "{"), item))
            .collect();
        doc.to_json().expect("the OpenAPI document serializes")
    })
}

/// The `Allow` header of a route, as axum's template names it (`{*key}`
/// included). Peer routes are all `POST`.
pub fn allow(template: &str) -> Option<HeaderValue> {
    if template.starts_with(routes::RAFT_PREFIX) {
        return Some(HeaderValue::from_static("POST"));
    }
    HeaderValue::from_str(&route::table().allow(template)?).ok()
}

/// This document (OpenAPI 3.1). Readable without a credential, like the probes.
#[utoipa::path(get, path = routes::OPENAPI, tag = "meta",
    responses((status = 200, description = "The OpenAPI document", body = Object)),
)]
async fn serve() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

/// The name of the shared error response each code refers to.
fn response_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidArgument => "InvalidArgument",
        ErrorCode::Unauthenticated => "Unauthenticated",
        ErrorCode::PermissionDenied => "PermissionDenied",
        ErrorCode::NotFound => "NotFound",
        ErrorCode::TooLarge => "TooLarge",
        ErrorCode::UriTooLong => "UriTooLong",
        ErrorCode::HeadersTooLarge => "HeadersTooLarge",
        ErrorCode::RateLimited => "RateLimited",
        ErrorCode::Unavailable => "Unavailable",
        _ => "Error",
    }
}

/// The shared error responses, by code.
const SHARED: [(ErrorCode, &str); 9] = [
    (
        ErrorCode::InvalidArgument,
        "`invalid_argument`: a malformed path, query or body, or a value out of range",
    ),
    (
        ErrorCode::Unauthenticated,
        "`unauthenticated`: no valid credential (auth mode `token`)",
    ),
    (
        ErrorCode::PermissionDenied,
        "`permission_denied`: the credential's role or scopes do not cover this call, \
         or the grant or receipt belongs to another principal",
    ),
    (
        ErrorCode::NotFound,
        "`not_found`: no such resource, or the path matches no route",
    ),
    (
        ErrorCode::TooLarge,
        "`too_large`: the body exceeds the node's `max_body_bytes`",
    ),
    (
        ErrorCode::UriTooLong,
        "`uri_too_long`: the path and query exceed the node's `limits.max_uri_bytes`",
    ),
    (
        ErrorCode::HeadersTooLarge,
        "`headers_too_large`: the header fields exceed the node's `limits.max_header_bytes`, \
         or number more than 100",
    ),
    (
        ErrorCode::RateLimited,
        "`rate_limited`: over the per-client rate or a per-client limit; see `Retry-After`",
    ),
    (
        ErrorCode::Unavailable,
        "`unavailable`: no leader or no quorum, or this node is draining; see `Retry-After`",
    ),
];

/// Adds the security scheme and, to every operation, the responses the
/// guard, the drain gate and the extractors may give, from the rule and
/// traffic class its route was registered with.
fn add_shared(doc: &mut utoipa::openapi::OpenApi, table: &Table) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "A dsync JWT (`dsync auth token create`). Nodes in auth mode \
                     `none` ignore it.",
                ))
                .build(),
        ),
    );
    for (code, description) in SHARED {
        let json = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build();
        components.responses.insert(
            response_name(code).to_string(),
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content("application/json", json)
                    .build(),
            ),
        );
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            (Method::GET, &mut item.get),
            (Method::PUT, &mut item.put),
            (Method::POST, &mut item.post),
            (Method::DELETE, &mut item.delete),
            (Method::PATCH, &mut item.patch),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                let entry = table
                    .get(path, &method)
                    .expect("every described operation is registered with its rule");
                add_responses(path, entry, op);
            }
        }
    }
}

fn add_responses(path: &str, entry: route::Entry, op: &mut Operation) {
    // Handler names repeat across domains (`list`, `get_key`): prefix the tag.
    if let (Some(id), Some(tag)) = (&op.operation_id, op.tags.as_ref().and_then(|t| t.first())) {
        op.operation_id = Some(format!("{tag}_{id}"));
    }
    // Any request's head may be over the limits (`http::head`).
    let mut codes = vec![ErrorCode::UriTooLong, ErrorCode::HeadersTooLarge];
    match entry.rule {
        Rule::Public => {}
        Rule::Authenticated => codes.extend([ErrorCode::Unauthenticated, ErrorCode::RateLimited]),
        Rule::Data(_) | Rule::Role(..) => codes.extend([
            ErrorCode::Unauthenticated,
            ErrorCode::PermissionDenied,
            ErrorCode::RateLimited,
        ]),
    }
    if entry.rule != Rule::Public {
        op.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
    if entry.traffic == Traffic::Client {
        codes.push(ErrorCode::Unavailable);
    }
    if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
        codes.push(ErrorCode::InvalidArgument);
    }
    if op.request_body.is_some() {
        codes.extend([ErrorCode::InvalidArgument, ErrorCode::TooLarge]);
    }
    // A path parameter that is empty or a dot segment routes nowhere.
    if path.contains('{') {
        codes.push(ErrorCode::NotFound);
    }
    for code in codes {
        op.responses
            .responses
            .entry(code.http_status().to_string())
            .or_insert_with(|| {
                RefOr::Ref(Ref::new(format!(
                    "#/components/responses/{}",
                    response_name(code)
                )))
            });
    }
}

#[cfg(test)]
mod tests;
