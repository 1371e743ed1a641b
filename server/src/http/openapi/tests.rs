//! The document against the router: every route a client can call is
//! described, nothing described is missing, and every reference resolves.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

fn doc() -> serde_json::Value {
    serde_json::from_str(document()).expect("the document is JSON")
}

/// `(method, path)` of every route the server registers, read from the
/// router's `Debug` form (axum has no other way to list routes). The parse
/// checks itself, so a change of that form fails here rather than passing
/// with nothing compared.
fn registered() -> BTreeSet<(String, String)> {
    let text = format!("{:?}", crate::http::routes(1024));
    let own = &text[..text.find("fallback_router").expect("router Debug form")];
    let (routes, paths) = own.split_at(own.find("node: Node").expect("router Debug form"));
    let mut methods = BTreeMap::new();
    for part in routes.split("RouteId(").skip(1) {
        let (id, rest) = part.split_once(')').expect("route id");
        let allow = rest
            .split_once("allow_header: Bytes(b\"")
            .and_then(|(_, a)| a.split_once('"'))
            .map(|(a, _)| a)
            .unwrap_or_else(|| panic!("no allow header for route {id}: {rest}"));
        methods.insert(id.to_string(), allow.to_string());
    }
    let mut out = BTreeSet::new();
    for part in paths.split("RouteId(").skip(1) {
        let (id, rest) = part.split_once("): \"").expect("route path");
        let path = rest.split_once('"').expect("route path").0;
        let allow = methods
            .remove(id)
            .unwrap_or_else(|| panic!("route {id} ({path}) has no methods"));
        for m in allow.split(',').filter(|m| *m != "HEAD") {
            // A catch-all `{*key}` is one parameter `{key}` to OpenAPI.
            out.insert((m.to_string(), path.replace("{*", "{")));
        }
    }
    assert!(methods.is_empty(), "routes without a path: {methods:?}");
    assert!(
        out.contains(&("PUT".into(), "/v1/kv/{key}".into()))
            && out.contains(&("POST".into(), "/raft/append".into())),
        "the router parse found {out:?}"
    );
    out
}

fn documented() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc()["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[test]
fn every_client_route_is_documented_and_nothing_else() {
    let (peer, client): (BTreeSet<_>, BTreeSet<_>) = registered()
        .into_iter()
        .partition(|(_, p)| p.starts_with(dsync_api::routes::RAFT_PREFIX));
    let documented = documented();
    let missing: Vec<_> = client.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from /openapi.json: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&client).collect();
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");
    assert!(!peer.is_empty() && documented.iter().all(|(_, p)| !p.starts_with("/raft")));
}

#[test]
fn every_reference_resolves_and_operation_ids_are_unique() {
    let d = doc();
    let text = d.to_string();
    for r in text.split("\"$ref\":\"#/").skip(1) {
        let pointer = format!("/{}", r.split('"').next().unwrap());
        assert!(d.pointer(&pointer).is_some(), "dangling $ref {pointer}");
    }
    let mut ids = BTreeSet::new();
    for item in d["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_string()), "operationId {id} repeats");
        }
    }
}

#[test]
fn guarded_routes_declare_the_bearer_scheme_and_its_refusals() {
    let d = doc();
    let kv_put = &d["paths"]["/v1/kv/{key}"]["put"];
    assert_eq!(kv_put["security"][0]["bearer"], serde_json::json!([]));
    for code in [
        "400", "401", "403", "404", "413", "414", "429", "431", "503",
    ] {
        assert!(
            kv_put["responses"][code].is_object(),
            "PUT /v1/kv/{{key}} lacks {code}"
        );
    }
    assert_eq!(
        d["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Probes and this document are public: no credential, no 401.
    for path in ["/health", "/ready", "/openapi.json", "/v1/status"] {
        let get = &d["paths"][path]["get"];
        assert!(
            get["security"].is_null() && get["responses"]["401"].is_null(),
            "{path}"
        );
    }
    // Whoami needs a credential but no role.
    let whoami = &d["paths"]["/v1/auth/whoami"]["get"]["responses"];
    assert!(whoami["401"].is_object() && whoami["403"].is_null());
}

#[test]
fn the_event_stream_is_documented_as_such() {
    let d = doc();
    let ok = &d["paths"]["/v1/events"]["get"]["responses"]["200"]["content"];
    assert!(ok["text/event-stream"].is_object(), "{ok}");
}

#[test]
fn allow_lists_the_methods_of_a_route() {
    assert_eq!(allow("/v1/kv/{*key}"), Some("GET,HEAD,PUT,DELETE"));
    assert_eq!(allow("/v1/node/drain"), Some("POST,DELETE"));
    assert_eq!(allow("/raft/append"), Some("POST"));
    assert_eq!(allow("/nowhere"), None);
    // Every registered route has one, and it names each registered method.
    for (method, path) in registered() {
        let allow = allow(&path).unwrap_or_else(|| panic!("no Allow for {path}"));
        assert!(
            allow.split(',').any(|m| m == method),
            "{method} {path}: {allow}"
        );
    }
}

#[test]
fn the_status_describes_each_peer_breaker() {
    let d = doc();
    let schemas = &d["components"]["schemas"];
    let peers = &schemas["NodeStatus"]["properties"]["peers"];
    assert_eq!(peers["items"]["$ref"], "#/components/schemas/PeerStatus");
    let peer = &schemas["PeerStatus"];
    for field in ["id", "breaker", "consecutive_failures"] {
        assert!(peer["properties"][field].is_object(), "{field}: {peer}");
    }
    let states: BTreeSet<&str> = schemas["BreakerState"]["enum"]
        .as_array()
        .expect("an enum")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(states, BTreeSet::from(["closed", "half_open", "open"]));
}
