//! Issue 17, operator view: `GET /v1/shards`, `x-dsync-group` on queue
//! routes, `dsync shard list|locate` and the GROUP of `dsync queue stats`,
//! on a cluster of this release (the control group holds every topic).

use dsync_api::queue::NewMessage;
use dsync_api::shards::{ShardsStatus, HEADER_GROUP};
use dsync_tests::Cluster;
use serde_json::json;

fn messages(n: usize) -> Vec<NewMessage> {
    (0..n)
        .map(|i| NewMessage {
            payload: json!({ "n": i }),
            delay_ms: None,
            dedup_id: None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_show_the_groups_replicas_and_where_each_topic_is() {
    let cluster = Cluster::up(3, &[]);
    let leader = cluster.wait_leader(3).await;
    let client = cluster.client();
    for (i, topic) in ["orders", "jobs", "mail"].into_iter().enumerate() {
        client
            .queue_push(topic, messages(i + 1))
            .await
            .expect("push");
    }

    let s = cluster.client_for(leader).shards().await.expect("shards");
    assert_eq!(s.node, leader);
    assert!(s.map.groups.is_empty(), "no queue groups in this release");
    assert_eq!(s.groups.len(), 1);
    let g = &s.groups[0];
    assert_eq!((g.id, g.holds_topics, g.leader), (0, true, Some(leader)));
    assert_eq!(
        (g.topics, g.depth),
        (3, 6),
        "three topics, 1 + 2 + 3 messages"
    );
    assert_eq!(g.replicas.len(), 3);
    for r in &g.replicas {
        assert_eq!(r.leader, r.id == leader);
        assert!(
            r.matched_index.is_some(),
            "the leader knows every match index"
        );
    }
    assert_eq!(s.locate("orders").map(|g| g.id), Some(0));

    // Every queue route names the group; other routes do not.
    let http = reqwest::Client::new();
    let base = format!("http://{}", cluster.node(leader).addr);
    let r = http
        .get(format!("{base}/v1/queues/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get(HEADER_GROUP).unwrap(), "0");
    let r = http.get(format!("{base}/v1/queues")).send().await.unwrap();
    assert!(r.headers().get(HEADER_GROUP).is_none());
    // A method the route does not take is answered before any group would.
    let r = http
        .patch(format!("{base}/v1/queues/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().get(HEADER_GROUP).is_none());
    let r = http.get(format!("{base}/v1/status")).send().await.unwrap();
    assert!(r.headers().get(HEADER_GROUP).is_none());

    let out = cluster.dsync_ok(&["shard", "locate", "orders"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("topic \"orders\" is in group 0")
            && text.contains(&format!("leader {leader}")),
        "{text}"
    );
    let out = cluster.dsync_ok(&["shard", "list", "-o", "json"]);
    let listed: ShardsStatus = serde_json::from_slice(&out.stdout).expect("shard list json");
    assert_eq!(listed.groups[0].topics, 3);
    let out = cluster.dsync_ok(&["queue", "stats"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header[..2], ["TOPIC", "GROUP"], "{text}");
    let orders = text
        .lines()
        .find(|l| l.starts_with("orders"))
        .expect("orders row");
    assert_eq!(orders.split_whitespace().nth(1), Some("0"), "{text}");
}
