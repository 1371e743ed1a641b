//! Issue 17: queue group leadership is spread (no node leads more than
//! ⌈G/N⌉ groups), regained by itself after a restart of every node, and
//! moved off a node that drains. Issue 18: `cluster status` does not warn
//! about that spread, and warns (exit 0) about groups a lost node leaves
//! under-replicated.

use std::collections::BTreeMap;
use std::time::Duration;

use dsync_api::shards::{preferred_leaders, ShardMap};
use dsync_tests::shard_workload::{leaders, view};
use dsync_tests::{wait_ok, Cluster};
use serde_json::Value;

const IDS: [u64; 3] = [1, 2, 3];

/// How many groups each node leads.
fn per_node(led: &BTreeMap<u64, u64>) -> BTreeMap<u64, usize> {
    let mut n = BTreeMap::new();
    for leader in led.values() {
        *n.entry(*leader).or_default() += 1;
    }
    n
}

async fn spread(c: &Cluster, map: &ShardMap) -> Result<BTreeMap<u64, u64>, String> {
    let led = leaders(c, map, &IDS).await?;
    let most = per_node(&led).values().copied().max().unwrap_or(0);
    if most > 1 {
        return Err(format!("leaders are not spread: {led:?}"));
    }
    Ok(led)
}

/// Every group led by the node `leader balance` would give it: a spread
/// alone may still be a permutation the balancer goes on to change.
async fn preferred(c: &Cluster, map: &ShardMap) -> Result<(), String> {
    let led = spread(c, map).await?;
    let want = preferred_leaders(map, &IDS);
    if led != want {
        return Err(format!("led {led:?}, preferred {want:?}"));
    }
    Ok(())
}

/// `cluster status`'s warning lines, once it succeeds.
fn status_warnings(c: &Cluster) -> Result<Vec<String>, String> {
    let out = c.dsync(&["cluster", "status"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(format!("cluster status failed: {stderr}"));
    }
    Ok(stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .map(str::to_string)
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn leadership_is_spread_regained_after_a_restart_and_drained_away() {
    // A new cluster of 3 gets a queue group per node by default.
    let c = Cluster::up_as_a_user_would(3);
    c.wait_leader(3).await;
    let map = view(&c, 1).await.expect("shards").map;
    assert_eq!(map.groups.len(), 3);
    assert!(map.groups.iter().all(|g| g.replicas.len() == 3), "{map:?}");
    let limit = Duration::from_secs(60);
    wait_ok(limit, "one group led by each node", || spread(&c, &map)).await;

    // Every node restarts: elections put leaders anywhere, the control
    // leader's balancer moves them back within a few rounds.
    c.dsync_ok(&["cluster", "down"]);
    c.dsync_ok(&["cluster", "up"]);
    c.wait_leader(3).await;
    wait_ok(
        limit,
        "the preferred leaders regained after a restart",
        || preferred(&c, &map),
    )
    .await;
    let out = c.dsync_ok(&["leader", "balance", "-o", "json"]);
    let moves: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json moves");
    assert_eq!(moves.len(), 3);
    assert!(
        moves.iter().all(|m| m["moved"] == Value::Bool(false)),
        "a balanced cluster has nothing to move: {moves:?}"
    );
    wait_ok(limit, "cluster status without warnings", || async {
        match status_warnings(&c)? {
            w if w.is_empty() => Ok(()),
            w => Err(format!("a balanced cluster warned: {w:?}")),
        }
    })
    .await;

    // A drained node leads no queue group afterwards.
    let led = spread(&c, &map).await.expect("spread");
    let (&group, &node) = led.iter().next().expect("a led group");
    let out = c.dsync_ok(&["node", "drain", &node.to_string(), "-o", "json"]);
    assert!(out.status.success());
    let after = leaders(&c, &map, &IDS).await.expect("leaders after drain");
    assert!(
        after.values().all(|l| *l != node),
        "node {node} still leads after its drain: {after:?} (it led group {group})"
    );

    // The drained node, leading nothing, is lost: every group is short of
    // a replica, and still served, so status warns and succeeds.
    c.kill9(node);
    let want: Vec<String> = map
        .groups
        .iter()
        .map(|g| {
            format!(
                "warning: queue group {} has 2 of 3 healthy replicas (node {node} unreachable)",
                g.id
            )
        })
        .collect();
    wait_ok(limit, "a warning per under-replicated group", || async {
        match status_warnings(&c)? {
            w if w == want => Ok(()),
            w => Err(format!("warnings {w:?}, want {want:?}")),
        }
    })
    .await;
}
