//! Issue 3, acceptance 4: `dsync lock run` on a lock held elsewhere waits,
//! runs the command with its fencing token, releases, and passes the exit
//! code through; `lock acquire` exits 3 when busy.

use std::process::{Command, Stdio};
use std::time::Duration;

use dsync_api::locks::{AcquireRequest, LockMode};
use dsync_tests::{wait_until, Cluster};

#[tokio::test(flavor = "multi_thread")]
async fn lock_run_waits_for_a_held_lock_runs_and_releases() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    let client = c.client();
    let held = client
        .lock_acquire(
            "jobs/nightly",
            &AcquireRequest {
                owner: "elsewhere".into(),
                mode: LockMode::Exclusive,
                ttl_ms: 30_000,
                wait_ms: 0,
            },
        )
        .await
        .unwrap();

    // Busy lock, no wait: exit code 3.
    let busy = c.dsync(&["lock", "acquire", "jobs/nightly", "--owner", "impatient"]);
    assert_eq!(
        busy.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );

    let child = Command::new(&c.bin)
        .arg("--dir")
        .arg(c.cluster_dir())
        .args([
            "lock",
            "run",
            "jobs/nightly",
            "--owner",
            "runner",
            "--wait",
            "20s",
            "--",
        ])
        .args(["sh", "-c", "echo token=$DSYNC_FENCING_TOKEN; exit 7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dsync lock run");
    wait_until(Duration::from_secs(10), "lock run to queue", || async {
        let l = client.lock_get("jobs/nightly").await.ok()?;
        l.waiters.iter().any(|w| w.owner == "runner").then_some(())
    })
    .await;
    client
        .lock_release("jobs/nightly", "elsewhere", held.token)
        .await
        .unwrap();

    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(7),
        "exit code passes through; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("token="))
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("no token in output: {stdout}"));
    assert!(
        token > held.token,
        "the runner's token {token} must exceed {}",
        held.token
    );
    let after = client.lock_get("jobs/nightly").await.unwrap();
    assert!(
        after.holders.is_empty() && after.waiters.is_empty(),
        "lock not released: {after:?}"
    );
}
