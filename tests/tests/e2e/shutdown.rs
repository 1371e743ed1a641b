//! Issue 20, item 9: SIGTERM stops a node gracefully. The leader hands
//! leadership on, refuses new client requests, answers the ones in flight,
//! stops its background tasks and exits within a bound; nothing
//! acknowledged is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dsync_api::client::ClientError;
use dsync_api::locks::AcquireRequest;
use dsync_api::types::Consistency;
use dsync_api::{Client, ClientConfig};
use dsync_tests::{is_dsync_process, wait_until, Cluster};
use nix::sys::signal::Signal;
use serde_json::json;

/// What `begin_shutdown` and `shutdown` promise, in the order they run.
const BOUND: Duration = Duration::from_secs(20);

fn acquire(owner: &str, wait_ms: u64) -> AcquireRequest {
    AcquireRequest {
        owner: owner.into(),
        mode: Default::default(),
        ttl_ms: 30_000,
        wait_ms,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_on_the_leader_hands_off_answers_open_requests_and_exits() {
    let cluster = Cluster::up(3, &[]);
    let leader = cluster.wait_leader(3).await;
    let others: Vec<u64> = (1..=3).filter(|&n| n != leader).collect();
    let term_before = cluster
        .client_for(leader)
        .status()
        .await
        .expect("status")
        .term;
    let survivors = Client::new(ClientConfig::new(
        others.iter().map(|&n| cluster.node(n).addr).collect(),
    ))
    .expect("client");

    // Writes through the other nodes all along; every acknowledged one must
    // be readable afterwards.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let (c, stop, acked) = (survivors.clone(), stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let key = format!("shutdown/{i}");
                if let Ok(r) = c.kv_put(&key, json!(i), None).await {
                    acked.lock().unwrap().push((key, r.version));
                }
            }
        })
    };

    // A request in flight on the leader when SIGTERM comes: a lock wait.
    let held = survivors
        .lock_acquire("gate", &acquire("first", 0))
        .await
        .expect("first holder");
    // No retries: the test sees the first answer the stopping node gives.
    let mut cfg = ClientConfig::new(vec![cluster.node(leader).addr]);
    cfg.retry_for = Duration::ZERO;
    let on_leader = Client::new(cfg).expect("client");
    let waiting = tokio::spawn(async move {
        on_leader
            .lock_acquire("gate", &acquire("second", 15_000))
            .await
    });
    wait_until(
        Duration::from_secs(10),
        "the second owner waiting",
        || async {
            let info = survivors.lock_get("gate").await.ok()?;
            info.waiters
                .iter()
                .any(|w| w.owner == "second")
                .then_some(())
        },
    )
    .await;

    let acks = || acked.lock().unwrap().len();
    wait_until(Duration::from_secs(10), "writes under way", || async {
        (acks() >= 5).then_some(())
    })
    .await;

    let pid = cluster.node(leader).pid.expect("leader pid");
    let sent = Instant::now();
    cluster.signal(leader, Signal::SIGTERM);
    // The in-flight wait is answered once the lock is free.
    survivors
        .lock_release("gate", "first", held.token)
        .await
        .expect("release through a survivor");
    match waiting.await.expect("waiter task") {
        Ok(grant) => assert!(grant.token > held.token, "fencing tokens increase"),
        // Refused with an answer (leadership moved) is also a clean end;
        // a broken connection is not.
        Err(ClientError::Api { error, .. }) => eprintln!("in-flight wait refused: {error:?}"),
        Err(e) => panic!(
            "the in-flight request got no answer: {e}\n{}",
            cluster.server_logs()
        ),
    }

    wait_until(BOUND, "the stopped leader to exit", || async {
        (!is_dsync_process(pid)).then_some(())
    })
    .await;
    eprintln!("exited {:?} after SIGTERM", sent.elapsed());
    // Counted, not timed: how many fit in the stop depends on the machine.
    let at_exit = acks();
    wait_until(
        Duration::from_secs(10),
        "writes going on after the stop",
        || async { (acks() >= at_exit + 5).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");

    let log = std::fs::read_to_string(cluster.node(leader).log).expect("leader log");
    assert!(
        log.contains("leadership handed on"),
        "the leader handed leadership on before stopping:\n{}",
        cluster.server_logs()
    );
    assert!(
        log.contains("stopped cleanly"),
        "the leader finished its shutdown (tasks and Raft stopped):\n{}",
        cluster.server_logs()
    );
    let new_leader = survivors.status().await.expect("status").leader;
    assert!(new_leader.is_some_and(|l| others.contains(&l)));
    let term_after = survivors.status().await.expect("status").term;
    assert!(term_after > term_before);

    let acked = acked.lock().unwrap().clone();
    for (key, version) in acked {
        let item = survivors
            .kv_get(&key, Consistency::Linearizable)
            .await
            .unwrap_or_else(|e| panic!("acknowledged {key} lost: {e}"));
        assert!(item.version >= version);
    }
}
