//! Issue 3, acceptance 2 and 3: the lock manager on a real 3-node cluster.

use std::time::{Duration, Instant};

use dsync_api::client::ClientError;
use dsync_api::locks::{AcquireRequest, LockMode};
use dsync_api::types::Consistency;
use dsync_api::{Client, ErrorCode};
use dsync_tests::{fetch_metrics, metric, wait_until, Cluster};
use serde_json::json;

pub(crate) fn req(owner: &str, mode: LockMode, ttl_ms: u64, wait_ms: u64) -> AcquireRequest {
    AcquireRequest {
        owner: owner.to_string(),
        mode,
        ttl_ms,
        wait_ms,
    }
}

/// One acknowledged exclusive hold, as its client saw it: the interval lies
/// inside the real hold (grant received after it happened, release sent
/// before it happened).
#[derive(Debug, Clone)]
struct Hold {
    token: u64,
    start: Instant,
    end: Instant,
    counter_seen: u64,
}

/// Each client: acquire (waiting), read the counter, write counter + 1
/// fenced by its token, release. Returns its acknowledged holds and how many
/// fenced writes had an unknown outcome.
async fn worker(client: Client, owner: String, rounds: usize) -> (Vec<Hold>, u64) {
    let mut holds = Vec::new();
    let mut unknown = 0;
    let mut done = 0;
    while done < rounds {
        let grant = match client
            .lock_acquire("counter", &req(&owner, LockMode::Exclusive, 5_000, 30_000))
            .await
        {
            Ok(g) => g,
            Err(ClientError::Api { error, .. }) if error.code == ErrorCode::LockBusy => continue,
            Err(_) => continue, // leader change: acquire again (idempotent per owner)
        };
        let start = Instant::now();
        let seen = loop {
            match client.kv_get("counter", Consistency::Linearizable).await {
                Ok(v) => break v.value.as_u64().expect("counter is a number"),
                Err(ClientError::Api { error, .. }) if error.code == ErrorCode::NotFound => {
                    break 0
                }
                Err(_) => continue,
            }
        };
        match client
            .kv_put_fenced("counter", json!(seen + 1), None, "counter", grant.token)
            .await
        {
            Ok(_) => {}
            Err(ClientError::Api { error, .. }) if error.code == ErrorCode::StaleToken => {
                panic!(
                    "{owner} lost its lock while holding it (token {})",
                    grant.token
                )
            }
            Err(_) => unknown += 1,
        }
        let end = Instant::now();
        // Retry a lost release: otherwise the next round's re-acquire is
        // idempotent and returns this same grant.
        loop {
            match client.lock_release("counter", &owner, grant.token).await {
                Ok(_) => break,
                Err(e) if e.code() == Some(ErrorCode::StaleToken) => break,
                Err(_) => continue,
            }
        }
        holds.push(Hold {
            token: grant.token,
            start,
            end,
            counter_seen: seen,
        });
        done += 1;
    }
    (holds, unknown)
}

