//! The one middleware in front of every route (after routing, so the
//! matched route is known): node headers and request metrics, the head's
//! limits, the drain gate, the guard, and the queue group header, in that
//! order. One layer rather than five, so a request pays for one boxed
//! `Next` and looks up its route's entry and path parameters once.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dsync_api::shards::HEADER_GROUP;
use dsync_api::{ApiError, ErrorCode, HEADER_LEADER, HEADER_NODE, HEADER_TERM};

use super::error::HttpError;
use super::route::{self, Traffic};
use super::{guard, head, lifecycle, shards};
use crate::auth::policy::classify;
use crate::metrics::RouteLabels;
use crate::node::Node;

pub async fn front(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = match serve(&node, route.as_ref(), req, next).await {
        Ok(resp) | Err(resp) => resp,
    };
    stamp(&node, &mut resp);
    let route = match route {
        None => Cow::Borrowed("unmatched"),
        Some(p) => route::table()
            .template(p.as_str())
            .map_or_else(|| Cow::Owned(p.as_str().to_string()), Cow::Borrowed),
    };
    node.metrics
        .requests
        .get_or_create(&RouteLabels {
            method,
            route,
            status: resp.status().as_u16(),
        })
        .observe(started.elapsed().as_secs_f64());
    resp
}

/// Everything between the node headers and the handler; `Err` is an
/// answer given before the handler ran.
async fn serve(
    node: &Node,
    route: Option<&MatchedPath>,
    req: Request,
    next: Next,
) -> Result<Response, Response> {
    let (mut parts, body) = req.into_parts();
    head::admit(&parts, &node.config.limits).map_err(IntoResponse::into_response)?;
    let template = route.map(MatchedPath::as_str);
    let entry = template.and_then(|t| route::table().get(t, &parts.method));
    let client = entry.is_some_and(|e| e.traffic == Traffic::Client);
    if client && node.is_draining() {
        return Err(lifecycle::draining(node).into_response());
    }
    let _serving = client.then(|| node.client_requests.enter());
    let raw = match RawPathParams::from_request_parts(&mut parts, &()).await {
        Ok(params) => Some(params),
        // Unmatched paths (the 404 fallback) carry no parameters.
        Err(RawPathParamsRejection::MissingPathParams(_)) => None,
        Err(rej) => {
            let e = ApiError::new(ErrorCode::InvalidArgument, rej.body_text());
            return Err(HttpError(e).into_response());
        }
    };
    let params: Vec<(&str, &str)> = raw.iter().flatten().collect();
    let rule = match entry {
        Some(e) => Some(e.rule),
        None => template.and_then(|t| route::table().rule(t, &parts.method)),
    };
    let uri = &parts.uri;
    let access = classify(&parts.method, uri.path(), uri.query(), rule, &params);
    // Only where the route takes the method: a 405 names no group.
    let group = entry
        .and(template)
        .and_then(|t| shards::group_of(node, t, &params));
    drop(params);
    let req = Request::from_parts(parts, body);
    let (req, pass) = guard::admit(&node.security, req, &access).await?;
    let mut resp = next.run(req).await;
    if let Some(g) = group {
        resp.headers_mut().insert(GROUP, HeaderValue::from(g));
    }
    guard::settle(&node.security, pass, resp.status()).await;
    Ok(resp)
}

// Built once: a name given as a `&str` is parsed again on every insert.
const NODE: HeaderName = HeaderName::from_static(HEADER_NODE);
const LEADER: HeaderName = HeaderName::from_static(HEADER_LEADER);
const TERM: HeaderName = HeaderName::from_static(HEADER_TERM);
const GROUP: HeaderName = HeaderName::from_static(HEADER_GROUP);

/// `x-dsync-node`, `x-dsync-leader` and `x-dsync-term`, on every answer.
fn stamp(node: &Node, resp: &mut Response) {
    let (leader, term) = {
        let m = node.control.raft.metrics();
        let m = m.borrow();
        (m.current_leader, m.current_term)
    };
    let h = resp.headers_mut();
    h.insert(NODE, HeaderValue::from(node.id));
    h.insert(
        LEADER,
        leader.map_or(HeaderValue::from_static(""), HeaderValue::from),
    );
    h.insert(TERM, HeaderValue::from(term));
}

/// The method as a metric label. Any token is a valid HTTP method, so a
/// client could otherwise mint a series per request (the request metrics
/// are recorded before auth): methods no route takes share one label.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_metric_label() {
        assert_eq!(method_label(&Method::PUT), "PUT");
        for m in ["M1", "M2", "PATCH", "OPTIONS"] {
            assert_eq!(method_label(&m.parse().unwrap()), "other");
        }
    }
}
