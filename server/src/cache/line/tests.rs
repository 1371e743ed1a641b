use std::time::{Duration, Instant};

use dsync_api::cache::LineState;

use super::*;

const LEASE: Duration = Duration::from_millis(1000);

fn line(value: &str, state: LineState, until: Instant) -> Line {
    Line {
        value: value.into(),
        version: 1,
        state,
        lease_until: until,
        grant: 7,
        dirty: None,
    }
}

fn store(entries: usize) -> LineStore {
    LineStore::new(entries, 1 << 20, LEASE)
}

fn put(s: &mut LineStore, key: &str, l: Line, now: Instant) -> bool {
    let (t, _) = s.begin(key, false);
    s.finish(key, t, Some(l), false, now)
}

#[test]
fn a_line_is_never_served_past_its_lease() {
    let t0 = Instant::now();
    let mut s = store(10);
    assert!(put(&mut s, "k", line("1", LineState::E, t0 + LEASE), t0));
    assert!(matches!(
        s.get("k", t0 + LEASE / 4),
        Lookup::Hit { renew: false, .. }
    ));
    assert!(matches!(
        s.get("k", t0 + LEASE * 3 / 4),
        Lookup::Hit { renew: true, .. }
    ));
    assert_eq!(s.get("k", t0 + LEASE), Lookup::Miss);
    assert_eq!(s.len(), 0);
}

#[test]
fn renewal_extends_only_the_same_grant() {
    let t0 = Instant::now();
    let mut s = store(10);
    put(&mut s, "k", line("1", LineState::S, t0 + LEASE), t0);
    s.renew("k", 99, t0 + LEASE * 5);
    assert_eq!(s.get("k", t0 + LEASE * 2), Lookup::Miss);
    put(&mut s, "k", line("1", LineState::S, t0 + LEASE), t0);
    s.renew("k", 7, t0 + LEASE * 5);
    assert!(matches!(s.get("k", t0 + LEASE * 2), Lookup::Hit { .. }));
}

#[test]
fn lru_evicts_the_least_recently_used_line() {
    let t0 = Instant::now();
    let until = t0 + LEASE;
    let mut s = store(3);
    for k in ["a", "b", "c"] {
        put(&mut s, k, line(k, LineState::S, until), t0);
    }
    assert!(matches!(s.get("a", t0), Lookup::Hit { .. }));
    put(&mut s, "d", line("d", LineState::S, until), t0);
    assert_eq!(s.lru_order(), ["c", "a", "d"]);
    assert_eq!(s.get("b", t0), Lookup::Miss);
    assert_eq!(s.evictions, 1);
}

#[test]
fn byte_capacity_evicts_too() {
    let t0 = Instant::now();
    let mut s = LineStore::new(100, 300, LEASE);
    put(
        &mut s,
        "a",
        line(&"x".repeat(100), LineState::S, t0 + LEASE),
        t0,
    );
    put(
        &mut s,
        "b",
        line(&"y".repeat(100), LineState::S, t0 + LEASE),
        t0,
    );
    assert_eq!(s.len(), 1);
    assert!(s.bytes() <= 300);
    // A line larger than the whole cache is not kept.
    assert!(!put(
        &mut s,
        "c",
        line(&"z".repeat(400), LineState::S, t0 + LEASE),
        t0
    ));
}

#[test]
fn invalidation_makes_the_key_invalid_and_voids_answers_in_flight() {
    let t0 = Instant::now();
    let mut s = store(10);
    put(&mut s, "k", line("1", LineState::S, t0 + LEASE), t0);
    assert_eq!(s.invalidate("k"), (true, vec![]));
    assert_eq!(s.get("k", t0), Lookup::Miss);
    // A grant sent before an invalidation but received after it.
    let (t, _) = s.begin("k", false);
    s.invalidate("k");
    let installed = s.finish("k", t, Some(line("1", LineState::S, t0 + LEASE)), false, t0);
    assert!(!installed);
    assert_eq!(s.get("k", t0), Lookup::Miss);
}

#[test]
fn downgrade_turns_exclusive_into_shared_and_voids_pending_grants() {
    let t0 = Instant::now();
    let mut s = store(10);
    put(&mut s, "k", line("1", LineState::E, t0 + LEASE), t0);
    assert_eq!(s.downgrade("k"), (true, vec![]));
    assert!(matches!(
        s.get("k", t0),
        Lookup::Hit {
            state: LineState::S,
            ..
        }
    ));
    assert_eq!(s.by_state().s, 1);
    assert_eq!(s.by_state().e, 0);
    let (t, _) = s.begin("x", false);
    assert_eq!(s.downgrade("x"), (false, vec![]));
    assert!(!s.finish("x", t, Some(line("1", LineState::E, t0 + LEASE)), false, t0));
}

