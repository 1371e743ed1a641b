//! Writes applied at most once however often a client resends them.
//!
//! A client that lost a write's answer (its connection broke, or a follower
//! reported that its forward to the leader did) cannot tell whether the
//! write was applied. It sends the write again with the same request id
//! (`x-dsync-request-id`); the node wraps the command as
//! [`Command::Once`] under a key derived from that id *and* the command, and
//! the state machine answers a key it has applied before with the answer it
//! gave then. Both copies may be in the log (the first one committed by a new
//! leader after the old one died): whichever applies second is the repeat.
//!
//! The answers are replicated state: eviction depends only on the entries'
//! leader clock and the table's size, so every node evicts the same keys.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{CmdOutput, Command};
use crate::state::Once;

/// How long an answer is kept, on the leader's clock. It covers a client's
/// whole retry budget (15 s by default) plus a forward's timeout.
pub const WINDOW_MS: u64 = 60_000;

/// Most answers kept; past it the oldest go first, whatever their age. At
/// 20,000 deduplicated writes/s this still keeps about 25 s of them.
pub const MAX_ANSWERS: usize = 500_000;

/// Most bytes of answers kept (their encoded size plus a fixed overhead),
/// so that answers carrying many ids cannot grow the table past this.
pub const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// What one kept answer costs besides its encoding (key, clock, indexes).
const OVERHEAD: u64 = 64;

/// Longest request id accepted, in bytes.
pub const MAX_REQUEST_ID: usize = 64;

/// Wraps `cmd` so that it applies at most once for this request id.
pub fn once(request_id: Option<&str>, cmd: Command) -> Command {
    match request_id {
        Some(id) => Command::Once(Once {
            key: key(id, &cmd),
            cmd: Box::new(cmd),
        }),
        None => cmd,
    }
}

/// The id alone is not the key: a client that reuses an id for a different
/// command gets that command applied, not the other one's answer.
fn key(request_id: &str, cmd: &Command) -> u128 {
    let mut h = Sha256::new();
    h.update(request_id.as_bytes());
    h.update([0xff]);
    // Serializing a command into memory cannot fail.
    h.update(bincode::serialize(cmd).unwrap_or_default());
    let digest = h.finalize();
    u128::from_le_bytes(digest[..16].try_into().expect("16 bytes"))
}

/// Whether `id` is a request id a client may send: 1 to 64 bytes of
/// letters, digits and `-_.:` (a UUID, with or without dashes, fits).
pub fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// The answers of recently applied [`Command::Once`] writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recent {
    // Hashed, not ordered: `order` keeps the order, and a lookup per
    // deduplicated write was a B-tree walk of cache misses.
    answers: HashMap<u128, CmdOutput>,
    /// Keys in the order they were applied: leader clock, key, cost.
    order: VecDeque<(u64, u128, u64)>,
    /// The sum of the costs in `order`.
    bytes: u64,
    /// Resends answered from the table since the cluster began.
    pub repeats: u64,
}

impl Recent {
    /// The answer given when `key` was applied, if it is still kept.
    pub fn answer(&self, key: u128) -> Option<&CmdOutput> {
        self.answers.get(&key)
    }

    /// The kept answer for a resend of `key`, counted as a repeat.
    pub fn repeat(&mut self, key: u128) -> Option<CmdOutput> {
        let out = self.answers.get(&key).cloned()?;
        self.repeats += 1;
        Some(out)
    }

    /// Keeps the answer of a first application at leader clock `now_ms`,
    /// then forgets what has aged out.
    pub fn remember(&mut self, key: u128, now_ms: u64, out: CmdOutput) {
        // The encoding is a function of the answer alone, so every node
        // computes the same cost.
        let cost = OVERHEAD + bincode::serialized_size(&out).unwrap_or(0);
        if self.answers.insert(key, out).is_none() {
            self.order.push_back((now_ms, key, cost));
            self.bytes += cost;
        }
        while let Some(&(at, oldest, cost)) = self.order.front() {
            let full = self.order.len() > MAX_ANSWERS || self.bytes > MAX_ANSWER_BYTES;
            if !full && at + WINDOW_MS > now_ms {
                break;
            }
            self.order.pop_front();
            self.bytes -= cost;
            self.answers.remove(&oldest);
        }
    }

