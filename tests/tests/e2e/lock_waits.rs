//! Issue 3, acceptance 2: deadlocks of two and three owners are refused with
//! their cycle, and a waiter whose client goes away leaves the queue.

use std::time::Duration;

use dsync_api::client::ClientError;
use dsync_api::locks::LockMode;
use dsync_api::{Client, ErrorCode};
use dsync_tests::{fetch_metrics, metric, wait_until, Cluster};
use serde_json::json;

use crate::locks::req;

async fn hold(client: &Client, lock: &str, owner: &str) {
    client
        .lock_acquire(lock, &req(owner, LockMode::Exclusive, 30_000, 0))
        .await
        .unwrap();
}

/// Starts a waiting acquire and returns once the graph shows the wait.
async fn wait_on(
    c: &Cluster,
    lock: &str,
    owner: &str,
) -> tokio::task::JoinHandle<Result<(), ClientError>> {
    let client = c.client();
    let (l, o) = (lock.to_string(), owner.to_string());
    let task = tokio::spawn(async move {
        client
            .lock_acquire(&l, &req(&o, LockMode::Exclusive, 30_000, 60_000))
            .await
            .map(|_| ())
    });
    let client = c.client();
    wait_until(
        Duration::from_secs(5),
        "the wait to show in the graph",
        || async {
            let g = client.lock_graph().await.ok()?;
            g.edges
                .iter()
                .any(|e| e.waiter == owner && e.lock == lock)
                .then_some(())
        },
    )
    .await;
    task
}

#[tokio::test(flavor = "multi_thread")]
async fn two_and_three_owner_deadlocks_are_refused_with_the_cycle() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    let client = c.client();

    hold(&client, "A1", "a").await;
    hold(&client, "A2", "b").await;
    let _a_waits = wait_on(&c, "A2", "a").await;
    let err = client
        .lock_acquire("A1", &req("b", LockMode::Exclusive, 30_000, 10_000))
        .await
        .unwrap_err();
    let ClientError::Api { status, error } = err else {
        panic!("{err}")
    };
    assert_eq!((status, error.code), (409, ErrorCode::Deadlock));
    assert_eq!(error.details["cycle"], json!(["b", "a"]));

    hold(&client, "B1", "x").await;
    hold(&client, "B2", "y").await;
    hold(&client, "B3", "z").await;
    let _x = wait_on(&c, "B2", "x").await;
    let _y = wait_on(&c, "B3", "y").await;
    let err = client
        .lock_acquire("B1", &req("z", LockMode::Exclusive, 30_000, 10_000))
        .await
        .unwrap_err();
    let ClientError::Api { error, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(error.code, ErrorCode::Deadlock);
    assert_eq!(error.details["cycle"], json!(["z", "x", "y"]));

    let graph = client.lock_graph().await.unwrap();
    let cycles: Vec<_> = graph.deadlocks.iter().map(|d| d.cycle.clone()).collect();
    assert!(cycles.contains(&vec!["b".to_string(), "a".to_string()]));
    assert!(cycles.contains(&vec!["z".to_string(), "x".to_string(), "y".to_string()]));

    // Every node's metrics show the refusals, the five held locks and the
    // three waits.
    for n in c.nodes() {
        wait_until(Duration::from_secs(5), "the lock metrics", || async {
            let text = fetch_metrics(&n.addr).await;
            let deadlocks = metric(&text, "dsync_locks_deadlocks")?;
            let held = metric(&text, "dsync_locks_held")?;
            let waiting = metric(&text, "dsync_locks_waiting")?;
            (deadlocks >= 2.0 && held == 5.0 && waiting == 3.0).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiter_whose_client_disconnects_leaves_the_queue() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    let client = c.client();
    client
        .lock_acquire("gone", &req("holder", LockMode::Exclusive, 30_000, 0))
        .await
        .unwrap();
    for node in c.nodes() {
        // A raw request whose client gives up after 300 ms (the server would wait 30 s).
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let r = http
            .post(format!("http://{}/v1/locks/gone/acquire", node.addr))
            .json(&req(
                &format!("impatient-{}", node.id),
                LockMode::Exclusive,
                30_000,
                30_000,
            ))
            .send()
            .await;
        assert!(
            r.is_err(),
            "the request should have timed out on the client side"
        );
        wait_until(
            Duration::from_secs(10),
            "the abandoned request to leave the queue",
            || async {
                let l = client.lock_get("gone").await.ok()?;
                l.waiters.is_empty().then_some(())
            },
        )
        .await;
    }
    assert_eq!(
        client.lock_get("gone").await.unwrap().holders[0].owner,
        "holder"
    );
}
