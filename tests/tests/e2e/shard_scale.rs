//! Issue 17: `cluster scale` on a cluster with queue groups. A node added
//! hosts no group (moving replicas is issue 18) and can leave again; a node
//! holding a replica is not removed, and the refusal changes nothing.

use std::collections::BTreeSet;

use dsync_api::queue::NewMessage;
use dsync_api::types::MemberKind;
use dsync_tests::shard_workload::view;
use dsync_tests::Cluster;
use serde_json::json;

async fn voters(c: &Cluster) -> BTreeSet<u64> {
    let s = c.client().status().await.expect("status");
    s.members
        .iter()
        .filter(|m| m.kind == MemberKind::Voter)
        .map(|m| m.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn scaling_a_sharded_cluster_never_drops_a_group_replica() {
    let c = Cluster::up_with(3, &[], &["--shards", "2"]);
    c.wait_leader(3).await;
    let client = c.client();
    let msg = |n: u64| NewMessage {
        payload: json!(n),
        delay_ms: None,
        dedup_id: None,
    };
    client.queue_push("kept", vec![msg(1)]).await.unwrap();

    c.dsync_ok(&["cluster", "scale", "--nodes", "4"]);
    c.wait_leader(4).await;
    let s = view(&c, 4).await.expect("node 4's view");
    assert_eq!(s.map.groups.len(), 2);
    assert!(
        s.map.groups.iter().all(|g| !g.replicas.contains(&4)),
        "a node added after the map holds no replica: {:?}",
        s.map
    );
    let data = c.node(4).data_dir.join("groups");
    assert!(!data.exists(), "node 4 opened groups: {}", data.display());
    // It serves the queue by forwarding, like any node.
    c.client_for(4)
        .queue_push("kept", vec![msg(2)])
        .await
        .unwrap();

    // Node 4 holds no replica: it may leave.
    c.dsync_ok(&["cluster", "scale", "--nodes", "3"]);
    assert_eq!(voters(&c).await, BTreeSet::from([1, 2, 3]));

    // Every remaining node holds replicas: shrinking is refused, and
    // nothing is stopped or removed.
    let out = c.dsync(&["cluster", "scale", "--nodes", "2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "scale to 2 succeeded: {err}");
    assert!(err.contains("replicas of queue groups"), "{err}");
    assert_eq!(voters(&c).await, BTreeSet::from([1, 2, 3]));
    c.wait_leader(3).await;
    let stats = client.queue_stats("kept").await.unwrap();
    assert_eq!(stats.ready, 2);
}
