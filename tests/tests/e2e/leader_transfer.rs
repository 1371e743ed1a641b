//! Issue 7, acceptance 4: leadership moves to the named node on request,
//! under a write load that sees no failure beyond retried 503s.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dsync_tests::{wait_until, Cluster};
use serde_json::{json, Value};

async fn transfer(c: &Arc<Cluster>, args: &[&str]) -> Value {
    let c = c.clone();
    let mut full = vec!["leader", "transfer", "--output", "json"];
    full.extend_from_slice(args);
    let full: Vec<String> = full.into_iter().map(String::from).collect();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = full.iter().map(String::as_str).collect();
        c.dsync_ok(&args)
    })
    .await
    .expect("cli task");
    serde_json::from_slice(&out.stdout).expect("transfer json")
}

async fn everyone_agrees_on(c: &Cluster, leader: u64) {
    wait_until(
        Duration::from_secs(10),
        "every node to report the new leader",
        || async {
            let st = c.statuses().await;
            (st.len() == 3 && st.iter().all(|s| s.leader == Some(leader))).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transfer_moves_leadership_to_the_named_node_under_load() {
    let c = Arc::new(Cluster::up(3, &[]));
    let old = c.wait_leader(3).await;

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, stop, acked) = (c.client(), stop.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w{w}/{i}");
                if let Err(e) = client.kv_put(&key, json!(i), None).await {
                    return Err(format!("write {key} failed: {e}"));
                }
                acked.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            Ok(i)
        }));
    }
    wait_until(
        Duration::from_secs(10),
        "the write load to start",
        || async { (acked.load(Ordering::Relaxed) > 50).then_some(()) },
    )
    .await;

    let target = (1..=3).find(|id| *id != old).expect("a follower");
    let moved = transfer(&c, &["--to", &target.to_string()]).await;
    println!("transfer {old} -> {target}: {moved}");
    assert_eq!(moved["from"], json!(old));
    assert_eq!(moved["leader"], json!(target));
    everyone_agrees_on(&c, target).await;

    // Without --to, the most caught-up follower takes over.
    let moved = transfer(&c, &[]).await;
    println!("transfer {target} -> any: {moved}");
    assert_eq!(moved["from"], json!(target));
    let next = moved["leader"].as_u64().expect("leader id");
    assert_ne!(next, target);
    everyone_agrees_on(&c, next).await;

    let before = acked.load(Ordering::Relaxed);
    wait_until(
        Duration::from_secs(10),
        "writes after the transfers",
        || async { (acked.load(Ordering::Relaxed) > before + 50).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for w in writers {
        total += w.await.expect("writer task").expect("no failed write");
    }
    println!("{total} writes acknowledged across two transfers, none failed");

    // Every acknowledged write is there.
    let mut present = 0;
    for w in 0..4 {
        let items = c
            .client()
            .kv_list(&format!("w{w}/"), Some(10_000), Default::default())
            .await
            .expect("list");
        assert!(!items.truncated, "more than 10,000 writes from one writer");
        present += items.items.len() as u64;
    }
    assert_eq!(present, total);
}

#[tokio::test(flavor = "multi_thread")]
async fn transfer_to_the_leader_or_a_stranger_is_answered_clearly() {
    let c = Arc::new(Cluster::up(3, &[]));
    let leader = c.wait_leader(3).await;

    let same = transfer(&c, &["--to", &leader.to_string()]).await;
    assert_eq!(same["leader"], json!(leader));
    assert_eq!(same["elapsed_ms"], json!(0));

    let out = c.dsync(&["leader", "transfer", "--to", "99"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a voter"), "stderr: {err}");
    assert_eq!(
        c.wait_leader(3).await,
        leader,
        "a refused transfer moved nothing"
    );
}
