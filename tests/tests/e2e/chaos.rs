//! Issue 10, long profile: every nemesis type mixed for a long run, with
//! the nodes in network namespaces so partitions are among the faults.
//! Ignored by default; scripts/chaos.sh runs it with DSYNC_CHAOS_SECS set.
//! DSYNC_NO_NETNS=1 leaves partitions out (and says so).

use std::time::Duration;

use dsync_tests::nemesis::{Fault, Schedule};
use dsync_tests::{chaos, netns};

#[tokio::test(flavor = "multi_thread")]
#[ignore = "long profile: run scripts/chaos.sh --duration 10m"]
async fn chaos_long_profile() {
    let secs: u64 = std::env::var("DSYNC_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let mut kinds = Fault::ALL.to_vec();
    if netns::opted_out() {
        eprintln!("{}=1: no partitions in this run", netns::OPT_OUT_ENV);
        kinds.retain(|k| *k != Fault::Partition);
    }
    let report = chaos::run(kinds, Duration::from_secs(secs), Schedule::default()).await;
    println!("=== chaos summary ({secs} s)\n{report}");
    assert!(report.violations.is_empty(), "{report}");
}
