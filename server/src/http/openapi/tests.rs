//! The document against the router: every route a client can call is
//! described, nothing described is missing, and every reference resolves.

use std::collections::BTreeSet;

use super::*;

fn doc() -> serde_json::Value {
    serde_json::from_str(document()).expect("the document is JSON")
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

/// The table the guard reads and the document's paths come from the same
/// registrations; this checks the document names them as OpenAPI does.
#[test]
fn every_client_route_is_documented_and_nothing_else() {
    let registered: BTreeSet<(String, String)> = route::table()
        .iter()
        .map(|(path, method, _)| (method.to_string(), path.replace("{*", "{")))
        .collect();
    assert!(registered.contains(&("PUT".into(), "/v1/kv/{key}".into())));
    assert_eq!(registered, documented());
    assert!(documented().iter().all(|(_, p)| !p.starts_with("/raft")));
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
    let allow = |t: &str| allow(t).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        allow("/v1/kv/{*key}").as_deref(),
        Some("GET,HEAD,PUT,DELETE")
    );
    assert_eq!(allow("/v1/node/drain").as_deref(), Some("POST,DELETE"));
    assert_eq!(allow("/raft/append").as_deref(), Some("POST"));
    assert_eq!(allow("/nowhere"), None);
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
