//! Issue 2, acceptance 1, 3 and 4: formation, failover, catch-up.

use std::time::{Duration, Instant};

use dsync_api::types::{Consistency, MemberKind, Role};
use dsync_tests::{fetch_metrics, metric, wait_until, Cluster};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn cluster_up_forms_three_voters_that_agree_and_down_stops_them() {
    let c = Cluster::up(3, &[]);
    let leader = c.wait_leader(3).await;
    let statuses = c.statuses().await;
    assert_eq!(statuses.len(), 3);
    assert_eq!(
        statuses.iter().filter(|s| s.role == Role::Leader).count(),
        1
    );
    for s in &statuses {
        assert_eq!(
            s.leader,
            Some(leader),
            "node {} disagrees on the leader",
            s.id
        );
        let mut voters: Vec<u64> = s
            .members
            .iter()
            .filter(|m| m.kind == MemberKind::Voter)
            .map(|m| m.id)
            .collect();
        voters.sort();
        assert_eq!(voters, vec![1, 2, 3], "membership seen by node {}", s.id);
    }

    // Every node's /metrics reports the commit index it has learned, and
    // no apply lag once the writes are in.
    let client = c.client();
    for i in 0..5 {
        client
            .kv_put(&format!("m/{i}"), json!(i), None)
            .await
            .expect("put");
    }
    let written = c.statuses().await.iter().map(|s| s.applied_index).max();
    let written = written.expect("statuses") as f64;
    for n in c.nodes() {
        wait_until(
            Duration::from_secs(10),
            "the commit index in /metrics",
            || async {
                let text = fetch_metrics(&n.addr).await;
                let commit = metric(&text, "dsync_raft_commit_index")?;
                let applied = metric(&text, "dsync_raft_applied_index")?;
                let lag = metric(&text, "dsync_raft_apply_lag")?;
                (commit >= written && commit == applied && lag == 0.0).then_some(())
            },
        )
        .await;
    }

    // The CLI's view agrees, and says so in JSON.
    let out = c.dsync_ok(&["cluster", "status", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert_eq!(v["leader"], json!(leader));
    assert_eq!(v["quorum"], json!(true));

    let pids: Vec<u32> = c.nodes().iter().filter_map(|n| n.pid).collect();
    assert_eq!(pids.len(), 3);
    c.dsync_ok(&["cluster", "down"]);
    for pid in pids {
        assert!(
            !dsync_tests::is_dsync_process(pid),
            "process {pid} survived cluster down"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_leader_elects_a_new_one_and_writes_continue_through_survivors() {
    let c = Cluster::up(3, &[]);
    let old = c.wait_leader(3).await;
    c.client()
        .kv_put("before", json!(1), None)
        .await
        .expect("write before failover");

    let killed_at = Instant::now();
    c.kill9(old);
    let survivors: Vec<u64> = (1..=3).filter(|&id| id != old).collect();
    // Writes through each surviving node succeed once a new leader is up.
    let first = c.client_for(survivors[0]);
    first
        .kv_put("after", json!(2), None)
        .await
        .expect("write after failover");
    let failover = killed_at.elapsed();
    println!(
        "failover: first acknowledged write {} ms after kill -9 of leader {old}",
        failover.as_millis()
    );

    let new = c.wait_leader(2).await;
    assert_ne!(new, old);
    for &id in &survivors {
        let v = c
            .client_for(id)
            .kv_put(&format!("via-{id}"), json!(id), None)
            .await;
        assert!(v.is_ok(), "write through node {id} failed: {v:?}");
    }
    let got = c
        .client_for(survivors[1])
        .kv_get("after", Consistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(got.value, json!(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_missed_many_writes_catches_up_through_a_snapshot() {
    // Small snapshot interval and log tail so the leader has purged what the
    // stopped node missed and must send a snapshot.
    let c = Cluster::up(
        3,
        &[
            ("DSYNC_SNAPSHOT_EVERY", "100"),
            ("DSYNC_KEEP_LOGS_AFTER_SNAPSHOT", "5"),
        ],
    );
    let leader = c.wait_leader(3).await;
    let lagger = (1..=3).find(|&id| id != leader).unwrap();
    c.kill9(lagger);

    let client = c.client();
    let writes = 600;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..writes).step_by(8) {
                client
                    .kv_put(&format!("k/{i:04}"), json!(i), None)
                    .await
                    .expect("write");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let target = c.client().status().await.unwrap().commit_index;

    c.dsync_ok(&["cluster", "up"]); // restarts the stopped node from its data
    let lag_client = c.client_for(lagger);
    wait_until(
        Duration::from_secs(30),
        "the restarted node to catch up",
        || async {
            let s = lag_client.node_status(&c.node(lagger).addr).await.ok()?;
            (s.applied_index >= target).then_some(())
        },
    )
    .await;
    let text = fetch_metrics(&c.node(lagger).addr).await;
    let installed = metric(&text, "dsync_snapshots_installed_total").unwrap_or(0.0);
    assert!(
        installed >= 1.0,
        "expected a snapshot install on node {lagger}:\n{text}"
    );

    // Its own state (no leader round) has every write.
    let list = lag_client
        .kv_list("k/", Some(writes), Consistency::Stale)
        .await
        .unwrap();
    assert_eq!(list.items.len(), writes);
    assert_eq!(list.items[599].value, json!(599));
}

#[tokio::test(flavor = "multi_thread")]
async fn status_marks_unreachable_nodes_and_fails_without_quorum() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    c.kill9(2);
    let out = c.dsync_ok(&["cluster", "status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("unreachable"),
        "node 2 should show as unreachable:\n{table}"
    );

    c.kill9(3);
    let out = c.dsync(&["cluster", "status", "--output", "json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "no quorum must fail the command"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert_eq!(v["quorum"], json!(false));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_node_stays_ready_under_a_steady_write_load() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (client, stop, written) = (c.client(), stop.clone(), written.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    client
                        .kv_put(&format!("load/{w}/{n}"), json!(n), None)
                        .await
                        .expect("put under load");
                    written.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();
    // Under load the apply runs just behind the commit on every node; that
    // is no reason to take a node out of a load balancer.
    let http = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(3);
    let mut probes = 0;
    while Instant::now() < until {
        for n in c.nodes() {
            let r = http
                .get(format!("http://{}/ready", n.addr))
                .send()
                .await
                .expect("/ready");
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            assert!(status.is_success(), "node {} under load: {body}", n.id);
            probes += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    let written = written.load(Ordering::Relaxed);
    assert!(
        written >= 100,
        "only {written} writes: the load did not run"
    );
    println!("{probes} /ready probes during {written} writes, all ready");
}
