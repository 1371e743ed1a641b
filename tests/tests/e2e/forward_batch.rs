//! Issue 19: a follower forwards the client writes that queue up behind
//! its forwards in flight as one batch; each is still applied, answered
//! on its own, and invalidates the cached copies of its key first.

use std::time::{Duration, Instant};

use dsync_api::types::Consistency;
use dsync_tests::{fetch_metrics, metric, Cluster};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_through_a_follower_share_forwards_and_each_is_applied() {
    // Long leases: a stale copy would still be served if a batched write
    // skipped its invalidation.
    let cluster = Cluster::up(3, &[("DSYNC_CACHE_LEASE_MS", "8000")]);
    let leader = cluster.wait_leader(3).await;
    let mut followers = cluster.nodes().into_iter().filter(|n| n.id != leader);
    let (via, other) = (followers.next().unwrap(), followers.next().unwrap());
    let writer = cluster.client_for(via.id);
    let reader = cluster.client_for(other.id);
    let linear = cluster.client_for(leader);
    let shared = "fb/shared";
    // A new directory grants no line for one lease; this waits it out.
    reader
        .cache_put("fb/warm-up", json!(0))
        .await
        .expect("warm up");

    let deadline = Instant::now() + Duration::from_secs(60);
    for round in 0.. {
        // Distinct keys, and a quarter of the writes to one key: those
        // wait for each other's key lock on the leader, and must not
        // deadlock when they arrive in one batch.
        let keys: Vec<String> = (0..64)
            .map(|i| match i % 4 {
                0 => shared.to_string(),
                _ => format!("fb/{round}/{i}"),
            })
            .collect();
        // Every key has a copy on another node, which each write must
        // invalidate before it is answered.
        for key in &keys {
            linear.kv_put(key, json!("old"), None).await.expect("seed");
        }
        for key in &keys {
            reader.cache_get(key).await.expect("cache the key");
            assert!(reader.cache_get(key).await.expect("hit").hit, "{key}");
        }
        let writes = keys.iter().cloned().enumerate().map(|(i, key)| {
            let writer = writer.clone();
            tokio::spawn(async move {
                let put = writer.kv_put(&key, json!(i), None).await;
                (key, i, put)
            })
        });
        let mut shared_versions = vec![];
        for w in futures::future::join_all(writes).await {
            let (key, i, put) = w.unwrap();
            let put = put.unwrap_or_else(|e| panic!("put {key} through node {}: {e}", via.id));
            if key == shared {
                shared_versions.push(put.version);
                continue;
            }
            let got = reader
                .cache_get(&key)
                .await
                .expect("read through the cache");
            assert_eq!(
                (got.value, got.version),
                (json!(i), put.version),
                "node {} serves {key} as before the write",
                other.id
            );
        }
        // Each same-key write was applied on its own.
        shared_versions.sort();
        shared_versions.dedup();
        assert_eq!(shared_versions.len(), 16, "{shared_versions:?}");
        let last = linear
            .kv_get(shared, Consistency::Linearizable)
            .await
            .expect("read the shared key");
        assert_eq!(Some(&last.version), shared_versions.last());
        let cached = reader
            .cache_get(shared)
            .await
            .expect("read through the cache");
        assert_eq!(
            (cached.value, cached.version),
            (last.value, last.version),
            "node {} serves a copy the batched writes did not invalidate",
            other.id
        );

        let text = fetch_metrics(&via.addr).await;
        let forwards = metric(&text, "dsync_forward_batch_commands_count").expect("forwards");
        let writes = metric(&text, "dsync_forward_batch_commands_sum").expect("writes");
        if writes > forwards {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{writes} writes in {forwards} forwards after {round} rounds of 64 concurrent writes"
        );
    }
}
