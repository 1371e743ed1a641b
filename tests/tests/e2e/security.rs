//! Issue 9: authentication, roles and scopes on every route group, expired
//! and forged tokens and peer isolation of `/raft/*`, on clusters started
//! with `cluster up --auth token`.

use dsync_api::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::secured::{code, sign, Secured};

/// (method, path, body, least role) for every route group.
fn route_groups() -> Vec<(Method, &'static str, Option<Value>, Role)> {
    let acquire = json!({"owner": "o", "ttl_ms": 5000});
    vec![
        (Method::GET, "/metrics", None, Role::Read),
        (Method::GET, "/v1/locks", None, Role::Read),
        (Method::GET, "/v1/locks/graph", None, Role::Read),
        (Method::GET, "/v1/locks/a", None, Role::Read),
        (
            Method::POST,
            "/v1/locks/a/acquire",
            Some(acquire),
            Role::Write,
        ),
        (Method::GET, "/v1/queues", None, Role::Read),
        (
            Method::POST,
            "/v1/queues/t/messages",
            Some(json!({"payload": 1})),
            Role::Write,
        ),
        (Method::GET, "/v1/kv?prefix=", None, Role::Read),
        (
            Method::PUT,
            "/v1/kv/k",
            Some(json!({"value": 1})),
            Role::Write,
        ),
        (Method::GET, "/v1/cache", None, Role::Read),
        (
            Method::PUT,
            "/v1/cache/k",
            Some(json!({"value": 1})),
            Role::Write,
        ),
        (Method::GET, "/v1/events", None, Role::Read),
        // Admin routes get bodies they refuse, so passing the guard changes nothing.
        (
            Method::POST,
            "/v1/cluster/members",
            Some(json!({})),
            Role::Admin,
        ),
        (Method::GET, "/v1/cluster/backup", None, Role::Admin),
        (
            Method::POST,
            "/v1/cluster/leader/transfer",
            Some(json!({"to": "x"})),
            Role::Admin,
        ),
        // GET: answered 405 past the guard, so nothing actually drains.
        (Method::GET, "/v1/node/drain", None, Role::Admin),
        (
            Method::POST,
            "/v1/locks/a/force-release",
            Some(json!({"x": 1})),
            Role::Admin,
        ),
        (
            Method::POST,
            "/v1/auth/tokens",
            Some(json!({})),
            Role::Admin,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_scopes_expiry_forgery_and_peer_isolation() {
    let s = Secured::up(3);
    let leader = s.c.wait_leader(3).await;
    let follower = (1..=3).find(|i| *i != leader).unwrap();

    // Each role on every route group, sent to a follower (writes forward).
    for role in [Role::Read, Role::Write, Role::Admin] {
        let t = s.token("svc", role, &[]);
        for (m, path, body, least) in route_groups() {
            let (st, v) = s.call(follower, m.clone(), path, Some(&t), body).await;
            if role < least {
                assert_eq!(st, StatusCode::FORBIDDEN, "{role} {m} {path}: {v}");
                assert_eq!(code(&v), "permission_denied");
            } else {
                assert!(
                    st != StatusCode::FORBIDDEN && st != StatusCode::UNAUTHORIZED,
                    "{role} {m} {path} refused: {st} {v}"
                );
                assert!(!st.is_server_error(), "{role} {m} {path}: {st} {v}");
            }
        }
    }

    // No, expired and forged credentials: 401 on every group; probes stay open.
    let expired = {
        let now = dsync_server::auth::now_secs();
        let claims = dsync_api::auth::Claims {
            sub: "svc".into(),
            role: Role::Admin,
            scopes: vec![],
            exp: now - 3600,
            iat: now - 7200,
        };
        sign_claims(s.secret.as_bytes(), &claims)
    };
    let forged = sign(
        b"not-the-cluster-jwt-secret-at-all-000",
        "svc",
        Role::Admin,
        &[],
    );
    for (m, path, body, _) in route_groups() {
        for t in [
            None,
            Some(expired.as_str()),
            Some(forged.as_str()),
            Some("garbage"),
        ] {
            let (st, v) = s.call(follower, m.clone(), path, t, body.clone()).await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{m} {path} with {t:?}: {v}");
            assert_eq!(code(&v), "unauthenticated");
        }
    }
    let (_, v) = s
        .call(leader, Method::GET, "/v1/locks", Some(&expired), None)
        .await;
    assert!(
        v["error"]["message"].as_str().unwrap().contains("expired"),
        "{v}"
    );
    for probe in ["/health", "/ready", "/v1/status"] {
        let (st, _) = s.call(follower, Method::GET, probe, None, None).await;
        assert!(st.is_success(), "{probe}: {st}");
    }

    // Scopes: names inside pass, names outside and unscoped listings do not.
    let billing = s.token("billing", Role::Write, &["locks:billing/*", "kv:app/*"]);
    let acquire = |name: &str| format!("/v1/locks/{}/acquire", name.replace('/', "%2F"));
    let body = json!({"owner": "o", "ttl_ms": 5000});
    let cases = [
        (Method::POST, acquire("billing/a"), Some(body.clone()), true),
        (Method::POST, acquire("hr/a"), Some(body.clone()), false),
        (Method::GET, "/v1/locks".to_string(), None, false),
        (
            Method::PUT,
            "/v1/kv/app%2Fx".to_string(),
            Some(json!({"value": 1})),
            true,
        ),
        (Method::GET, "/v1/kv?prefix=app%2F".to_string(), None, true),
        (Method::GET, "/v1/kv?prefix=".to_string(), None, false),
        (
            Method::PUT,
            "/v1/kv/other".to_string(),
            Some(json!({"value": 1})),
            false,
        ),
        (
            Method::POST,
            "/v1/queues/jobs/messages".to_string(),
            Some(json!({"payload": 1})),
            false,
        ),
        (Method::GET, "/v1/events".to_string(), None, false),
    ];
    for (m, path, body, allowed) in cases {
        let (st, v) = s
            .call(follower, m.clone(), &path, Some(&billing), body)
            .await;
        assert_eq!(
            st != StatusCode::FORBIDDEN,
            allowed,
            "scoped {m} {path}: {st} {v}"
        );
    }
    let jobs = s.token("jobs", Role::Write, &["queues:jobs.*"]);
    let (st, _) = s
        .call(
            leader,
            Method::POST,
            "/v1/queues/jobs.a/messages",
            Some(&jobs),
            Some(json!({"payload": 1})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);

    // Peer routes: even an admin token is refused, on every node and route.
    let admin = std::fs::read_to_string(s.c.cluster_dir().join("secrets/admin.token")).unwrap();
    for id in 1..=3 {
        for path in [
            "/raft/append",
            "/raft/vote",
            "/raft/snapshot",
            "/raft/forward",
            "/raft/cache/x",
        ] {
            let (st, v) = s
                .call(id, Method::POST, path, Some(admin.trim()), None)
                .await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{path} on {id}: {v}");
            let (st, _) = s.call(id, Method::POST, path, None, None).await;
            assert_eq!(
                st,
                StatusCode::UNAUTHORIZED,
                "{path} on {id} without credentials"
            );
            let resp = s
                .http
                .post(format!("http://{}{path}", s.addr(id)))
                .header(dsync_api::HEADER_CLUSTER_SECRET, s.secret.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(
                resp.status(),
                StatusCode::UNAUTHORIZED,
                "JWT secret is not the cluster secret"
            );
        }
    }
    // The cluster itself still replicates and forwards.
    let w = s.token("w", Role::Write, &[]);
    let (st, v) = s
        .call(
            follower,
            Method::PUT,
            "/v1/kv/after",
            Some(&w),
            Some(json!({"value": 2})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // The CLI finds the local admin token by itself; whoami names the principal.
    let out = s.c.dsync_ok(&["auth", "whoami", "-o", "json"]);
    let me: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(me["subject"], "admin");
    assert_eq!(me["role"], "admin");
    let out = s.c.dsync_ok(&[
        "auth",
        "token",
        "create",
        "--subject",
        "cli",
        "--role",
        "write",
        "--scope",
        "locks:x/*",
    ]);
    let t = String::from_utf8(out.stdout).unwrap();
    let (st, v) = s
        .call(leader, Method::GET, "/v1/auth/whoami", Some(t.trim()), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["subject"], "cli");
    assert_eq!(v["scopes"], json!(["locks:x/*"]));
}

fn sign_claims(secret: &[u8], claims: &dsync_api::auth::Claims) -> String {
    // The node's signer refuses past expiries; sign by hand.
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}