    /// How many answers are kept.
    pub fn kept(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::KvPut;
    use crate::state::{CmdValue, Request, StateData};

    fn put(key: &str, value: &str) -> Command {
        Command::KvPut(KvPut {
            key: key.into(),
            value: value.into(),
            if_version: None,
            fence: None,
        })
    }

    fn apply(s: &mut StateData, now_ms: u64, cmd: Command) -> CmdOutput {
        s.apply(Request {
            now_ms,
            cmds: vec![cmd],
        })
        .0
        .remove(0)
    }

    #[test]
    fn a_resent_write_is_applied_once_and_answered_the_same() {
        let mut s = StateData::default();
        let first = apply(&mut s, 1, once(Some("r1"), put("k", "1")));
        assert!(apply(&mut s, 2, put("k", "2")).is_ok());
        let again = apply(&mut s, 3, once(Some("r1"), put("k", "1")));
        assert_eq!(first, again);
        assert_eq!(s.recent.repeats, 1);
        assert_eq!(
            s.kv.get("k").unwrap().value,
            "2",
            "the resend overwrote a later write"
        );
    }

    #[test]
    fn a_resent_compare_and_set_is_not_refused_by_its_own_first_attempt() {
        let mut s = StateData::default();
        let Ok(CmdValue::Version(v)) = apply(&mut s, 1, put("k", "0")) else {
            panic!("put")
        };
        let cas = |s: &mut StateData| {
            let cmd = Command::KvPut(KvPut {
                key: "k".into(),
                value: "1".into(),
                if_version: Some(v),
                fence: None,
            });
            apply(s, 2, once(Some("cas"), cmd))
        };
        assert!(cas(&mut s).is_ok());
        assert!(cas(&mut s).is_ok(), "the resend was refused as a conflict");
    }

    #[test]
    fn the_same_id_on_a_different_command_applies_that_command() {
        let mut s = StateData::default();
        assert!(apply(&mut s, 1, once(Some("r1"), put("a", "1"))).is_ok());
        assert!(apply(&mut s, 2, once(Some("r1"), put("b", "1"))).is_ok());
        assert!(s.kv.get("b").is_some());
        assert_eq!(s.recent.kept(), 2);
    }

    #[test]
    fn answers_age_out_on_the_leader_clock_and_past_the_cap() {
        let mut r = Recent::default();
        r.remember(1, 0, Ok(CmdValue::Done));
        r.remember(2, WINDOW_MS - 1, Ok(CmdValue::Done));
        assert!(r.answer(1).is_some());
        r.remember(3, WINDOW_MS, Ok(CmdValue::Done));
        assert!(r.answer(1).is_none(), "older than the window");
        assert!(r.answer(2).is_some() && r.answer(3).is_some());

        let mut r = Recent::default();
        for k in 0..=MAX_ANSWERS as u128 {
            r.remember(k, 5, Ok(CmdValue::Done));
        }
        assert_eq!(r.kept(), MAX_ANSWERS);
        assert!(r.answer(0).is_none() && r.answer(1).is_some());
    }

    #[test]
    fn answers_with_many_ids_are_bounded_by_bytes() {
        let mut r = Recent::default();
        let big = || Ok(CmdValue::Ids((0..1000).collect()));
        for k in 0..20_000u128 {
            r.remember(k, 5, big());
        }
        assert!(r.bytes <= MAX_ANSWER_BYTES, "{} bytes kept", r.bytes);
        assert!(r.kept() < 20_000 && r.answer(19_999).is_some());
        let sum: u64 = r.order.iter().map(|e| e.2).sum();
        assert_eq!(sum, r.bytes);
    }

    #[test]
    fn request_ids_are_bounded_printable_tokens() {
        assert!(valid_request_id("0123456789abcdef0123456789abcdef"));
        assert!(valid_request_id("6f1c2a9e-1b2c-4d3e-8f90-a1b2c3d4e5f6"));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id(&"a".repeat(MAX_REQUEST_ID + 1)));
        assert!(!valid_request_id("has space"));
        assert!(!valid_request_id("é"));
    }
}
