//! Issue 20, item 9: SIGTERM stops a node gracefully. The leader hands
//! leadership on, refuses new client requests, answers the ones in flight,
//! commits the write-back writes it acknowledged, stops its background
//! tasks and exits within a bound; nothing acknowledged is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dsync_api::client::ClientError;
use dsync_api::locks::AcquireRequest;
use dsync_api::routes;
use dsync_api::types::Consistency;
use dsync_api::{Client, ClientConfig, ErrorCode};
use dsync_tests::{is_dsync_process, wait_until, Cluster};
use nix::sys::signal::Signal;
use reqwest::Method;
use serde_json::{json, Value};

mod write_back;

/// What `begin_shutdown` and `shutdown` promise, in the order they run.
const BOUND: Duration = Duration::from_secs(20);

/// Lock "gate" held by "first" (through `survivors`) and "second" waiting
/// for it on `node`, with no retries, so the test sees the first answer
/// the stopping node gives.
async fn lock_wait_on(
    cluster: &Cluster,
    node: u64,
    survivors: &Client,
) -> (
    dsync_api::locks::AcquireResponse,
    tokio::task::JoinHandle<Result<dsync_api::locks::AcquireResponse, ClientError>>,
) {
    let held = survivors
        .lock_acquire("gate", &acquire("first", 0))
        .await
        .expect("first holder");
    let mut cfg = ClientConfig::new(vec![cluster.node(node).addr]);
    cfg.retry_for = Duration::ZERO;
    let on_node = Client::new(cfg).expect("client");
    let waiting = tokio::spawn(async move {
        on_node
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
    (held, waiting)
}

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
    let (held, waiting) = lock_wait_on(&cluster, leader, &survivors).await;

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

/// How a stopping node turned a new request away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// 503 `unavailable`, a JSON error naming the drain, `Retry-After`:
    /// the node still listens (its peers need it) but serves no client.
    Draining,
    /// No answer and no wait: the listener is closed (connection refused,
    /// or a connection accepted in the last instant closed unread).
    Closed,
}

/// Sends one request and says how it was refused; `Err` describes anything
/// else (served, hung, a 500, a body that is not the JSON error).
async fn refusal(req: reqwest::RequestBuilder) -> Result<Refusal, String> {
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Err(format!("no answer in time: {e}")),
        Err(_) => return Ok(Refusal::Closed),
    };
    let status = resp.status();
    let retry_after = resp.headers().get("retry-after").cloned();
    let text = resp
        .text()
        .await
        .map_err(|e| format!("{status}: body: {e}"))?;
    if status != 503 {
        return Err(format!("{status}: {text}"));
    }
    let body: Value =
        serde_json::from_str(&text).map_err(|e| format!("503 not JSON ({e}): {text:?}"))?;
    let (code, message) = (&body["error"]["code"], &body["error"]["message"]);
    if code != "unavailable" || !message.as_str().is_some_and(|m| m.contains("draining")) {
        return Err(format!("503 with another error: {text}"));
    }
    if retry_after.is_none() {
        return Err(format!("503 without Retry-After: {text}"));
    }
    Ok(Refusal::Draining)
}

