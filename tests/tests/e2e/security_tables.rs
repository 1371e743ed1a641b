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
