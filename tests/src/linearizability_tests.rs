//! The checker's own tests: histories it must accept and ones it must reject.

use super::*;

fn w(v: &str, call: u64, ret: Option<u64>) -> Op {
    Op {
        key: "k".into(),
        kind: Kind::Write(Some(v.into())),
        call,
        ret,
        note: String::new(),
    }
}

fn r(v: Option<&str>, call: u64, ret: u64) -> Op {
    Op {
        key: "k".into(),
        kind: Kind::Read(v.map(str::to_string)),
        call,
        ret: Some(ret),
        note: String::new(),
    }
}

#[test]
fn sequential_history_is_linearizable() {
    let h = [
        r(None, 0, 1),
        w("a", 2, Some(3)),
        r(Some("a"), 4, 5),
        w("b", 6, Some(7)),
        r(Some("b"), 8, 9),
    ];
    assert!(check(&h).is_ok());
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    for seen in [Some("a"), Some("b")] {
        let h = [w("a", 0, Some(1)), w("b", 10, Some(20)), r(seen, 12, 15)];
        assert!(check(&h).is_ok(), "{seen:?}");
    }
}

#[test]
fn a_stale_read_after_a_completed_write_is_flagged() {
    let h = [
        w("a", 0, Some(10)),
        w("b", 20, Some(30)),
        r(Some("a"), 40, 50),
    ];
    let v = check(&h).unwrap_err();
    assert_eq!(v.key, "k");
}

#[test]
fn new_then_old_inversion_is_flagged() {
    // Both reads overlap the write, but once a read saw "b" a later read
    // cannot see the value before it.
    let h = [
        w("a", 0, Some(1)),
        w("b", 5, Some(100)),
        r(Some("b"), 10, 20),
        r(Some("a"), 30, 40),
    ];
    assert!(check(&h).is_err());
}

#[test]
fn a_value_nobody_wrote_is_flagged() {
    assert!(check(&[r(Some("ghost"), 0, 1)]).is_err());
}

#[test]
fn unknown_writes_may_or_may_not_take_effect() {
    let took = [w("x", 5, None), r(Some("x"), 50, 60)];
    assert!(check(&took).is_ok());
    let did_not = [w("x", 5, None), r(None, 50, 60)];
    assert!(check(&did_not).is_ok());
    // But not before it was called.
    let early = [r(Some("x"), 0, 2), w("x", 5, None)];
    assert!(check(&early).is_err());
    // And once observed, it cannot be undone by nothing.
    let undone = [w("x", 5, None), r(Some("x"), 50, 60), r(None, 70, 80)];
    assert!(check(&undone).is_err());
}

#[test]
fn keys_are_checked_independently() {
    let mut other = w("z", 0, Some(1));
    other.key = "other".into();
    let h = [other, r(None, 5, 6)];
    assert!(check(&h).is_ok());
}

#[test]
fn many_concurrent_operations_stay_tractable() {
    // Six clients, 400 operations, heavy overlap.
    let mut h = Vec::new();
    let mut last = None;
    for i in 0..400u64 {
        let t = i * 10;
        if i % 3 == 0 {
            let v = format!("v{i}");
            h.push(w(&v, t, Some(t + 55)));
            last = Some(v);
        } else {
            h.push(r(last.as_deref(), t, t + 55));
        }
    }
    assert!(check(&h).is_ok());
}
fn cas(expect: Option<&str>, new: &str, call: u64, ret: Option<u64>) -> Op {
    Op {
        key: "k".into(),
        kind: Kind::Cas {
            expect: expect.map(str::to_string),
            new: Some(new.into()),
        },
        call,
        ret,
        note: String::new(),
    }
}

fn refused(expect: Option<&str>, call: u64, ret: u64) -> Op {
    Op {
        key: "k".into(),
        kind: Kind::CasRefused {
            expect: expect.map(str::to_string),
        },
        call,
        ret: Some(ret),
        note: String::new(),
    }
}

#[test]
fn compare_and_set_follows_the_register() {
    let h = [
        cas(None, "a", 0, Some(1)),
        cas(Some("a"), "b", 2, Some(3)),
        refused(Some("a"), 4, 5),
        r(Some("b"), 6, 7),
    ];
    assert!(check(&h).is_ok());
}

#[test]
fn a_cas_that_succeeds_on_a_stale_value_is_flagged() {
    // "a" was overwritten by "b" before the CAS was even sent.
    let h = [
        w("a", 0, Some(1)),
        w("b", 2, Some(3)),
        cas(Some("a"), "c", 4, Some(5)),
    ];
    assert!(check(&h).is_err());
}

#[test]
fn a_cas_refused_while_the_value_matched_is_flagged() {
    let h = [
        w("a", 0, Some(1)),
        refused(Some("a"), 2, 3),
        r(Some("a"), 4, 5),
    ];
    assert!(check(&h).is_err());
}

#[test]
fn a_refused_cas_can_be_explained_by_an_unknown_write_nobody_read() {
    // The unknown write of "x" must have happened for the CAS expecting
    // "a" to be refused; nobody read "x" and "b" overwrote it.
    let h = [
        w("a", 0, Some(1)),
        w("x", 2, None),
        refused(Some("a"), 10, 11),
        w("b", 20, Some(21)),
        r(Some("b"), 30, 31),
    ];
    assert!(check(&h).is_ok());
    // Without the unknown write, the refusal is a violation.
    let h = [h[0].clone(), h[2].clone(), h[3].clone(), h[4].clone()];
    assert!(check(&h).is_err());
}

#[test]
fn an_unknown_cas_may_or_may_not_take_effect() {
    let took = [
        w("a", 0, Some(1)),
        cas(Some("a"), "b", 2, None),
        r(Some("b"), 9, 10),
    ];
    assert!(check(&took).is_ok());
    let did_not = [
        w("a", 0, Some(1)),
        cas(Some("a"), "b", 2, None),
        r(Some("a"), 9, 10),
    ];
    assert!(check(&did_not).is_ok());
    // It could only apply on "a".
    let wrong = [
        w("z", 0, Some(1)),
        cas(Some("a"), "b", 2, None),
        r(Some("b"), 9, 10),
    ];
    assert!(check(&wrong).is_err());
}

/// Kill-all histories: many unknown writes nobody read, all available
/// for the rest of the run, and refused CASes that need one of them.
fn many_unknown_writes(unknown: u64) -> Vec<Op> {
    let mut h: Vec<Op> = (0..unknown).map(|i| w(&format!("u{i}"), i, None)).collect();
    for round in 0..20u64 {
        let t = 1_000 + round * 100;
        let a = format!("a{round}");
        h.push(w(&a, t, Some(t + 1)));
        h.push(refused(Some(&a), t + 10, t + 11));
    }
    h
}

#[test]
fn a_history_with_a_hundred_unknown_writes_is_decided() {
    let h = many_unknown_writes(100);
    assert_eq!(verdict(&h, None), Some(true));
    // Twenty refusals need twenty distinct unknown writes: with nineteen
    // of them the history is not linearizable, and the checker says so
    // rather than running out of budget.
    let mut short = many_unknown_writes(19);
    assert_eq!(verdict(&short, None), Some(false));
    short.push(w("late", 100_000, None));
    assert_eq!(
        verdict(&short, None),
        Some(false),
        "called after the last refusal"
    );
    let mut ghost = many_unknown_writes(100);
    ghost.push(r(Some("ghost"), 50_000, 50_001));
    assert_eq!(verdict(&ghost, None), Some(false));
}
