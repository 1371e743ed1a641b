//! Issue 6, acceptance 2: the real `dsync tui` in tmux against a live
//! 3-node cluster shows the leader, a refused deadlock cycle and a queue
//! backlog, runs its two admin actions (force-release `r`, leader transfer
//! `t`) after confirmation, and follows a new leader after the leader is
//! killed.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use dsync_api::locks::{AcquireRequest, LockMode};
use dsync_api::queue::NewMessage;
use dsync_api::ErrorCode;
use dsync_tests::{wait_until, Cluster};

/// A private tmux server (its own socket) running one dashboard; killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(c: &Cluster) -> Tmux {
        let t = Tmux {
            socket: format!("dsync-e2e-tui-{}", std::process::id()),
        };
        // The pane outlives a crashed dashboard so its last screen and exit
        // status can be read in the failure message.
        let cmd = format!(
            "env -u DSYNC_ENDPOINTS '{}' --dir '{}' tui; echo \"dsync tui exited with $?\"; read _",
            c.bin.display(),
            c.cluster_dir().display()
        );
        let out = t.tmux(&[
            "new-session",
            "-d",
            "-s",
            "dash",
            "-x",
            "140",
            "-y",
            "40",
            &cmd,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        t
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is installed (.ci/run installs it)")
    }

    fn screen(&self) -> String {
        let out = self.tmux(&["capture-pane", "-p", "-t", "dash"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        let out = self.tmux(&["send-keys", "-t", "dash", keys]);
        assert!(out.status.success(), "tmux send-keys: {out:?}");
    }

    /// Waits until the screen satisfies `check`, failing with the last screen.
    async fn wait_for<T>(&self, what: &str, check: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if let Some(v) = check(&screen) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// The leader id in the dashboard's header (`leader node N term T`).
fn header_leader(screen: &str) -> Option<u64> {
    let first = screen.lines().next()?;
    let rest = &first[first.find("leader node ")? + "leader node ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// READY of `topic` in the Queues panel.
fn ready_of(screen: &str, topic: &str) -> Option<u64> {
    screen.lines().find_map(|l| {
        let mut cols = l
            .split(|c: char| c.is_whitespace() || c == '│' || c == '▶')
            .filter(|s| !s.is_empty());
        cols.find(|c| *c == topic)?;
        cols.next()?.parse().ok()
    })
}

fn acquire(owner: &str, wait_ms: u64) -> AcquireRequest {
    AcquireRequest {
        owner: owner.into(),
        mode: LockMode::Exclusive,
        ttl_ms: 60_000,
        wait_ms,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_shows_leader_deadlock_and_backlog_runs_admin_actions_and_follows_a_new_leader() {
    assert!(
        Command::new("tmux").arg("-V").output().is_ok(),
        "this test drives the dashboard in tmux: install tmux"
    );
    let c = Cluster::up(3, &[]);
    let leader = c.wait_leader(3).await;
    let client = c.client();

    // A deadlock: a holds x, b holds y, a waits for y, then b asking for x
    // would close the cycle and is refused.
    client
        .lock_acquire("x", &acquire("a", 0))
        .await
        .expect("a takes x");
    client
        .lock_acquire("y", &acquire("b", 0))
        .await
        .expect("b takes y");
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move { client.lock_acquire("y", &acquire("a", 30_000)).await })
    };
    wait_until(Duration::from_secs(10), "a to queue for y", || async {
        let g = client.lock_graph().await.ok()?;
        g.edges.iter().any(|e| e.waiter == "a").then_some(())
    })
    .await;
    let refused = client.lock_acquire("x", &acquire("b", 10_000)).await;
    assert_eq!(
        refused.err().and_then(|e| e.code()),
        Some(ErrorCode::Deadlock)
    );

    // A backlog nobody consumes.
    let msgs = (0..25)
        .map(|i| NewMessage {
            payload: serde_json::json!({ "n": i }),
            delay_ms: None,
            dedup_id: None,
        })
        .collect();
    client.queue_push("backlog", msgs).await.expect("push");

    let tmux = Tmux::start(&c);
    let shown = tmux
        .wait_for("the header to show the leader", header_leader)
        .await;
    assert_eq!(shown, leader);

    tmux.keys("2");
    tmux.wait_for("the refused cycle in the Locks panel", |s| {
        s.contains("cycle on x: b → a → b")
            .then_some(())
            .filter(|_| s.contains("a ──▶ b"))
    })
    .await;

    // `r` on the first lock (x, held by a), confirmed.
    tmux.keys("r");
    tmux.wait_for("the force-release confirmation", |s| {
        s.contains("Force-release lock \"x\"").then_some(())
    })
    .await;
    tmux.keys("y");
    tmux.wait_for("the force-release outcome", |s| {
        s.contains("lock x released from a").then_some(())
    })
    .await;
    let x = client.lock_get("x").await.expect("lock x");
    assert!(x.holders.is_empty(), "{x:?}");

    tmux.keys("4");
    tmux.wait_for("a depth of 25 in the Queues panel", |s| {
        (ready_of(s, "backlog") == Some(25)).then_some(())
    })
    .await;

    // `t` on a follower's row, confirmed: it becomes the leader.
    let ids: Vec<u64> = c.nodes().iter().map(|n| n.id).collect();
    let row = ids.iter().position(|&id| id != leader).expect("a follower");
    let target = ids[row];
    tmux.keys("1");
    for _ in 0..row {
        tmux.keys("Down");
    }
    tmux.keys("t");
    let question = format!("Transfer leadership to node {target}?");
    tmux.wait_for("the transfer confirmation", |s| {
        s.contains(&question).then_some(())
    })
    .await;
    tmux.keys("y");
    tmux.wait_for("the transferred leader in the header", |s| {
        (header_leader(s) == Some(target)).then_some(())
    })
    .await;

    c.kill9(target);
    let new = tmux
        .wait_for("a new leader in the header", |s| {
            header_leader(s).filter(|&l| l != target)
        })
        .await;
    tmux.wait_for("the killed node marked unreachable", |s| {
        let row = s.lines().find(|l| l.contains("UNREACHABLE"))?;
        row.contains(&c.node(target).addr).then_some(())
    })
    .await;
    assert_eq!(c.wait_leader(2).await, new);
    waiter.abort();
}

#[test]
fn without_a_terminal_it_refuses_plainly() {
    let out = Command::new(dsync_tests::dsync_bin())
        .args(["tui", "--endpoints", "127.0.0.1:9"])
        .output()
        .expect("run dsync");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs an interactive terminal"), "{err}");
}