#[test]
fn a_write_voids_reads_around_it_but_keeps_its_own_line() {
    let t0 = Instant::now();
    let mut s = store(10);
    put(&mut s, "k", line("old", LineState::S, t0 + LEASE), t0);
    let (read_before, _) = s.begin("k", false);
    let (w, _) = s.begin("k", true);
    assert_eq!(
        s.get("k", t0),
        Lookup::Miss,
        "the writer drops its own copy"
    );
    let (read_during, _) = s.begin("k", false);
    assert!(!s.finish(
        "k",
        read_before,
        Some(line("old", LineState::S, t0 + LEASE)),
        false,
        t0
    ));
    assert!(s.finish(
        "k",
        w,
        Some(line("new", LineState::M, t0 + LEASE)),
        true,
        t0
    ));
    // A read answered before the write but received after it.
    assert!(!s.finish(
        "k",
        read_during,
        Some(line("old", LineState::S, t0 + LEASE)),
        false,
        t0
    ));
    assert!(
        matches!(s.get("k", t0), Lookup::Hit { ref value, state: LineState::M, .. } if value == "new")
    );
}

#[test]
fn write_back_keeps_writes_dirty_until_flushed() {
    let t0 = Instant::now();
    let mut s = store(10);
    put(&mut s, "k", line("1", LineState::S, t0 + LEASE), t0);
    assert!(
        !s.write_local("k", "2", t0),
        "S lines must ask the directory"
    );
    put(&mut s, "k", line("1", LineState::E, t0 + LEASE), t0);
    assert!(
        !s.write_local("k", "2", t0 + LEASE * 3 / 4),
        "too little lease left"
    );
    assert!(s.write_local("k", "2", t0));
    assert!(s.write_local("k", "3", t0));
    let d = s.dirty();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].value, "3");
    s.flushed("k", d[0].seq - 1, 40);
    assert_eq!(
        s.dirty().len(),
        1,
        "an older flush leaves the newer write dirty"
    );
    s.flushed("k", d[0].seq, 41);
    assert!(s.dirty().is_empty());
    assert!(matches!(
        s.get("k", t0),
        Lookup::Hit {
            version: 41,
            state: LineState::M,
            ..
        }
    ));
    // A downgrade hands a dirty value back for flushing.
    s.write_local("k", "4", t0);
    let (held, dirty) = s.downgrade("k");
    assert!(held);
    assert_eq!(
        dirty.into_iter().map(|d| d.value).collect::<Vec<_>>(),
        ["4"]
    );
}

#[test]
fn clear_drops_everything_and_returns_unflushed_writes() {
    let t0 = Instant::now();
    let mut s = store(10);
    put(&mut s, "a", line("1", LineState::E, t0 + LEASE), t0);
    put(&mut s, "b", line("1", LineState::S, t0 + LEASE), t0);
    s.write_local("a", "2", t0);
    let (t, _) = s.begin("c", false);
    let dirty = s.clear();
    assert_eq!(dirty.len(), 1);
    assert_eq!(s.len(), 0);
    assert_eq!(s.by_state(), Default::default());
    assert!(!s.finish("c", t, Some(line("1", LineState::E, t0 + LEASE)), false, t0));
    assert_eq!(s.list(t0, 10).0.len(), 0);
}

#[test]
fn an_evicted_write_is_kept_until_committed_or_claimed() {
    let t0 = Instant::now();
    let mut s = store(1);
    put(&mut s, "a", line("1", LineState::E, t0 + LEASE), t0);
    assert!(s.write_local("a", "2", t0));
    put(&mut s, "b", line("1", LineState::S, t0 + LEASE), t0);
    assert_eq!(s.get("a", t0), Lookup::Miss);
    // A downgrade of the evicted key hands its write over for committing.
    let (held, dirty) = s.downgrade("a");
    assert!(!held);
    assert_eq!(
        dirty.into_iter().map(|d| d.value).collect::<Vec<_>>(),
        ["2"]
    );
    assert!(s.take_leaving().is_empty(), "claimed once only");
    put(&mut s, "a", line("1", LineState::E, t0 + LEASE), t0);
    s.write_local("a", "3", t0);
    put(&mut s, "c", line("1", LineState::S, t0 + LEASE), t0);
    let left = s.take_leaving();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].value, "3");
    // A dirty line whose lease ended is not served, but its write is kept.
    put(&mut s, "d", line("1", LineState::E, t0 + LEASE), t0);
    s.write_local("d", "9", t0);
    assert_eq!(s.get("d", t0 + LEASE), Lookup::Miss);
    assert_eq!(s.take_leaving_key("d").map(|d| d.value), Some("9".into()));
    // Evicted and live writes of one key come back oldest first.
    let mut s = store(1);
    put(&mut s, "a", line("1", LineState::E, t0 + LEASE), t0);
    s.write_local("a", "old", t0);
    put(&mut s, "b", line("1", LineState::S, t0 + LEASE), t0);
    put(&mut s, "a", line("1", LineState::E, t0 + LEASE), t0);
    s.write_local("a", "new", t0);
    let (held, dirty) = s.invalidate("a");
    assert!(held);
    assert_eq!(
        dirty.into_iter().map(|d| d.value).collect::<Vec<_>>(),
        ["old", "new"]
    );
}

#[test]
fn a_local_write_voids_reads_in_flight() {
    let t0 = Instant::now();
    let mut s = store(10);
    let (late, _) = s.begin("k", false);
    put(&mut s, "k", line("old", LineState::E, t0 + LEASE), t0);
    assert!(s.write_local("k", "new", t0));
    // The other read was answered with the old value before the write.
    assert!(!s.finish(
        "k",
        late,
        Some(line("old", LineState::E, t0 + LEASE)),
        false,
        t0
    ));
    assert!(matches!(s.get("k", t0), Lookup::Hit { ref value, .. } if value == "new"));
}
