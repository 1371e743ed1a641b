//! Issue 20, item 1: a scope covers only what it names. Access is decided on
//! the exact key, lock, topic or cache key the handler acts on, so neither
//! an unencoded `/` in a KV key nor an encoded one in a name can reach past
//! the scope, and the audit log records each refusal.

use dsync_api::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::secured::{code, Secured};

#[tokio::test(flavor = "multi_thread")]
async fn a_scope_covers_exactly_the_names_it_names_on_every_route_with_a_name() {
    let s = Secured::up(1);
    s.c.wait_leader(1).await;
    let call = |t: &str, m: Method, path: &str, body: Option<Value>| {
        let (s, t, path) = (&s, t.to_string(), path.to_string());
        async move { s.call(1, m, &path, Some(&t), body).await }
    };
    let value = || Some(json!({"value": 1}));

    // `kv:app` names the one key `app`; `app/db-password` is another key,
    // however it is written in the path.
    let app = s.token("app", Role::Write, &["kv:app"]);
    let (st, v) = call(&app, Method::PUT, "/v1/kv/app", value()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    for path in ["/v1/kv/app/db-password", "/v1/kv/app%2Fdb-password"] {
        for (m, body) in [
            (Method::PUT, value()),
            (Method::GET, None),
            (Method::DELETE, None),
        ] {
            let (st, v) = call(&app, m.clone(), path, body).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{m} {path}: {v}");
            assert_eq!(code(&v), "permission_denied");
            let msg = v["error"]["message"].as_str().unwrap_or_default();
            assert!(msg.contains("kv:app/db-password"), "{msg}");
        }
    }

    // `kv:app/config` does not reach keys below it; `kv:app/config*` does.
    let config = s.token("config", Role::Write, &["kv:app/config"]);
    for path in ["/v1/kv/app%2Fconfig/evil", "/v1/kv/app/config/evil"] {
        let (st, v) = call(&config, Method::PUT, path, value()).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{path}: {v}");
    }
    let (st, v) = call(&config, Method::PUT, "/v1/kv/app/config", value()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let below = s.token("below", Role::Write, &["kv:app/config*"]);
    let (st, v) = call(&below, Method::PUT, "/v1/kv/app/config/evil", value()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = call(&below, Method::GET, "/v1/kv/app%2Fconfig%2Fevil", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["value"], 1);

    // Locks, topics and cache keys: the scope names `x`; `x/y` (encoded,
    // the only way to put a `/` in one of these names) is outside it.
    let x = s.token("x", Role::Write, &["locks:x", "queues:x", "cache:x"]);
    let acquire = Some(json!({"owner": "o", "ttl_ms": 5000}));
    let push = Some(json!({"payload": 1}));
    let cases = [
        (Method::POST, "/v1/locks/{}/acquire", acquire.clone()),
        (Method::GET, "/v1/locks/{}", None),
        (Method::POST, "/v1/queues/{}/messages", push.clone()),
        (Method::GET, "/v1/queues/{}", None),
        (Method::PUT, "/v1/cache/{}", value()),
        (Method::GET, "/v1/cache/{}/states", None),
    ];
    for (m, shape, body) in cases {
        let inside = shape.replace("{}", "x");
        let (st, v) = call(&x, m.clone(), &inside, body.clone()).await;
        assert!(
            st.is_success() || st == StatusCode::NOT_FOUND,
            "{m} {inside}: {st} {v}"
        );
        let outside = shape.replace("{}", "x%2Fy");
        let (st, v) = call(&x, m.clone(), &outside, body).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{m} {outside}: {v}");
    }

    // Every refusal is in the audit log, naming the principal and the path.
    let log = s.c.cluster_dir().join("node-1/audit.log");
    let text = dsync_tests::wait_until(
        std::time::Duration::from_secs(10),
        "audit lines for the refusals",
        || async {
            let t = std::fs::read_to_string(&log).unwrap_or_default();
            t.contains("/v1/cache/x%2Fy/states").then_some(t)
        },
    )
    .await;
    let denied: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["outcome"] == "denied" && v["status"] == 403)
        .collect();
    for (who, path) in [
        ("app", "/v1/kv/app/db-password"),
        ("app", "/v1/kv/app%2Fdb-password"),
        ("config", "/v1/kv/app%2Fconfig/evil"),
        ("x", "/v1/locks/x%2Fy/acquire"),
    ] {
        assert!(
            denied
                .iter()
                .any(|v| v["principal"] == who && v["path"] == path),
            "no denied audit record for {who} {path}"
        );
    }
}
