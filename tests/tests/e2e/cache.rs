//! Issue 5, acceptance 2 and 4: the MESI cache on a real 3-node cluster.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dsync_api::cache::LineState::{self, E, I, M, S};
use dsync_api::events::Event;
use dsync_api::locks::{AcquireRequest, LockMode};
use dsync_api::Client;
use dsync_tests::{fetch_metrics, metric, wait_until, Cluster};
use nix::sys::signal::Signal;
use serde_json::json;

async fn states(c: &Client, key: &str) -> BTreeMap<u64, LineState> {
    c.cache_states(key)
        .await
        .expect("states")
        .nodes
        .into_iter()
        .map(|n| (n.node, n.state))
        .collect()
}

async fn remote_requests(cluster: &Cluster, id: u64) -> f64 {
    let text = fetch_metrics(&cluster.node(id).addr).await;
    metric(&text, "dsync_cache_remote_requests_total").expect("remote requests metric")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesi_state_sequence_and_local_hits_without_network() {
    // Long leases: nothing expires or renews while the test looks.
    let cluster = Cluster::up(3, &[("DSYNC_CACHE_LEASE_MS", "8000")]);
    cluster.wait_leader(3).await;
    let (a, b, c) = (
        cluster.client_for(1),
        cluster.client_for(2),
        cluster.client_for(3),
    );
    let key = "user/42";
    cluster
        .client()
        .kv_put(key, json!("v1"), None)
        .await
        .expect("seed");
    // A new directory completes nothing for one lease; wait that out so the
    // lines below start with their whole lease (no renewal traffic).
    c.cache_put("warm-up", json!(0)).await.expect("warm-up");

    let r = a.cache_get(key).await.expect("read at A");
    assert_eq!((r.value.clone(), r.state, r.hit), (json!("v1"), E, false));
    assert_eq!(
        states(&a, key).await,
        BTreeMap::from([(1, E), (2, I), (3, I)])
    );

    let r = b.cache_get(key).await.expect("read at B");
    assert_eq!(r.state, S);
    assert_eq!(
        states(&b, key).await,
        BTreeMap::from([(1, S), (2, S), (3, I)])
    );

    let leader = cluster.wait_leader(3).await;
    let mut events = cluster
        .client()
        .events(&cluster.node(leader).addr)
        .await
        .expect("subscribe to the leader's events");
    let w = c.cache_put(key, json!("v2")).await.expect("write at C");
    let invalidated = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.next().await {
                Some(Ok(Event::CacheInvalidated {
                    key: k,
                    writer,
                    mut nodes,
                    ..
                })) if k == key => {
                    nodes.sort();
                    return (writer, nodes);
                }
                Some(Ok(_)) => {}
                other => panic!("event stream ended: {other:?}"),
            }
        }
    })
    .await
    .expect("a cache_invalidated event");
    assert_eq!(invalidated, (3, vec![1, 2]));
    assert_eq!(w.state, M);
    assert!(w.version.unwrap() > r.version);
    assert_eq!(
        states(&c, key).await,
        BTreeMap::from([(1, I), (2, I), (3, M)])
    );

    let r = a.cache_get(key).await.expect("read at A again");
    assert_eq!((r.value.clone(), r.state), (json!("v2"), S));
    assert_eq!(
        states(&a, key).await,
        BTreeMap::from([(1, S), (2, I), (3, S)])
    );

    // A's own lines, as the dashboard reads them.
    let addr_a = cluster.node(1).addr;
    let lines: serde_json::Value = reqwest::get(format!("http://{addr_a}/v1/cache/lines"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(lines["node"], json!(1));
    let line = lines["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["key"] == json!(key))
        .expect("A lists its line");
    assert_eq!(line["state"], json!("S"));
    assert_eq!(line["version"], json!(w.version.unwrap()));
    assert!(line["lease_remaining_ms"].as_u64().unwrap() <= 8000);
    for bad in ["/v1/cache/lines?limit=0", "/v1/cache/%6Cines/states"] {
        let status = reqwest::get(format!("http://{addr_a}{bad}"))
            .await
            .unwrap()
            .status();
        assert_eq!(status, 400, "{bad}");
    }

    // Hits on A reach no other node.
    let before = (
        remote_requests(&cluster, 2).await,
        remote_requests(&cluster, 3).await,
    );
    let hits_before = a.cache_stats().await.unwrap().hits;
    for _ in 0..50 {
        let r = a.cache_get(key).await.expect("hit");
        assert!(r.hit, "{r:?}");
        assert_eq!(r.value, json!("v2"));
    }
    let after = (
        remote_requests(&cluster, 2).await,
        remote_requests(&cluster, 3).await,
    );
    assert_eq!(
        before, after,
        "a local hit sent coherence traffic to a peer"
    );
    assert_eq!(a.cache_stats().await.unwrap().hits, hits_before + 50);

    // Delete invalidates every copy.
    assert!(b.cache_delete(key).await.unwrap().deleted);
    assert_eq!(
        states(&b, key).await,
        BTreeMap::from([(1, I), (2, I), (3, I)])
    );
    let err = a.cache_get(key).await.unwrap_err();
    assert_eq!(err.code(), Some(dsync_api::ErrorCode::NotFound));
    let text = fetch_metrics(&cluster.node(1).addr).await;
    assert!(metric(&text, "dsync_cache_invalidations_received_total").unwrap() >= 2.0);
    assert!(metric(&text, "dsync_cache_hits_total").unwrap() >= 50.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_leader_stops_serving_at_lease_end() {
    const LEASE_MS: u64 = 1500;
    let cluster = Cluster::up(3, &[("DSYNC_CACHE_LEASE_MS", "1500")]);
    let leader = cluster.wait_leader(3).await;
    let others: Vec<u64> = (1..=3).filter(|&n| n != leader).collect();
    let (f, g) = (others[0], others[1]);
    let (fc, gc) = (cluster.client_for(f), cluster.client_for(g));
    let key = "cfg";
    gc.cache_put(key, json!("old")).await.expect("seed");
    // The directory is ready: F's read is a plain miss, then hits.
    let t0 = Instant::now();
    let r = fc.cache_get(key).await.expect("read at F");
    assert!(!r.hit);
    assert_ne!(r.state, I);
    let lease_end = t0 + Duration::from_millis(LEASE_MS);

    // Cut F off: stop the leader and G too, so F cannot help elect a new
    // leader (failover takes under a second) and must rely on its lease alone.
    cluster.signal(leader, Signal::SIGSTOP);
    cluster.signal(g, Signal::SIGSTOP);
    // While the lease lasts F may serve hits; after it, never.
    let mut cfg = dsync_api::ClientConfig::new(vec![cluster.node(f).addr]);
    cfg.retry_for = Duration::from_millis(1);
    cfg.request_timeout = Duration::from_millis(300);
    let quick = Client::new(cfg).expect("client");
    // Until F gets a new grant (a miss answered by a new leader's directory),
    // every hit comes from the first line.
    let (mut hits, mut regranted) = (0, false);
    while Instant::now() < lease_end + Duration::from_millis(1500) {
        let started = Instant::now();
        if let Ok(r) = quick.cache_get(key).await {
            if r.hit && !regranted {
                hits += 1;
                assert!(
                    started < lease_end,
                    "F served its line {:?} after the lease ended",
                    started - lease_end
                );
            }
            regranted |= !r.hit;
            assert_eq!(r.value, json!("old"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(hits > 0, "F never served its line while the lease lasted");
    cluster.signal(g, Signal::SIGCONT);

    // A new leader is elected without the stopped one; a write through it is
    // then seen by F (no stale read).
    wait_until(Duration::from_secs(30), "a new leader", || async {
        let st = cluster.statuses().await;
        st.iter()
            .find(|s| s.role == dsync_api::types::Role::Leader && s.id != leader)
            .map(|_| ())
    })
    .await;
    gc.cache_put(key, json!("new")).await.expect("write at G");
    let r = fc.cache_get(key).await.expect("read at F after the write");
    assert_eq!(r.value, json!("new"));
    cluster.signal(leader, Signal::SIGCONT);
    // The old leader rejoins as a follower and drops what it held.
    wait_until(Duration::from_secs(30), "old leader rejoins", || async {
        let st = cluster.statuses().await;
        (st.len() == 3).then_some(())
    })
    .await;
    let r = cluster
        .client_for(leader)
        .cache_get(key)
        .await
        .expect("read at the old leader");
    assert_eq!(r.value, json!("new"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_buffers_in_m_and_flushes_on_remote_read_and_timer() {
    let cluster = Cluster::up(
        3,
        &[
            ("DSYNC_CACHE_WRITE_POLICY", "write-back"),
            ("DSYNC_CACHE_WRITEBACK_DELAY_MS", "200"),
            ("DSYNC_CACHE_LEASE_MS", "5000"),
        ],
    );
    cluster.wait_leader(3).await;
    let (a, b) = (cluster.client_for(1), cluster.client_for(2));
    let key = "wb";
    // A new directory completes nothing for one lease; wait that out first
    // so the lines granted below start with their whole lease.
    a.cache_put("warm-up", json!(0)).await.expect("warm-up");
    let first = a.cache_put(key, json!(1)).await.expect("first write");
    assert_eq!((first.state, first.version.is_some()), (M, true));
    // The line is M: the next write stays local until flushed.
    let second = a.cache_put(key, json!(2)).await.expect("buffered write");
    assert_eq!((second.state, second.version), (M, None));
    let r = a.cache_get(key).await.unwrap();
    assert_eq!((r.value, r.hit), (json!(2), true));
    // A read elsewhere downgrades A, which flushes first.
    let r = b.cache_get(key).await.expect("remote read");
    assert_eq!(r.value, json!(2));
    assert_eq!(
        states(&b, key).await,
        BTreeMap::from([(1, S), (2, S), (3, I)])
    );
    // The timer flushes too: the KV catches up without any read.
    let third = a
        .cache_put(key, json!(3))
        .await
        .expect("write through again");
    assert!(
        third.version.is_some(),
        "S lines write through the directory"
    );
    let fourth = a.cache_put(key, json!(4)).await.expect("buffered again");
    assert_eq!(fourth.version, None);
    let kv = cluster.client();
    wait_until(Duration::from_secs(10), "the timer flush", || async {
        let v = kv
            .kv_get(key, dsync_api::types::Consistency::Linearizable)
            .await
            .ok()?;
        (v.value == json!(4)).then_some(())
    })
    .await;
}

/// Issue 20, item 4: a write or delete through `/v1/kv` (plain,
/// compare-and-set or fenced) invalidates every cached copy before it is
/// acknowledged, so no node serves the old value afterwards, though each
/// held the key with most of an 8 s lease left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_writes_invalidate_cached_copies_before_they_are_acknowledged() {
    let cluster = Cluster::up(3, &[("DSYNC_CACHE_LEASE_MS", "8000")]);
    cluster.wait_leader(3).await;
    let key = "config/flag";
    let nodes: Vec<Client> = (1..=3).map(|n| cluster.client_for(n)).collect();
    let token = nodes[0]
        .lock_acquire(
            "config-lock",
            &AcquireRequest {
                owner: "writer".into(),
                mode: LockMode::Exclusive,
                ttl_ms: 60_000,
                wait_ms: 0,
            },
        )
        .await
        .expect("lock")
        .token;
    let mut version = nodes[0]
        .kv_put(key, json!("v1"), None)
        .await
        .expect("seed")
        .version;
    for (round, value) in ["v2", "v3", "v4"].into_iter().enumerate() {
        for c in &nodes {
            c.cache_get(key).await.expect("fill the line");
        }
        for (i, c) in nodes.iter().enumerate() {
            let r = c.cache_get(key).await.expect("hit");
            assert!(r.hit, "node {} serves the key from its line", i + 1);
            assert_eq!(r.state, S);
        }
        // Through each node in turn: the leader, or a follower forwarding;
        // a plain write, a compare-and-set, a fenced write.
        let writer = &nodes[round % 3];
        let put = match round {
            0 => writer.kv_put(key, json!(value), None).await,
            1 => writer.kv_put(key, json!(value), Some(version)).await,
            _ => {
                writer
                    .kv_put_fenced(key, json!(value), None, "config-lock", token)
                    .await
            }
        };
        version = put.expect("kv put").version;
        for (i, c) in nodes.iter().enumerate() {
            let r = c.cache_get(key).await.expect("read after the kv write");
            assert_eq!(
                (r.value, r.version),
                (json!(value), version),
                "node {} after the kv write of {value}",
                i + 1
            );
        }
    }
    nodes[1].kv_delete(key, None).await.expect("kv delete");
    for (i, c) in nodes.iter().enumerate() {
        match c.cache_get(key).await {
            Err(dsync_api::client::ClientError::Api { error, .. }) => {
                assert_eq!(error.code, dsync_api::ErrorCode::NotFound, "node {}", i + 1)
            }
            other => panic!("node {} still serves a deleted key: {other:?}", i + 1),
        }
    }
}
