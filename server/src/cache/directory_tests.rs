use std::time::{Duration, Instant};

use dsync_api::cache::LineState;

use super::*;

const LEASE: Duration = Duration::from_millis(1000);

#[test]
fn first_reader_is_exclusive_then_everyone_shares() {
    let t0 = Instant::now();
    let mut d = Directory::default();
    assert_eq!(d.read_plan("k", 1, t0), None);
    assert_eq!(d.grant_read("k", 1, t0, LEASE).state, LineState::E);
    assert_eq!(d.read_plan("k", 2, t0), Some((1, t0 + LEASE)));
    d.downgraded("k", 1, true);
    assert_eq!(d.grant_read("k", 2, t0, LEASE).state, LineState::S);
    d.check(t0).unwrap();
    let states: Vec<_> = d
        .holders("k", t0)
        .iter()
        .map(|(n, h)| (*n, h.state))
        .collect();
    assert_eq!(states, [(1, LineState::S), (2, LineState::S)]);
}

#[test]
fn an_unanswered_downgrade_removes_the_holder() {
    let t0 = Instant::now();
    let mut d = Directory::default();
    d.grant_read("k", 1, t0, LEASE);
    d.downgraded("k", 1, false);
    assert_eq!(d.grant_read("k", 2, t0, LEASE).state, LineState::E);
}

#[test]
fn a_write_invalidates_every_other_copy_and_the_writer_owns_m() {
    let t0 = Instant::now();
    let mut d = Directory::default();
    d.grant_read("k", 1, t0, LEASE);
    d.downgraded("k", 1, true);
    d.grant_read("k", 2, t0, LEASE);
    d.grant_read("k", 3, t0, LEASE);
    let targets: Vec<u64> = d.write_plan("k", 3, t0).iter().map(|(n, _)| *n).collect();
    assert_eq!(targets, [1, 2]);
    for n in targets {
        d.remove("k", n);
    }
    let h = d.grant_write("k", 3, t0, LEASE);
    assert_eq!(h.state, LineState::M);
    assert_eq!(d.holders("k", t0).len(), 1);
    d.check(t0).unwrap();
}

#[test]
fn expired_holders_are_forgotten_and_renewal_needs_the_grant() {
    let t0 = Instant::now();
    let mut d = Directory::default();
    let g = d.grant_read("k", 1, t0, LEASE).grant;
    assert!(!d.renew("k", 1, g + 1, t0 + LEASE * 2));
    assert!(d.renew("k", 1, g, t0 + LEASE * 2));
    assert_eq!(d.holders("k", t0 + LEASE * 3 / 2).len(), 1);
    assert!(d.holders("k", t0 + LEASE * 2).is_empty());
    assert!(!d.renew("k", 1, g, t0 + LEASE * 3));
}

#[tokio::test]
async fn key_locks_serialize_one_key_only() {
    let locks = KeyLocks::default();
    let a = locks.lock("a").await;
    // Another key is free while "a" is held.
    let b = tokio::time::timeout(Duration::from_millis(100), locks.lock("b")).await;
    assert!(b.is_ok());
    drop(b);
    let again = tokio::time::timeout(Duration::from_millis(50), locks.lock("a")).await;
    assert!(again.is_err(), "a second holder of one key must wait");
    drop(a);
    assert!(
        locks.locks.lock().unwrap().is_empty(),
        "entries are cleaned up"
    );
    let _a = tokio::time::timeout(Duration::from_millis(100), locks.lock("a"))
        .await
        .expect("free after release");
}

#[tokio::test]
async fn kv_writes_share_a_key_and_cache_operations_wait_for_them() {
    let locks = KeyLocks::default();
    let w1 = locks.shared("k").await;
    let w2 = tokio::time::timeout(Duration::from_millis(100), locks.shared("k"))
        .await
        .expect("two KV writes of one key run together");
    let read_miss = locks.lock("k");
    tokio::pin!(read_miss);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), &mut read_miss)
            .await
            .is_err(),
        "a cache operation waits while KV writes are in progress"
    );
    // Arrival order: a KV write after the waiting cache operation waits too.
    let w3 = tokio::time::timeout(Duration::from_millis(50), locks.shared("k")).await;
    assert!(
        w3.is_err(),
        "no KV write overtakes a waiting cache operation"
    );
    drop(w1);
    drop(w2);
    let g = tokio::time::timeout(Duration::from_millis(100), read_miss)
        .await
        .expect("the cache operation runs once they committed");
    drop(g);
    assert!(
        locks.locks.lock().unwrap().is_empty(),
        "entries are cleaned up"
    );
}
