//! Writes resent with the same `x-dsync-request-id` are applied once, through
//! any node, and every resend gets the first answer.

use dsync_api::HEADER_REQUEST_ID;
use dsync_tests::Cluster;
use serde_json::{json, Value};

struct Nodes {
    http: reqwest::Client,
    bases: Vec<String>,
}

impl Nodes {
    /// Sends `body` to `path` on node `i` (0-based) with request id `id`.
    async fn send(
        &self,
        i: usize,
        method: reqwest::Method,
        path: &str,
        id: &str,
        body: Value,
    ) -> (u16, Value) {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.bases[i]))
            .header(HEADER_REQUEST_ID, id)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON body"))
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.bases[0]))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON body")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_resent_with_its_request_id_is_applied_once_through_any_node() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    let n = Nodes {
        http: reqwest::Client::new(),
        bases: c
            .nodes()
            .iter()
            .map(|n| format!("http://{}", n.addr))
            .collect(),
    };
    let put = reqwest::Method::PUT;
    let post = reqwest::Method::POST;

    // A put resent through each node: one version, the first answer.
    let (s, first) = n
        .send(0, put.clone(), "/v1/kv/k", "put-1", json!({"value": 1}))
        .await;
    assert_eq!(s, 200, "{first}");
    for i in 0..3 {
        let again = n
            .send(i, put.clone(), "/v1/kv/k", "put-1", json!({"value": 1}))
            .await;
        assert_eq!(again, (200, first.clone()), "resent through node {i}");
    }
    let v1 = first["version"].as_u64().unwrap();
    assert_eq!(
        n.get("/v1/kv/k").await["version"],
        json!(v1),
        "applied more than once"
    );

    // A compare-and-set resent after it applied is not refused by itself.
    let cas = json!({"value": 2, "if_version": v1});
    let (s, first) = n
        .send(1, put.clone(), "/v1/kv/k", "cas-1", cas.clone())
        .await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(
        n.send(2, put.clone(), "/v1/kv/k", "cas-1", cas).await,
        (200, first)
    );

    // The same id on another body is another write.
    let (s, other) = n
        .send(0, put.clone(), "/v1/kv/k", "cas-1", json!({"value": 3}))
        .await;
    assert_eq!(s, 200, "{other}");
    assert_eq!(n.get("/v1/kv/k").await["value"], json!(3));

    // An enqueue resent: one message, the same ids.
    let msg = json!({"payload": {"n": 1}});
    let (s, ids) = n
        .send(
            0,
            post.clone(),
            "/v1/queues/t/messages",
            "enq-1",
            msg.clone(),
        )
        .await;
    assert_eq!(s, 201, "{ids}");
    assert_eq!(
        n.send(1, post.clone(), "/v1/queues/t/messages", "enq-1", msg)
            .await,
        (201, ids)
    );
    assert_eq!(n.get("/v1/queues/t").await["ready"], json!(1));

    // An ack resent keeps its count instead of calling its receipt stale.
    let consume = json!({"consumer": "c", "max": 10, "visibility_ms": 30000, "wait_ms": 0});
    let (_, got) = n
        .send(
            0,
            post.clone(),
            "/v1/queues/t/consume",
            "consume-1",
            consume,
        )
        .await;
    let receipt = got["messages"][0]["receipt"].clone();
    let ack = json!({"receipts": [receipt]});
    let (s, acked) = n
        .send(2, post.clone(), "/v1/queues/t/ack", "ack-1", ack.clone())
        .await;
    assert_eq!((s, acked["count"].clone()), (200, json!(1)), "{acked}");
    assert_eq!(
        n.send(0, post.clone(), "/v1/queues/t/ack", "ack-1", ack)
            .await,
        (200, acked)
    );

    // Every node counts the six resends once it has applied the log
    // (a follower may be an entry behind when first asked).
    for node in c.nodes() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let text = dsync_tests::fetch_metrics(&node.addr).await;
            let repeats = dsync_tests::metric(&text, "dsync_dedup_repeats").unwrap_or(0.0);
            if repeats == 6.0 {
                break;
            }
            assert!(
                repeats < 6.0 && std::time::Instant::now() < deadline,
                "node {}: {repeats} repeats, not 6",
                node.id
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    // A malformed id is refused before anything is applied.
    let (s, err) = n
        .send(0, put, "/v1/kv/bad", "has space", json!({"value": 1}))
        .await;
    assert_eq!(
        (s, err["error"]["code"].clone()),
        (400, json!("invalid_argument")),
        "{err}"
    );
    let resp = n
        .http
        .get(format!("{}/v1/kv/bad", n.bases[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
}
