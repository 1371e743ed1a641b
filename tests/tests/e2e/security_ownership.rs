//! Issue 9: lock grants and queue receipts belong to the principal that got
//! them, and the audit log names who did what without leaking secrets.

use dsync_api::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::secured::{code, Secured};

#[tokio::test(flavor = "multi_thread")]
async fn grants_and_receipts_are_bound_to_their_principal() {
    let s = Secured::up(1);
    let alice = s.token("alice", Role::Write, &[]);
    let bob = s.token("bob", Role::Write, &[]);
    let post = |t: &str, path: &str, body: Value| {
        let t = t.to_string();
        let path = path.to_string();
        let s = &s;
        async move { s.call(1, Method::POST, &path, Some(&t), Some(body)).await }
    };

    let (st, g) = post(
        &alice,
        "/v1/locks/l/acquire",
        json!({"owner": "w", "ttl_ms": 60000}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{g}");
    assert_eq!(g["owner"], "alice:w");
    let token = g["token"].as_u64().unwrap();
    for owner in ["w", "alice:w"] {
        for verb in ["release", "keepalive"] {
            let (st, v) = post(
                &bob,
                &format!("/v1/locks/l/{verb}"),
                json!({"owner": owner, "token": token}),
            )
            .await;
            assert_eq!(st, StatusCode::FORBIDDEN, "bob {verb} as {owner}: {v}");
            assert_eq!(code(&v), "permission_denied");
        }
    }
    // Bob's own owner of the same name is a different owner.
    let (st, v) = post(
        &bob,
        "/v1/locks/l/acquire",
        json!({"owner": "w", "ttl_ms": 60000}),
    )
    .await;
    assert_eq!(code(&v), "lock_busy", "{st} {v}");
    let (st, v) = post(
        &alice,
        "/v1/locks/l/keepalive",
        json!({"owner": "w", "token": token}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = post(
        &alice,
        "/v1/locks/l/release",
        json!({"owner": "alice:w", "token": token}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    let payload = "secret-payload-never-audited";
    let (st, _) = post(&alice, "/v1/queues/q/messages", json!({"payload": payload})).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, v) = post(
        &alice,
        "/v1/queues/q/consume",
        json!({"consumer": "c", "max": 1, "wait_ms": 0}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let receipt = v["messages"][0]["receipt"].as_str().unwrap().to_string();
    for verb in ["ack", "nack", "extend"] {
        // Each verb takes only its own fields (`visibility_ms` is extend's).
        let body = if verb == "extend" {
            json!({"receipts": [receipt], "visibility_ms": 1000})
        } else {
            json!({"receipts": [receipt]})
        };
        let (st, v) = post(&bob, &format!("/v1/queues/q/{verb}"), body).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "bob {verb}: {v}");
    }
    let (base, _) = receipt.rsplit_once('.').unwrap();
    for forged in [base.to_string(), format!("{base}.0000000000000000")] {
        let (st, v) = post(&alice, "/v1/queues/q/ack", json!({"receipts": [forged]})).await;
        assert!(
            st == StatusCode::FORBIDDEN || st == StatusCode::BAD_REQUEST,
            "{forged}: {st} {v}"
        );
    }
    let (st, v) = post(&alice, "/v1/queues/q/ack", json!({"receipts": [receipt]})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["count"], 1);

    // The audit log names who did what, never tokens or payloads.
    let log = s.c.cluster_dir().join("node-1/audit.log");
    let text = dsync_tests::wait_until(
        std::time::Duration::from_secs(10),
        "audit lines",
        || async {
            let t = std::fs::read_to_string(&log).unwrap_or_default();
            t.contains("/v1/queues/q/ack").then_some(t)
        },
    )
    .await;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("JSON line");
        assert!(v["principal"].is_string() && v["status"].is_u64() && v["outcome"].is_string());
    }
    assert!(text.contains(r#""principal":"bob""#) && text.contains(r#""outcome":"denied""#));
    assert!(text.contains(r#""principal":"alice""#) && text.contains(r#""outcome":"ok""#));
    for secret in [alice.as_str(), bob.as_str(), payload, s.secret.as_str()] {
        assert!(!text.contains(secret), "audit log leaks {secret}");
    }
}
