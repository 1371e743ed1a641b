//! Issue 2, acceptance 5: bad input gets the documented 4xx JSON error and
//! the node keeps serving.

use dsync_api::ErrorBody;
use dsync_tests::Cluster;
use serde_json::json;

async fn expect_error(resp: reqwest::Response, status: u16, code: &str) {
    assert_eq!(resp.status().as_u16(), status);
    for h in ["x-dsync-node", "x-dsync-leader", "x-dsync-term"] {
        assert!(resp.headers().contains_key(h), "missing header {h}");
    }
    let text = resp.text().await.unwrap();
    let body: ErrorBody =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not a JSON error ({e}): {text}"));
    assert_eq!(body.error.code.as_str(), code, "{text}");
    assert!(!body.error.message.is_empty());
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
    // A peer route with a garbage body is refused without harm.
    let resp = http
        .post(format!("{base}/raft/append"))
        .body("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);

    // Still serving.
    let ok = c
        .client()
        .kv_put("after", json!("fine"), None)
        .await
        .unwrap();
    assert!(ok.version > v);
}
