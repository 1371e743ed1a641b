//! Issue 6, server side: `GET /v1/events` streams role changes, grants,
//! refused deadlocks, force-releases and dead letters from any node, and an
//! operator's force-release evicts a holder through Raft (its token is then
//! stale everywhere).

use std::time::Duration;

use dsync_api::events::{Event, EventStream};
use dsync_api::locks::{AcquireRequest, LockMode};
use dsync_api::queue::{ConsumeRequest, NewMessage, TopicSettings};
use dsync_api::types::Role;
use dsync_api::ErrorCode;
use dsync_tests::Cluster;
use serde_json::json;

fn acquire(owner: &str, wait_ms: u64) -> AcquireRequest {
    AcquireRequest {
        owner: owner.into(),
        mode: LockMode::Exclusive,
        ttl_ms: 60_000,
        wait_ms,
    }
}

/// The next event matching `want`, skipping others, within 10 s.
async fn next_matching(s: &mut EventStream, what: &str, want: impl Fn(&Event) -> bool) -> Event {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.next().await {
                Some(Ok(e)) if want(&e) => return e,
                Some(Ok(_)) => {}
                other => panic!("event stream ended while waiting for {what}: {other:?}"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {what} event within 10 s"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_followers_stream_carries_lock_queue_and_role_events() {
    let c = Cluster::up(3, &[]);
    let leader = c.wait_leader(3).await;
    let follower = c
        .nodes()
        .into_iter()
        .find(|n| n.id != leader)
        .expect("follower");
    let client = c.client();
    let mut events = client.events(&follower.addr).await.expect("subscribe");

    // The stream opens with the node's own role.
    let first = next_matching(&mut events, "role", |e| matches!(e, Event::Role { .. })).await;
    assert_eq!(
        first,
        Event::Role {
            node: follower.id,
            role: Role::Follower,
            term: c.statuses().await[0].term,
            leader: Some(leader),
        }
    );

    let x = client
        .lock_acquire("x", &acquire("a", 0))
        .await
        .expect("a takes x");
    next_matching(&mut events, "grant of x to a", |e| {
        matches!(e, Event::LockGranted { lock, owner, token, .. }
            if lock == "x" && owner == "a" && *token == x.token)
    })
    .await;

    client
        .lock_acquire("y", &acquire("b", 0))
        .await
        .expect("b takes y");
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move { client.lock_acquire("y", &acquire("a", 30_000)).await })
    };
    dsync_tests::wait_until(Duration::from_secs(10), "a to queue for y", || async {
        let g = client.lock_graph().await.ok()?;
        g.edges.iter().any(|e| e.waiter == "a").then_some(())
    })
    .await;
    let refused = client.lock_acquire("x", &acquire("b", 10_000)).await;
    assert_eq!(
        refused.err().and_then(|e| e.code()),
        Some(ErrorCode::Deadlock)
    );
    let deadlock = next_matching(&mut events, "deadlock", |e| {
        matches!(e, Event::Deadlock { .. })
    })
    .await;
    assert!(
        matches!(&deadlock, Event::Deadlock { lock, cycle, .. } if lock == "x" && cycle == &["b", "a"]),
        "{deadlock:?}"
    );

    // Force-release y: b is evicted, the queued a gets it.
    let out = c.dsync_ok(&["lock", "release", "y", "--force", "--output", "json"]);
    let resp: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(resp["released"], json!(["b"]));
    next_matching(&mut events, "force-release of y", |e| {
        matches!(e, Event::LockForceReleased { lock, owners, .. } if lock == "y" && owners == &["b"])
    })
    .await;
    let granted = waiter.await.expect("waiter task").expect("a gets y");
    assert_eq!(granted.owner, "a");
    // b's old grant is fenced out on the store itself.
    let y_of_b = granted.holders.iter().all(|h| h.owner != "b");
    assert!(y_of_b, "{granted:?}");
    let stale = client
        .kv_put_fenced("guarded", json!(1), None, "y", granted.token - 1)
        .await;
    assert_eq!(
        stale.err().and_then(|e| e.code()),
        Some(ErrorCode::StaleToken)
    );
    client
        .kv_put_fenced("guarded", json!(2), None, "y", granted.token)
        .await
        .expect("the new holder's fenced write");

    // A message past its only attempt is dead-lettered.
    client
        .queue_settings(
            "jobs",
            &TopicSettings {
                max_attempts: Some(1),
                ..Default::default()
            },
        )
        .await
        .expect("settings");
    let msg = NewMessage {
        payload: json!("work"),
        delay_ms: None,
        dedup_id: None,
    };
    let id = client
        .queue_push("jobs", vec![msg])
        .await
        .expect("push")
        .ids[0];
    let consume = ConsumeRequest {
        consumer: "c".into(),
        max: 1,
        visibility_ms: Some(100),
        wait_ms: 0,
    };
    let got = client
        .queue_consume("jobs", &consume)
        .await
        .expect("consume");
    assert_eq!(got.messages.len(), 1);
    let dead = next_matching(&mut events, "dead letter", |e| {
        matches!(e, Event::DeadLetter { .. })
    })
    .await;
    assert!(
        matches!(&dead, Event::DeadLetter { topic, id: i, attempt: 1, .. } if topic == "jobs" && *i == id),
        "{dead:?}"
    );

    // Leadership moving shows up as a role change of the followed node.
    c.kill9(leader);
    next_matching(
        &mut events,
        "a new leader",
        |e| matches!(e, Event::Role { leader: Some(l), .. } if *l != leader),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn force_release_of_a_free_lock_and_of_bad_input() {
    let c = Cluster::up(1, &[]);
    c.wait_leader(1).await;
    let client = c.client();
    let none = client.lock_force_release("free").await.expect("free lock");
    assert!(none.released.is_empty());
    let long = "n".repeat(300);
    let bad = client.lock_force_release(&long).await;
    assert_eq!(
        bad.err().and_then(|e| e.code()),
        Some(ErrorCode::InvalidArgument)
    );
    let out = c.dsync(&["lock", "release", "free", "--force", "--owner", "o"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--force with --owner is a usage error"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cache_write_publishes_the_invalidation_of_the_other_copies() {
    let c = Cluster::up(3, &[]);
    let leader = c.wait_leader(3).await;
    let mut events = c
        .client()
        .events(&c.node(leader).addr)
        .await
        .expect("subscribe");
    // Two readers hold the line in S; a write on the third invalidates both.
    let readers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let writer = c.client_for(leader);
    writer.cache_put("k", json!(1)).await.expect("first write");
    for id in &readers {
        c.client_for(*id).cache_get("k").await.expect("read");
    }
    writer.cache_put("k", json!(2)).await.expect("second write");
    let e = next_matching(&mut events, "cache invalidation", |e| {
        matches!(e, Event::CacheInvalidated { .. })
    })
    .await;
    let Event::CacheInvalidated {
        key,
        writer: w,
        mut nodes,
        ..
    } = e
    else {
        unreachable!("matched above")
    };
    nodes.sort_unstable();
    assert_eq!((key.as_str(), w, nodes), ("k", leader, readers));
}
