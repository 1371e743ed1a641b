//! Issue 9, acceptance 4: 10,000 lock waiters, slowloris connections,
//! oversized and deeply nested bodies, long polls and request rates: the node
//! refuses what is past its limits, keeps answering other clients, and its
//! memory stays bounded.

use std::sync::Arc;
use std::time::Duration;

use dsync_tests::wait_until;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::single_node::{connect_from, fresh_client, responsive, Node};

/// 10,000 waiters need as many sockets here and in the node (which inherits
/// the limit): raise the soft limit to the hard one.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(soft >= 12_000, "need 12000 file descriptors, have {soft}");
}

/// Waiters queued on `lock`.
async fn waiter_count(http: &reqwest::Client, node: &Node, lock: &str) -> usize {
    let Ok(r) = http
        .get(node.url(&format!("/v1/locks/{lock}")))
        .send()
        .await
    else {
        return usize::MAX;
    };
    let v: Value = r.json().await.unwrap_or(Value::Null);
    v["waiters"].as_array().map_or(usize::MAX, Vec::len)
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_waiters_slow_clients_and_big_bodies_leave_the_node_responsive() {
    raise_fd_limit();
    // 10,000 waiters on one lock: the default per-lock limit.
    const WAITERS: usize = 10_000;
    let node = Node::start("limits:\n  header_read_timeout_ms: 1000\n").await;
    let http = fresh_client();
    let rss_start = node.rss_kib();
    let r = http
        .post(node.url("/v1/locks/hot/acquire"))
        .json(&json!({"owner": "holder", "ttl_ms": 600000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Each waiter on its own open connection.
    let gate = Arc::new(tokio::sync::Semaphore::new(100));
    let mut tasks = Vec::with_capacity(WAITERS);
    for i in 0..WAITERS {
        let addr = node.addr.clone();
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _slot = gate.acquire().await.unwrap();
            let body = format!(r#"{{"owner":"w{i}","ttl_ms":1000,"wait_ms":300000}}"#);
            let req = format!(
                "POST /v1/locks/hot/acquire HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            // Spread over 60 addresses: one holds at most 200 connections.
            let mut s = connect_from(2 + (i % 60) as u8, &addr).await.unwrap();
            s.write_all(req.as_bytes()).await.unwrap();
            s
        }));
        if i == WAITERS / 2 {
            responsive(&node, &http, "while 10,000 waiters queue up").await;
        }
    }
    let mut streams = Vec::with_capacity(WAITERS);
    for t in tasks {
        streams.push(t.await.unwrap());
    }
    // A bound, not a speed: a busy 2-core host took over 120 s.
    wait_until(
        Duration::from_secs(300),
        "10,000 queued waiters",
        || async { (waiter_count(&http, &node, "hot").await == WAITERS).then_some(()) },
    )
    .await;
    responsive(&node, &http, "with 10,000 waiters").await;
    let rss_queued = node.rss_kib();
    // The graph lists the waits without blowing up: linear in the queue.
    let r = http.get(node.url("/v1/locks/graph")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let graph: Value = r.json().await.unwrap();
    let edges = graph["edges"].as_array().unwrap().len();
    assert!(
        (WAITERS..=3 * WAITERS).contains(&edges),
        "{edges} wait-for edges for {WAITERS} waiters"
    );

    // One more waiter is past the limit: 429 with Retry-After.
    let r = http
        .post(node.url("/v1/locks/hot/acquire"))
        .json(&json!({"owner": "late", "ttl_ms": 1000, "wait_ms": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");

    // Slowloris: connections that never finish their headers are closed.
    let mut slow = Vec::new();
    for i in 0..300 {
        // From six addresses of their own, each under the per-client cap.
        let mut s = connect_from(70 + (i % 6) as u8, &node.addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nx-slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    responsive(&node, &http, "with 300 slow clients").await;
    let closed = futures::future::join_all(slow.into_iter().map(|mut s| async move {
        // Keep dribbling a byte at a time until the node hangs up.
        for _ in 0..100 {
            if s.write_all(b"a").await.is_err() {
                return true;
            }
            let mut buf = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                // A 408 answer before closing is fine too.
                Ok(Ok(_)) => return true,
                Err(_) => {}
            }
        }
        false
    }))
    .await;
    assert!(
        closed.iter().all(|c| *c),
        "{} slow connections were never closed",
        closed.iter().filter(|c| !**c).count()
    );

    // Oversized and deeply nested bodies: 413 and 400, never a 5xx.
    let huge = format!(r#"{{"value":"{}"}}"#, "x".repeat(3 * 1024 * 1024));
    let r = fresh_client()
        .put(node.url("/v1/kv/big"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let deep = format!(
        r#"{{"value":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let r = http
        .put(node.url("/v1/kv/deep"))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    responsive(&node, &http, "after abusive bodies").await;

    let rss_peak = node.rss_kib();
    eprintln!(
        "RSS: {rss_start} KiB at start, {rss_queued} KiB with {WAITERS} waiters queued, \
         {rss_peak} KiB after the abusive clients"
    );
    assert!(
        rss_peak < 1024 * 1024,
        "RSS {rss_peak} KiB exceeds 1 GiB with {WAITERS} waiters"
    );

    // Clients that go away withdraw their requests.
    drop(streams);
    wait_until(
        Duration::from_secs(120),
        "abandoned waiters to be withdrawn",
        || async { (waiter_count(&http, &node, "hot").await == 0).then_some(()) },
    )
    .await;
    responsive(&node, &http, "after the waiters left").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn long_polls_and_request_rate_are_limited_per_client() {
    let node = Node::start(
        "limits:\n  max_long_polls_per_client: 2\n  rate_limit_per_sec: 20\n  rate_limit_burst: 20\n",
    )
    .await;
    let http = fresh_client();
    // Five long polls at once, each lasting 10 s unless refused: the first
    // two to arrive hold the client's two slots, the other three get 429.
    let polls = futures::future::join_all((0..5).map(|_| {
        http.post(node.url("/v1/queues/idle/consume"))
            .json(&json!({"consumer": "c", "max": 1, "wait_ms": 10000}))
            .timeout(Duration::from_secs(30))
            .send()
    }))
    .await;
    let mut statuses: Vec<u16> = polls
        .iter()
        .map(|r| r.as_ref().unwrap().status().as_u16())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 200, 429, 429, 429]);
    for r in polls.into_iter().map(Result::unwrap) {
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], "rate_limited");
        }
    }

    // 100 requests at once from one client: the excess gets 429 + Retry-After.
    let replies =
        futures::future::join_all((0..100).map(|_| http.get(node.url("/v1/locks")).send())).await;
    let limited: Vec<_> = replies
        .into_iter()
        .map(|r| r.unwrap())
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(limited.len() >= 50, "only {} of 100 limited", limited.len());
    for r in &limited {
        let after: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(after >= 1);
    }
    // Probes are never limited.
    for _ in 0..50 {
        let r = http.get(node.url("/health")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
}

/// At the limit a newcomer takes the place of the oldest idle connection;
/// with every connection busy it is closed unread, and slots come back as
/// the busy ones end.
#[tokio::test(flavor = "multi_thread")]
async fn connections_past_the_limit_are_closed_and_slots_come_back() {
    let node =
        Node::start("limits:\n  max_connections: 16\n  max_connections_per_client: 0\n").await;
    let http = fresh_client();
    let r = http
        .post(node.url("/v1/locks/held/acquire"))
        .json(&json!({"owner": "holder", "ttl_ms": 600000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Idle keep-alive connections: the oldest is closed for each newcomer.
    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(&node.addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "every newcomer is served"
        );
        idle.push(s);
    }
    let mut closed = 0;
    for s in &mut idle {
        let mut buf = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await
        {
            closed += 1;
        }
    }
    assert!(
        closed >= 4,
        "{closed} of 20 idle connections closed at a limit of 16"
    );
    drop(idle);

    // Busy connections (lock waiters) are never closed to make room.
    let mut busy = Vec::new();
    let mut refused = false;
    for i in 0..40 {
        let body = format!(r#"{{"owner":"w{i}","ttl_ms":1000,"wait_ms":60000}}"#);
        let req = format!(
            "POST /v1/locks/held/acquire HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut s = TcpStream::connect(&node.addr).await.unwrap();
        let _ = s.write_all(req.as_bytes()).await;
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
            // Still waiting for the lock: admitted and busy.
            Err(_) => busy.push(s),
            Ok(_) => {
                refused = true;
                break;
            }
        }
    }
    assert!(refused, "40 busy connections were all accepted");
    assert!(busy.len() <= 16, "{} connections held", busy.len());
    drop(busy);
    wait_until(
        Duration::from_secs(10),
        "a free connection slot",
        || async {
            let r = http.get(node.url("/health")).send().await.ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await;
}

/// Producers that outrun consumers are refused at `limits.max_queued_messages`
/// (429 with Retry-After) instead of growing the in-memory state until the
/// node is killed; acking frees room again.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_refuses_enqueues_until_consumers_catch_up() {
    let node = Node::start("limits:\n  max_queued_messages: 5\n").await;
    let http = fresh_client();
    let push = |topic: &'static str, n: usize| {
        let http = http.clone();
        let url = node.url(&format!("/v1/queues/{topic}/messages"));
        async move {
            let messages: Vec<Value> = (0..n).map(|i| json!({ "payload": i })).collect();
            http.post(url)
                .json(&json!({ "messages": messages }))
                .send()
                .await
                .unwrap()
        }
    };

    assert_eq!(push("jobs", 3).await.status(), StatusCode::CREATED);
    // The limit counts every topic, and a batch is taken whole or not at all.
    let refused = push("other", 3).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(push("other", 2).await.status(), StatusCode::CREATED);
    assert_eq!(
        push("jobs", 1).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    // In-flight messages still count; acked ones don't.
    let consumed: Value = http
        .post(node.url("/v1/queues/jobs/consume"))
        .json(&json!({ "consumer": "c1", "max": 2 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let receipts: Vec<Value> = consumed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["receipt"].clone())
        .collect();
    assert_eq!(receipts.len(), 2, "{consumed}");
    assert_eq!(
        push("jobs", 1).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let acked = http
        .post(node.url("/v1/queues/jobs/ack"))
        .json(&json!({ "receipts": receipts }))
        .send()
        .await
        .unwrap();
    assert_eq!(acked.status(), StatusCode::OK);
    assert_eq!(push("jobs", 2).await.status(), StatusCode::CREATED);
    assert_eq!(
        push("jobs", 1).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}
