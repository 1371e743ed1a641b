//! Issue 20 item 5: the leader's breaker for a follower that was killed
//! opens, the others stay closed, and it closes again once the follower is
//! back; `/metrics` and `/v1/status` both show it.

use std::time::Duration;

use dsync_api::breaker::BreakerState;
use dsync_api::types::NodeStatus;
use dsync_tests::{fetch_metrics, metric, wait_until, Cluster};

/// The leader's breaker for `peer` as its gauge and its status entry say.
async fn breaker_of(c: &Cluster, leader: u64, peer: u64) -> Option<(f64, BreakerState, u32)> {
    let addr = c.node(leader).addr;
    let text = fetch_metrics(&addr).await;
    let gauge = metric(
        &text,
        &format!("dsync_peer_breaker_state{{peer=\"{peer}\"}}"),
    )?;
    let status: NodeStatus = c.client().node_status(&addr).await.ok()?;
    let p = status.peers.iter().find(|p| p.id == peer)?;
    Some((gauge, p.breaker, p.consecutive_failures))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_follower_opens_the_leaders_breaker_and_closes_it_on_return() {
    let c = Cluster::up(3, &[]);
    let leader = c.wait_leader(3).await;
    let mut followers = (1..=3).filter(|&id| id != leader);
    let (down, up) = (followers.next().unwrap(), followers.next().unwrap());

    let closed = wait_until(
        Duration::from_secs(10),
        "every breaker of the leader closed",
        || async {
            let a = breaker_of(&c, leader, down).await?;
            let b = breaker_of(&c, leader, up).await?;
            (a.1 == BreakerState::Closed && b.1 == BreakerState::Closed).then_some((a, b))
        },
    )
    .await;
    assert_eq!((closed.0 .0, closed.1 .0), (0.0, 0.0), "{closed:?}");

    c.kill9(down);
    let (gauge, state, failures) = wait_until(
        Duration::from_secs(20),
        "the leader's breaker for the killed follower to open",
        || async {
            let b = breaker_of(&c, leader, down).await?;
            (b.1 == BreakerState::Open && b.0 == 2.0).then_some(b)
        },
    )
    .await;
    assert_eq!((gauge, state), (2.0, BreakerState::Open));
    assert!(failures >= 3, "open after {failures} failures");
    let other = breaker_of(&c, leader, up).await.expect("the live follower");
    assert_eq!(
        (other.0, other.1),
        (0.0, BreakerState::Closed),
        "the live follower's breaker: {other:?}"
    );
    // The cluster still works with the breaker open.
    c.client()
        .kv_put("breaker/while-down", serde_json::json!(1), None)
        .await
        .expect("a write with one follower down");

    c.dsync_ok(&["cluster", "up"]); // restarts the killed node from its data
    wait_until(
        Duration::from_secs(20),
        "the leader's breaker for the restarted follower to close",
        || async {
            let b = breaker_of(&c, leader, down).await?;
            (b.1 == BreakerState::Closed && b.0 == 0.0 && b.2 == 0).then_some(())
        },
    )
    .await;
    assert_eq!(c.wait_leader(3).await, leader, "leadership moved");
}
