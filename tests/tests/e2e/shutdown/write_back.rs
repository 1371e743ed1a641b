//! Write-back writes a node acknowledged are committed when it stops.

use std::time::{Duration, Instant};

use dsync_api::cache::LineState;
use dsync_api::types::Consistency;
use dsync_api::{Client, ClientConfig};
use dsync_tests::{is_dsync_process, wait_until, Cluster};
use nix::sys::signal::Signal;
use serde_json::json;

use super::BOUND;

/// Write-back acknowledges a write before it is committed; a follower told
/// to stop commits those writes, so they survive it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_writes_acknowledged_before_sigterm_are_committed() {
    committed_at_stop(false).await
}

/// The same on the leader, whose lines go with the term it hands on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_writes_acknowledged_by_a_stopping_leader_are_committed() {
    committed_at_stop(true).await
}

async fn committed_at_stop(stop_leader: bool) {
    // Flushes 3 s apart: a write acknowledged just after one is held by its
    // node alone for the whole stop (well under a second).
    let cluster = Cluster::up(
        3,
        &[
            ("DSYNC_CACHE_WRITE_POLICY", "write-back"),
            ("DSYNC_CACHE_WRITEBACK_DELAY_MS", "3000"),
            ("DSYNC_CACHE_LEASE_MS", "12000"),
        ],
    );
    let leader = cluster.wait_leader(3).await;
    // N stops; the reader stays and reads through its cache.
    let others: Vec<u64> = (1..=3).filter(|&i| i != leader).collect();
    let (n, reader) = match stop_leader {
        true => (leader, others[0]),
        false => (others[0], others[1]),
    };
    // Past a lease: the directory's first answer waits one out.
    let mut cfg = ClientConfig::new(vec![cluster.node(n).addr]);
    cfg.request_timeout = Duration::from_secs(30);
    let on_n = Client::new(cfg).expect("client");
    let stays = (1..=3).filter(|&i| i != n).map(|i| cluster.node(i).addr);
    let survivors = Client::new(ClientConfig::new(stays.collect())).expect("client");
    let committed = |key: &'static str| {
        let c = survivors.clone();
        async move {
            c.kv_get(key, Consistency::Linearizable)
                .await
                .ok()
                .map(|i| i.value)
        }
    };
    // A new directory completes nothing for one lease; wait that out first
    // so the line granted below starts with its whole lease (a write stays
    // local only with half of it left).
    on_n.cache_put("warm-up", json!(0)).await.expect("warm-up");
    let key = "wb/stop";
    // The first write goes through the directory and leaves N's line M; the
    // next ones stay on N until flushed.
    let first = on_n.cache_put(key, json!(1)).await.expect("write through");
    assert_eq!((first.state, first.version.is_some()), (LineState::M, true));
    let second = on_n.cache_put(key, json!(2)).await.expect("buffered");
    assert_eq!((second.state, second.version), (LineState::M, None));
    wait_until(Duration::from_secs(10), "a periodic flush", || async {
        (committed(key).await? == json!(2)).then_some(())
    })
    .await;
    // Just flushed: the next flush is about 3 s away.
    let last = on_n.cache_put(key, json!(3)).await.expect("buffered");
    assert_eq!((last.state, last.version), (LineState::M, None));
    assert_eq!(
        committed(key).await,
        Some(json!(2)),
        "only N holds the last write"
    );

    let pid = cluster.node(n).pid.expect("pid");
    cluster.signal(n, Signal::SIGTERM);
    wait_until(BOUND, "the stopped node to exit", || async {
        (!is_dsync_process(pid)).then_some(())
    })
    .await;
    let log = std::fs::read_to_string(cluster.node(n).log).expect("log");
    assert!(
        log.contains("committing write-back writes") && log.contains("stopped cleanly"),
        "the stop committed the buffered write:\n{}",
        cluster.server_logs()
    );
    assert_eq!(
        committed(key).await,
        Some(json!(3)),
        "the acknowledged write survives"
    );
    // Through another node's cache too. The directory still names N as the
    // owner (a stop drops its lines without telling it), so it waits out
    // N's lease before answering.
    let mut cfg = ClientConfig::new(vec![cluster.node(reader).addr]);
    cfg.request_timeout = Duration::from_secs(30);
    let asked = Instant::now();
    let r = Client::new(cfg)
        .expect("client")
        .cache_get(key)
        .await
        .expect("read through another node");
    eprintln!("cache read elsewhere answered after {:?}", asked.elapsed());
    assert_eq!(r.value, json!(3));
}
