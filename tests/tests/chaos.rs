//! Issue 10, long profile: every nemesis type mixed for a long run. Ignored
//! by default; scripts/chaos.sh runs it with DSYNC_CHAOS_SECS set.

use std::time::Duration;

use dsync_tests::chaos;
use dsync_tests::nemesis::{Fault, Schedule};

#[tokio::test(flavor = "multi_thread")]
#[ignore = "long profile: run scripts/chaos.sh --duration 10m"]
async fn chaos_long_profile() {
    let secs: u64 = std::env::var("DSYNC_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let report = chaos::run(
        Fault::ALL.to_vec(),
        Duration::from_secs(secs),
        Schedule::default(),
    )
    .await;
    println!("=== chaos summary ({secs} s)\n{report}");
    assert!(report.violations.is_empty(), "{report}");
}
