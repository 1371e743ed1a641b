//! Issue 10, CI profile: the lock and queue workloads under every nemesis
//! type, each checked for zero invariant violations (mutual exclusion,
//! increasing fencing tokens, no zombie write, no lost acknowledged
//! message, nothing unexpected delivered). The long profile is
//! scripts/chaos.sh.

use std::time::Duration;

use dsync_tests::chaos;
use dsync_tests::nemesis::{Fault, Schedule};

async fn clean_under(fault: Fault) {
    let report = chaos::run(vec![fault], Duration::from_secs(14), Schedule::default()).await;
    println!("--- {fault:?}\n{report}");
    assert!(
        report.faults.iter().any(|(f, n)| *f == fault && *n > 0),
        "no {fault:?} fault was injected"
    );
    assert!(report.grants > 0, "no lock was ever granted");
    assert!(
        report.acknowledged_enqueues > 0,
        "no enqueue was acknowledged"
    );
    assert!(report.violations.is_empty(), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn workloads_stay_correct_when_random_nodes_are_killed() {
    clean_under(Fault::KillRandom).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn workloads_stay_correct_when_the_leader_is_killed() {
    clean_under(Fault::KillLeader).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn workloads_stay_correct_when_nodes_are_paused() {
    clean_under(Fault::Pause).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn workloads_stay_correct_when_every_node_is_killed_at_once() {
    clean_under(Fault::KillAll).await;
}
