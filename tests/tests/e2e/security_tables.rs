//! Issue 20, item 3: every table keyed by what a client chooses is bounded.
//! Made-up HTTP methods share one metric label (the request metrics are
//! recorded before auth), and one client cannot hold all of a node's event
//! streams.

use std::time::Duration;

use dsync_tests::fetch_metrics;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::single_node::{connect_from, Node};

/// Request-latency series on the node.
fn request_series(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|l| l.starts_with("dsync_http_request_duration_seconds_count{"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn made_up_methods_do_not_grow_the_metrics() {
    let node = Node::start("").await;
    let before = request_series(&fetch_metrics(&node.addr).await);
    // One connection, 2,000 requests each with a method of its own.
    let mut s = connect_from(2, &node.addr).await.unwrap();
    let mut answers = Vec::new();
    for i in 0..2_000 {
        let req = format!("M{i} /health HTTP/1.1\r\nhost: x\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
    }
    s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut answers))
        .await
        .expect("answers to 2,001 requests")
        .unwrap();
    let text = String::from_utf8_lossy(&answers);
    assert_eq!(
        text.matches("HTTP/1.1 405").count(),
        2_000,
        "every made-up method is a 405"
    );
    let metrics = fetch_metrics(&node.addr).await;
    let after = request_series(&metrics);
    assert!(
        after <= before + 3,
        "{before} request series before, {after} after 2,000 made-up methods"
    );
    assert!(
        metrics.contains(r#"method="other""#),
        "no method=\"other\" series"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_client_cannot_hold_every_event_stream() {
    let node = Node::start("limits:\n  max_event_streams_per_client: 3\n").await;
    let http = reqwest::Client::new();
    let mut open = Vec::new();
    for _ in 0..3 {
        let r = http.get(node.url("/v1/events")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        open.push(r);
    }
    let r = http.get(node.url("/v1/events")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    // Another client still gets one; a closed stream frees its place.
    let mut other = connect_from(3, &node.addr).await.unwrap();
    other
        .write_all(b"GET /v1/events HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), other.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    drop(open.pop());
    dsync_tests::wait_until(Duration::from_secs(10), "a freed stream", || async {
        let r = http.get(node.url("/v1/events")).send().await.ok()?;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
}

/// The replicated tables whose names clients choose (KV and cache keys,
/// locks, topics) refuse a new name past their limit with 429, and keep
/// serving the names they have.
#[tokio::test(flavor = "multi_thread")]
async fn kv_keys_locks_and_topics_are_capped_for_new_names_only() {
    let node = Node::start("limits:\n  max_kv_keys: 3\n  max_locks: 2\n  max_topics: 2\n").await;
    let http = reqwest::Client::new();
    let send = |m: reqwest::Method, path: &str, body: serde_json::Value| {
        let req = http.request(m, node.url(path)).json(&body);
        async move {
            let r = req.send().await.unwrap();
            let st = r.status();
            (st, r.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    use reqwest::Method;
    let v = serde_json::json!({"value": 1});
    for k in ["k1", "k2", "k3"] {
        let (st, b) = send(Method::PUT, &format!("/v1/kv/{k}"), v.clone()).await;
        assert_eq!(st, StatusCode::OK, "{k}: {b}");
    }
    let (st, b) = send(Method::PUT, "/v1/kv/k4", v.clone()).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limits.max_kv_keys"),
        "{b}"
    );
    let (st, _) = send(Method::PUT, "/v1/cache/c1", v.clone()).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "a cache key is a KV key");
    let (st, b) = send(Method::PUT, "/v1/kv/k1", serde_json::json!({"value": 2})).await;
    assert_eq!(st, StatusCode::OK, "an existing key: {b}");
    let (st, _) = send(Method::DELETE, "/v1/kv/k2", serde_json::Value::Null).await;
    assert_eq!(st, StatusCode::OK);
    let (st, b) = send(Method::PUT, "/v1/kv/k4", v.clone()).await;
    assert_eq!(st, StatusCode::OK, "room again after a delete: {b}");

    let acquire = |owner: &str| serde_json::json!({"owner": owner, "ttl_ms": 60000});
    let mut tokens = Vec::new();
    for l in ["a", "b"] {
        let (st, b) = send(
            Method::POST,
            &format!("/v1/locks/{l}/acquire"),
            acquire("o"),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{l}: {b}");
        tokens.push(b["token"].as_u64().unwrap());
    }
    let (st, b) = send(Method::POST, "/v1/locks/c/acquire", acquire("o")).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{b}");
    let (st, b) = send(Method::POST, "/v1/locks/a/acquire", acquire("o")).await;
    assert_eq!(st, StatusCode::OK, "re-acquiring a held lock: {b}");
    let release = serde_json::json!({"owner": "o", "token": tokens[0]});
    let (st, b) = send(Method::POST, "/v1/locks/a/release", release).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) = send(Method::POST, "/v1/locks/c/acquire", acquire("o")).await;
    assert_eq!(st, StatusCode::OK, "room again after a release: {b}");

    let msg = serde_json::json!({"payload": 1});
    for t in ["t1", "t2"] {
        let (st, b) = send(
            Method::POST,
            &format!("/v1/queues/{t}/messages"),
            msg.clone(),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{t}: {b}");
    }
    let (st, b) = send(Method::POST, "/v1/queues/t3/messages", msg.clone()).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{b}");
    let (st, b) = send(
        Method::PUT,
        "/v1/queues/t3",
        serde_json::json!({"max_attempts": 3}),
    )
    .await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{b}");
    let (st, b) = send(Method::POST, "/v1/queues/t1/messages", msg).await;
    assert_eq!(st, StatusCode::CREATED, "an existing topic: {b}");
}
