//! Issue 7, acceptance 1: membership changes and `dsync cluster scale`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dsync_api::types::{Consistency, MemberKind};
use dsync_api::ErrorCode;
use dsync_tests::{wait_until, Cluster};
use serde_json::json;

/// Voter ids as every reachable node sees them, keyed by the answering node.
async fn voters_by_node(c: &Cluster) -> BTreeMap<u64, Vec<u64>> {
    c.statuses()
        .await
        .into_iter()
        .map(|s| {
            let mut v: Vec<u64> = s
                .members
                .iter()
                .filter(|m| m.kind == MemberKind::Voter)
                .map(|m| m.id)
                .collect();
            v.sort();
            (s.id, v)
        })
        .collect()
}

async fn wait_membership(c: &Cluster, want: &[u64]) {
    wait_until(
        Duration::from_secs(30),
        &format!("every node to see voters {want:?}"),
        || async {
            let seen = voters_by_node(c).await;
            let ids: Vec<u64> = seen.keys().copied().collect();
            (ids == want && seen.values().all(|v| v == want)).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_3_to_5_to_3_under_writes_loses_no_acknowledged_write() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let client = c.client();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut failed = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w{w}/{i:06}");
                match client.kv_put(&key, json!(i), None).await {
                    Ok(_) => acked.push((key, i)),
                    Err(e) => failed.push(format!("{key}: {e}")),
                }
                i += 1;
            }
            (acked, failed)
        }));
    }

    let out = c.dsync_ok(&["cluster", "scale", "--nodes", "5", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["from"], json!(3));
    assert_eq!(v["to"], json!(5));
    assert_eq!(v["added"], json!([4, 5]));
    wait_membership(&c, &[1, 2, 3, 4, 5]).await;

    let out = c.dsync_ok(&["cluster", "scale", "--nodes", "3", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["to"], json!(3));
    let removed: Vec<u64> = serde_json::from_value(v["removed"].clone()).unwrap();
    assert_eq!(removed.len(), 2);
    let mut remaining: Vec<u64> = c.nodes().iter().map(|n| n.id).collect();
    remaining.sort();
    assert_eq!(remaining.len(), 3);
    wait_membership(&c, &remaining).await;
    for id in &removed {
        assert!(
            !c.cluster_dir().join(format!("node-{id}")).exists(),
            "node {id}'s folder must be gone"
        );
    }

    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        let (a, failed) = w.await.unwrap();
        assert!(failed.is_empty(), "failed writes: {failed:?}");
        acked.extend(a);
    }
    assert!(
        acked.len() > 20,
        "the load wrote too little: {}",
        acked.len()
    );
    println!("scale 3→5→3: {} acknowledged writes", acked.len());
    // Every acknowledged write is there, read from every remaining node.
    for id in remaining {
        let client = c.client_for(id);
        for (key, i) in acked.iter().step_by(7) {
            let got = client.kv_get(key, Consistency::Linearizable).await.unwrap();
            assert_eq!(got.value, json!(i), "{key} via node {id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn removals_keep_a_healthy_quorum_and_removing_the_leader_hands_over() {
    let c = Cluster::up(3, &[]);
    let leader = c.wait_leader(3).await;
    let client = c.client();
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();

    let err = client.remove_member(9).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");

    // With one follower down, removing the other would leave two voters of
    // which only the leader answers: refused.
    c.kill9(followers[0]);
    let err = client.remove_member(followers[1]).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict), "{err}");
    assert!(err.to_string().contains("quorum"), "{err}");
    c.dsync_ok(&["cluster", "up"]);
    c.wait_leader(3).await;

    // The leader removes itself: the others elect a new one and serve.
    let leader = c.wait_leader(3).await;
    let after = client.remove_member(leader).await.expect("remove leader");
    assert!(!after.members.iter().any(|m| m.id == leader));
    let rest: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let new_leader = wait_until(Duration::from_secs(20), "a new leader", || async {
        let s = c.client_for(rest[0]).status().await.ok()?;
        s.leader.filter(|l| *l != leader)
    })
    .await;
    assert!(rest.contains(&new_leader));
    c.client_for(rest[0])
        .kv_put("after-removal", json!(1), None)
        .await
        .expect("write after the leader left");
    for id in &rest {
        let s = c.client_for(*id).status().await.unwrap();
        let voters: Vec<u64> = s
            .members
            .iter()
            .filter(|m| m.kind == MemberKind::Voter)
            .map(|m| m.id)
            .collect();
        assert_eq!(voters, rest, "membership seen by node {id}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scaling_down_removes_a_dead_node_first_and_warns_on_even_sizes() {
    let c = Cluster::up(3, &[]);
    let leader = c.wait_leader(3).await;
    let dead = (1..=3).find(|id| *id != leader).unwrap();
    c.kill9(dead);
    let out = c.dsync_ok(&["cluster", "scale", "--nodes", "2", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["removed"], json!([dead]), "{v}");
    assert!(v["warning"].as_str().unwrap().contains("odd"), "{v}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning:"));
    let mut rest: Vec<u64> = (1..=3).filter(|id| *id != dead).collect();
    rest.sort();
    wait_membership(&c, &rest).await;
    c.client().kv_put("k", json!(1), None).await.expect("write");
}