/// A request that arrives after SIGTERM is refused at once: with a 503 while
/// the node still answers its open requests (and serves peers), by the
/// closed port after. Never served, never left hanging, never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_requests_to_a_stopping_node_are_refused_never_hung_or_failed() {
    let cluster = Cluster::up(3, &[]);
    let leader = cluster.wait_leader(3).await;
    let survivors = Client::new(ClientConfig::new(
        (1..=3)
            .filter(|&n| n != leader)
            .map(|n| cluster.node(n).addr)
            .collect(),
    ))
    .expect("client");
    survivors
        .kv_put("seeded", json!(1), None)
        .await
        .expect("seed");

    // A lock wait on the leader keeps it stopping (answering what it has
    // open) for as long as the lock is held: the window for new requests.
    let (held, waiting) = lock_wait_on(&cluster, leader, &survivors).await;

    let pid = cluster.node(leader).pid.expect("leader pid");
    let base = format!("http://{}", cluster.node(leader).addr);
    // A new connection per request, as a new client has: a pooled one could
    // be closed under the request by the stopping node.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client");
    cluster.signal(leader, Signal::SIGTERM);
    let ready = format!("{base}{}", routes::READY);
    wait_until(
        Duration::from_secs(10),
        "the node to report draining",
        || async {
            let r = http.get(&ready).send().await.ok()?;
            (r.status() == 503 && r.text().await.ok()?.contains("draining")).then_some(())
        },
    )
    .await;

    // Every kind of client request, reads and writes, while it drains.
    let late: [(Method, String, Option<Value>); 6] = [
        (
            Method::PUT,
            routes::kv_key("after-sigterm"),
            Some(json!({"value": 1})),
        ),
        (Method::GET, routes::kv_key("seeded"), None),
        (
            Method::PUT,
            routes::path(routes::CACHE_KEY, "after-sigterm"),
            Some(json!({"value": 2})),
        ),
        (Method::GET, routes::path(routes::CACHE_KEY, "seeded"), None),
        (
            Method::POST,
            routes::path(routes::LOCK_ACQUIRE, "other"),
            Some(json!({"owner": "late", "ttl_ms": 1000, "wait_ms": 0})),
        ),
        (
            Method::POST,
            routes::path(routes::TOPIC_MESSAGES, "jobs"),
            Some(json!({"payload": 1})),
        ),
    ];
    for (method, path, body) in &late {
        let mut req = http.request(method.clone(), format!("{base}{path}"));
        if let Some(b) = body {
            req = req.json(b);
        }
        match refusal(req).await {
            Ok(Refusal::Draining) => {}
            other => panic!(
                "{method} {path} while draining: {other:?}\n{}",
                cluster.server_logs()
            ),
        }
    }
    // Operators still see the node.
    let status = http.get(format!("{base}{}", routes::STATUS)).send().await;
    assert_eq!(status.expect("status while draining").status(), 200);

    // From the end of its open requests until it is gone: the listener
    // closes, and each new request is still refused at once.
    let probe = {
        let (http, url) = (http.clone(), format!("{base}{}", routes::kv_key("probe")));
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut pace = tokio::time::interval(Duration::from_millis(5));
            while is_dsync_process(pid) {
                pace.tick().await;
                seen.push(refusal(http.put(&url).json(&json!({"value": 1}))).await);
            }
            seen
        })
    };
    survivors
        .lock_release("gate", "first", held.token)
        .await
        .expect("release through a survivor");
    match waiting.await.expect("waiter task") {
        Ok(_) | Err(ClientError::Api { .. }) => {}
        Err(e) => panic!(
            "the open wait got no answer: {e}\n{}",
            cluster.server_logs()
        ),
    }
    let seen = tokio::time::timeout(BOUND, probe)
        .await
        .expect("the stopped node to exit")
        .expect("probe task");
    let bad: Vec<&String> = seen.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        bad.is_empty(),
        "not refused plainly: {bad:?}\n{}",
        cluster.server_logs()
    );
    let closed = seen
        .iter()
        .filter(|r| matches!(r, Ok(Refusal::Closed)))
        .count();
    assert!(
        seen[seen.len() - closed..]
            .iter()
            .all(|r| matches!(r, Ok(Refusal::Closed))),
        "the node answered again after closing its listener: {seen:?}"
    );
    eprintln!(
        "{} late requests while stopping, {closed} after the listener closed",
        seen.len()
    );

    // Refused means not done, anywhere.
    for key in ["after-sigterm", "probe"] {
        let r = survivors.kv_get(key, Consistency::Linearizable).await;
        assert_eq!(
            r.err().and_then(|e| e.code()),
            Some(ErrorCode::NotFound),
            "{key}"
        );
    }
    let info = survivors.lock_get("other").await;
    assert!(
        info.as_ref().map_or(true, |i| i.holders.is_empty()),
        "a refused acquire took the lock: {info:?}"
    );
}
