//! Issue 2, acceptance 5: bad input gets the documented 4xx JSON error and
//! the node keeps serving. Issue 20, item 8: every error is JSON, those for
//! heads the HTTP parser refuses and those of the peer routes included,
//! and a body that says two things is refused naming both.

use std::time::Duration;

use dsync_api::ErrorBody;
use dsync_tests::Cluster;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::single_node::Node;

async fn expect_error(resp: reqwest::Response, status: u16, code: &str) -> ErrorBody {
    assert_eq!(resp.status().as_u16(), status);
    for h in ["x-dsync-node", "x-dsync-leader", "x-dsync-term"] {
        assert!(resp.headers().contains_key(h), "missing header {h}");
    }
    let text = resp.text().await.unwrap();
    let body: ErrorBody =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not a JSON error ({e}): {text}"));
    assert_eq!(body.error.code.as_str(), code, "{text}");
    assert!(!body.error.message.is_empty());
    body
}

/// Sends `request` on a connection of its own and reads until the node
/// closes it: everything it answered, as text.
async fn raw(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the node closes the connection after the answer")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// The status and JSON error of the last answer in `text`.
fn last_error(text: &str) -> (u16, ErrorBody) {
    let at = text.rfind("HTTP/1.1 ").expect("an HTTP answer");
    let (head, body) = text[at..].split_once("\r\n\r\n").expect("a whole answer");
    let status = head[9..12].parse().unwrap();
    let body =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not a JSON error ({e}): {text}"));
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_documented_errors_and_the_node_keeps_serving() {
    let c = Cluster::up(1, &[]);
    let base = format!("http://{}", c.node(1).addr);
    let http = reqwest::Client::new();
    let put = |path: &str| {
        http.put(format!("{base}{path}"))
            .header("content-type", "application/json")
    };

    expect_error(
        put("/v1/kv/a").body("{not json").send().await.unwrap(),
        400,
        "invalid_argument",
    )
    .await;
    expect_error(
        put("/v1/kv/a").body(r#"{"valu": 1}"#).send().await.unwrap(),
        400,
        "invalid_argument",
    )
    .await;
    let huge = format!(r#"{{"value":"{}"}}"#, "x".repeat(3 * 1024 * 1024));
    expect_error(
        // Its own connection: the server answers 413 before reading the
        // whole body and closes it, which must not break the next request.
        reqwest::Client::new()
            .put(format!("{base}/v1/kv/a"))
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await
            .unwrap(),
        413,
        "too_large",
    )
    .await;
    let long_key = "k".repeat(600);
    expect_error(
        put(&format!("/v1/kv/{long_key}"))
            .body(r#"{"value":1}"#)
            .send()
            .await
            .unwrap(),
        400,
        "invalid_argument",
    )
    .await;
    expect_error(
        put("/v1/kv/bad%0Akey")
            .body(r#"{"value":1}"#)
            .send()
            .await
            .unwrap(),
        400,
        "invalid_argument",
    )
    .await;
    expect_error(
        http.get(format!("{base}/v1/kv?limit=0"))
            .send()
            .await
            .unwrap(),
        400,
        "invalid_argument",
    )
    .await;
    expect_error(
        http.get(format!("{base}/v1/kv?consistency=sometimes"))
            .send()
            .await
            .unwrap(),
        400,
        "invalid_argument",
    )
    .await;
    expect_error(
        http.get(format!("{base}/v1/nope")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    expect_error(
        http.get(format!("{base}/v1/kv/missing"))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    expect_error(
        http.post(format!("{base}/v1/status")).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    // Compare-and-set against the wrong version is a conflict with the current one.
    let v = c
        .client()
        .kv_put("cas", json!(1), None)
        .await
        .unwrap()
        .version;
    let stale = format!(r#"{{"value":2,"if_version":{}}}"#, v + 1000);
    let resp = put("/v1/kv/cas").body(stale).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["current_version"], json!(v));
    // A peer route with a garbage body is refused without harm, in JSON.
    let e = expect_error(
        http.post(format!("{base}/raft/append"))
            .header("x-dsync-protocol", dsync_api::PROTOCOL_VERSION.to_string())
            .body("garbage")
            .send()
            .await
            .unwrap(),
        400,
        "invalid_argument",
    )
    .await;
    assert!(e.error.message.contains("bad peer message"), "{e:?}");
    expect_error(
        http.post(format!("{base}/raft/vote"))
            .body("garbage")
            .send()
            .await
            .unwrap(),
        400,
        "invalid_argument",
    )
    .await;
    expect_error(
        http.get(format!("{base}/raft/append"))
            .send()
            .await
            .unwrap(),
        405,
        "method_not_allowed",
    )
    .await;

    // A body that says two things is refused naming both, and a bad field
    // is named with its path.
    let post = |path: &str, body: serde_json::Value| http.post(format!("{base}{path}")).json(&body);
    let e = expect_error(
        post(
            "/v1/queues/jobs/messages",
            json!({"payload": 1, "messages": [{"payload": 2}]}),
        )
        .send()
        .await
        .unwrap(),
        400,
        "invalid_argument",
    )
    .await;
    let m = &e.error.message;
    assert!(m.contains("`payload`") && m.contains("`messages`"), "{m}");
    let e = expect_error(
        post(
            "/v1/queues/jobs/messages",
            json!({"messages": [{"payload": 1}, {"payload": 2, "delay_ms": "soon"}]}),
        )
        .send()
        .await
        .unwrap(),
        400,
        "invalid_argument",
    )
    .await;
    assert!(e.error.message.contains("messages[1].delay_ms"), "{e:?}");
    let e = expect_error(
        post(
            "/v1/queues/jobs/ack",
            json!({"receipts": ["r"], "delay_ms": 5}),
        )
        .send()
        .await
        .unwrap(),
        400,
        "invalid_argument",
    )
    .await;
    assert!(e.error.message.contains("`delay_ms`"), "{e:?}");
    let stats: serde_json::Value = http
        .get(format!("{base}/v1/queues"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["topics"], json!([]), "nothing was enqueued: {stats}");

    // Still serving.
    let ok = c
        .client()
        .kv_put("after", json!("fine"), None)
        .await
        .unwrap();
    assert!(ok.version > v);
}

/// Heads over the node's limits, and heads the HTTP parser itself would
/// refuse with an empty answer, get the JSON error of their code; requests
/// pipelined before a refused one are answered first.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_and_malformed_heads_get_json_errors() {
    // The parser's room: 4 x (1024 + 4096) = 20480 bytes of head.
    let node = Node::start("limits:\n  max_uri_bytes: 1024\n  max_header_bytes: 4096\n").await;
    let get = |target: &str, headers: &str| {
        format!("GET {target} HTTP/1.1\r\nconnection: close\r\n{headers}\r\n").into_bytes()
    };
    let many: String = (0..101).map(|i| format!("x-{i}: 1\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>, u16, &str, &str)> = vec![
        (
            "a long target",
            get(&format!("/v1/kv/{}", "k".repeat(1100)), ""),
            414,
            "uri_too_long",
            "limits.max_uri_bytes",
        ),
        (
            "large header fields",
            get("/health", &format!("x-big: {}\r\n", "v".repeat(5000))),
            431,
            "headers_too_large",
            "limits.max_header_bytes",
        ),
        (
            "101 header fields",
            get("/health", &many),
            431,
            "headers_too_large",
            "100",
        ),
        (
            "a head past the parser's room",
            get("/health", &format!("x-big: {}\r\n", "v".repeat(30_000))),
            431,
            "headers_too_large",
            "20480",
        ),
        (
            "a Content-Length that is no number",
            b"PUT /v1/kv/a HTTP/1.1\r\ncontent-length: abc\r\n\r\n{}".to_vec(),
            400,
            "invalid_argument",
            "Content-Length",
        ),
        (
            "two Content-Lengths that disagree",
            b"PUT /v1/kv/a HTTP/1.1\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}".to_vec(),
            400,
            "invalid_argument",
            "Content-Length",
        ),
        (
            "a Transfer-Encoding that is not chunked",
            b"PUT /v1/kv/a HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n".to_vec(),
            400,
            "invalid_argument",
            "Transfer-Encoding",
        ),
        (
            "a malformed request line",
            b"G(T /health HTTP/1.1\r\n\r\n".to_vec(),
            400,
            "invalid_argument",
            "malformed",
        ),
    ];
    for (what, request, status, code, says) in cases {
        let text = raw(&node.addr, &request).await;
        let (got, body) = last_error(&text);
        assert_eq!(got, status, "{what}: {text}");
        assert_eq!(body.error.code.as_str(), code, "{what}: {text}");
        assert!(body.error.message.contains(says), "{what}: {text}");
        assert!(text.contains("x-dsync-node: 1"), "{what}: {text}");
    }

    // Pipelined: the good requests are answered, in order, then the refusal.
    let text = raw(
        &node.addr,
        b"PUT /v1/kv/p HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"value\":1}\
          GET /v1/kv/p HTTP/1.1\r\n\r\n\
          GET /health HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
    )
    .await;
    let answers: Vec<&str> = text.matches("HTTP/1.1 ").collect();
    assert_eq!(answers.len(), 3, "{text}");
    let first = text.find("HTTP/1.1 200").unwrap();
    let second = text[first + 1..].find("HTTP/1.1 200").unwrap() + first + 1;
    assert!(text[second..].contains(r#""value":1"#), "{text}");
    let (status, body) = last_error(&text);
    assert_eq!(status, 400, "{text}");
    assert!(body.error.message.contains("Content-Length"), "{text}");

    // Still serving.
    let r = reqwest::get(node.url("/health")).await.unwrap();
    assert!(r.status().is_success());
}

/// With a cluster secret, a peer that presents it and sends garbage gets a
/// JSON 400, and one without it a JSON 401.
#[tokio::test(flavor = "multi_thread")]
async fn peer_routes_answer_json_errors_to_peers_and_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "s".repeat(40);
    let file = dir.path().join("cluster.secret");
    std::fs::write(&file, &secret).unwrap();
    let node = Node::start(&format!(
        "auth:\n  cluster_secret_file: {}\n",
        file.display()
    ))
    .await;
    let http = reqwest::Client::new();
    for path in [
        "/raft/append",
        "/raft/vote",
        "/raft/snapshot",
        "/raft/forward",
    ] {
        let e = expect_error(
            http.post(node.url(path))
                .header(dsync_api::HEADER_CLUSTER_SECRET, &secret)
                .header("x-dsync-protocol", dsync_api::PROTOCOL_VERSION.to_string())
                .body(vec![0xff; 64])
                .send()
                .await
                .unwrap(),
            400,
            "invalid_argument",
        )
        .await;
        assert!(
            e.error.message.contains("bad peer message"),
            "{path}: {e:?}"
        );
        expect_error(
            http.post(node.url(path))
                .body(vec![0xff; 64])
                .send()
                .await
                .unwrap(),
            401,
            "unauthenticated",
        )
        .await;
    }
}