async fn run_mutual_exclusion(
    c: &Cluster,
    clients: usize,
    rounds: usize,
    kill_leader_after: Option<u64>,
) {
    let mut tasks = Vec::new();
    let nodes = c.nodes();
    for i in 0..clients {
        let client = c.client();
        client.prefer(i % nodes.len()); // spread requests over every node
        tasks.push(tokio::spawn(worker(client, format!("w{i}"), rounds)));
    }
    if let Some(grants) = kill_leader_after {
        let client = c.client();
        wait_until(
            Duration::from_secs(30),
            "grants before the fault",
            || async {
                let v = client.kv_get("counter", Consistency::Leader).await.ok()?;
                (v.value.as_u64()? >= grants).then_some(())
            },
        )
        .await;
        let leader = c.wait_leader(3).await;
        c.kill9(leader);
        println!("killed leader {leader} mid-run");
    }
    let mut holds = Vec::new();
    let mut unknown = 0;
    for t in tasks {
        let (h, u) = t.await.expect("worker");
        holds.extend(h);
        unknown += u;
    }
    assert_eq!(holds.len(), clients * rounds);

    // Tokens are unique and, in grant order (the counter each holder saw),
    // strictly increasing.
    holds.sort_by_key(|h| (h.counter_seen, h.token));
    for w in holds.windows(2) {
        assert!(
            w[0].token < w[1].token,
            "tokens out of order: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    // No two acknowledged exclusive holds overlap in real time.
    let mut by_start = holds.clone();
    by_start.sort_by_key(|h| h.start);
    for w in by_start.windows(2) {
        assert!(
            w[0].end <= w[1].start,
            "two exclusive holders at once: {:?} and {:?}",
            w[0],
            w[1]
        );
    }
    // The fenced counter saw every increment exactly once.
    let final_value = c
        .client()
        .kv_get("counter", Consistency::Linearizable)
        .await
        .unwrap()
        .value;
    let final_value = final_value.as_u64().unwrap();
    let grants = holds.len() as u64;
    if unknown == 0 {
        assert_eq!(
            final_value, grants,
            "counter must end at the number of grants"
        );
    } else {
        assert!(
            final_value + unknown >= grants && final_value <= grants,
            "{final_value} of {grants} ({unknown} unknown)"
        );
    }
    println!("{grants} grants, counter {final_value}, {unknown} writes with unknown outcome");
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_exclusion_under_32_clients_with_a_fenced_counter() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    run_mutual_exclusion(&c, 32, 8, None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_exclusion_holds_when_the_leader_is_killed_mid_run() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    run_mutual_exclusion(&c, 16, 12, Some(40)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_holders_together_fifo_order_and_lease_expiry() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    let client = c.client();

    // Shared holders coexist.
    for o in ["r1", "r2", "r3"] {
        client
            .lock_acquire("shared", &req(o, LockMode::Shared, 10_000, 0))
            .await
            .unwrap();
    }
    assert_eq!(client.lock_get("shared").await.unwrap().holders.len(), 3);
    let busy = client
        .lock_acquire("shared", &req("w", LockMode::Exclusive, 10_000, 0))
        .await
        .unwrap_err();
    assert_eq!(busy.code(), Some(ErrorCode::LockBusy));

    // FIFO: waiters are granted in the order they queued.
    let first = client
        .lock_acquire("fifo", &req("holder", LockMode::Exclusive, 10_000, 0))
        .await
        .unwrap();
    let mut waiting = Vec::new();
    for (i, o) in ["q1", "q2", "q3"].iter().enumerate() {
        let cl = c.client_for(c.nodes()[i].id);
        let owner = o.to_string();
        waiting.push(tokio::spawn(async move {
            let g = cl
                .lock_acquire("fifo", &req(&owner, LockMode::Exclusive, 10_000, 20_000))
                .await
                .unwrap();
            cl.lock_release("fifo", &owner, g.token).await.unwrap();
            g.token
        }));
        wait_until(Duration::from_secs(5), "the request to queue", || async {
            let l = client.lock_get("fifo").await.ok()?;
            (l.waiters.len() == i + 1).then_some(())
        })
        .await;
    }
    let queued: Vec<String> = client
        .lock_get("fifo")
        .await
        .unwrap()
        .waiters
        .into_iter()
        .map(|w| w.owner)
        .collect();
    assert_eq!(queued, ["q1", "q2", "q3"]);
    client
        .lock_release("fifo", "holder", first.token)
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for t in waiting {
        tokens.push(t.await.unwrap());
    }
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "granted out of FIFO order: {tokens:?}"
    );
    // Each waiter waited on the node it asked: the wait-time histogram
    // there counted it.
    let mut waits = 0.0;
    for n in c.nodes() {
        let text = fetch_metrics(&n.addr).await;
        waits += metric(&text, "dsync_lock_wait_seconds_count").unwrap_or(0.0);
    }
    assert!(waits >= 3.0, "{waits} waits in dsync_lock_wait_seconds");

    // An expired lease frees the lock for a waiter; the old holder's token
    // is refused by release, keepalive and the fenced KV.
    let old = client
        .lock_acquire("lease", &req("sleepy", LockMode::Exclusive, 400, 0))
        .await
        .unwrap();
    let started = Instant::now();
    let next = client
        .lock_acquire("lease", &req("next", LockMode::Exclusive, 10_000, 10_000))
        .await
        .unwrap();
    assert!(next.token > old.token);
    assert!(started.elapsed() < Duration::from_secs(5));
    for e in [
        client
            .lock_keepalive("lease", "sleepy", old.token, None)
            .await
            .unwrap_err(),
        client
            .lock_release("lease", "sleepy", old.token)
            .await
            .unwrap_err(),
        client
            .kv_put_fenced("guarded", json!(1), None, "lease", old.token)
            .await
            .unwrap_err(),
    ] {
        assert_eq!(e.code(), Some(ErrorCode::StaleToken), "{e}");
    }
    client
        .kv_put_fenced("guarded", json!(2), None, "lease", next.token)
        .await
        .unwrap();
    // The expiry went through the log: every node counts it.
    for n in c.nodes() {
        wait_until(Duration::from_secs(5), "dsync_locks_expired", || async {
            let text = fetch_metrics(&n.addr).await;
            (metric(&text, "dsync_locks_expired")? >= 1.0).then_some(())
        })
        .await;
    }
}
