//! A command clients cause, with the answer it gives. Each domain's
//! command module builds them (`command::kv::put`, `command::locks::acquire`,
//! `command::queue::enqueue`, `command::cluster::start_job`); a caller
//! proposes one and gets that answer typed. Reading it here is the one place
//! a [`CmdValue`] of another kind is met (a bug, see [`Unexpected`]),
//! instead of a fallback arm at every caller.

use super::{dedup, CmdValue, Command};

/// A command and how to read its answer.
#[derive(Debug)]
pub struct Proposal<A> {
    cmd: Command,
    answer: Answer<A>,
}

/// How to read the answer of one kind of command: the value, or the value
/// of another kind given back.
#[derive(Debug)]
pub struct Answer<A>(fn(CmdValue) -> Result<A, CmdValue>);

impl<A> Clone for Answer<A> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A> Copy for Answer<A> {}

/// An answer of another kind than the command gives: the state machine and
/// [`Proposal`] disagree, which is a bug of this build.
#[derive(Debug)]
pub struct Unexpected(pub CmdValue);

impl<A> Answer<A> {
    pub fn read(self, v: CmdValue) -> Result<A, Unexpected> {
        (self.0)(v).map_err(Unexpected)
    }
}

impl<A> Proposal<A> {
    pub(super) fn new(cmd: Command, answer: fn(CmdValue) -> Result<A, CmdValue>) -> Self {
        Self {
            cmd,
            answer: Answer(answer),
        }
    }

    /// The same command, applied at most once for `request_id` (see
    /// [`dedup::once`]); the answer is the same kind.
    pub fn once(self, request_id: Option<&str>) -> Self {
        Self {
            cmd: dedup::once(request_id, self.cmd),
            answer: self.answer,
        }
    }

    pub fn split(self) -> (Command, Answer<A>) {
        (self.cmd, self.answer)
    }
}

pub(super) fn version(v: CmdValue) -> Result<u64, CmdValue> {
    match v {
        CmdValue::Version(n) => Ok(n),
        other => Err(other),
    }
}

pub(super) fn count(v: CmdValue) -> Result<u64, CmdValue> {
    match v {
        CmdValue::Count(n) => Ok(n),
        other => Err(other),
    }
}

pub(super) fn done(v: CmdValue) -> Result<(), CmdValue> {
    match v {
        CmdValue::Done => Ok(()),
        other => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use dsync_api::locks::LockMode;

    use super::*;
    use crate::state::command::{cluster, kv, locks, queue};
    use crate::state::jobs::JobStep;
    use crate::state::locks::Acquired;
    use crate::state::queue::receipt;
    use crate::state::{Request, StateData};

    /// Applies `p` as the state machine does and reads its answer the way
    /// a caller would: each constructor's answer kind is the one its
    /// command gives.
    fn apply<A>(s: &mut StateData, p: Proposal<A>) -> A {
        let (cmd, answer) = p.split();
        let out = s.apply(Request {
            now_ms: 1_000,
            cmds: vec![cmd],
        });
        let value = out.0.into_iter().next().unwrap().expect("applied");
        answer.read(value).expect("the answer of its kind")
    }

    #[test]
    fn each_command_answers_the_kind_its_constructor_says() {
        let mut s = StateData::default();
        let v = apply(&mut s, kv::put("k".into(), "1".into(), None, None));
        assert_eq!(v, s.kv.get("k").unwrap().version);
        assert!(apply(&mut s, kv::delete("k".into(), None).once(Some("r1"))));

        let a = locks::acquire("l".into(), "o".into(), LockMode::Exclusive, 5_000, 0);
        let Acquired::Granted(h) = apply(&mut s, a) else {
            panic!("a free lock is granted");
        };
        let b = locks::acquire("l".into(), "p".into(), LockMode::Exclusive, 5_000, 1_000);
        assert!(matches!(apply(&mut s, b), Acquired::Queued { .. }));
        let renewed = apply(
            &mut s,
            locks::keepalive("l".into(), "o".into(), h.token, None),
        );
        assert_eq!(renewed.token, h.token);
        apply(&mut s, locks::release("l".into(), "o".into(), h.token));
        assert_eq!(apply(&mut s, locks::force_release("l".into())), vec!["p"]);

        let msg = crate::state::queue::Incoming {
            payload: "\"x\"".into(),
            delay_ms: 0,
            dedup_id: None,
        };
        let ids = apply(&mut s, queue::enqueue("t".into(), vec![msg]));
        assert_eq!(ids.len(), 1);
        let got = apply(&mut s, queue::consume("t".into(), "c".into(), 10, None));
        let receipts: Vec<String> = got.iter().map(|f| receipt(f.msg.id, f.delivery)).collect();
        assert_eq!(
            apply(&mut s, queue::extend("t".into(), receipts.clone(), 9)),
            1
        );
        assert_eq!(apply(&mut s, queue::nack("t".into(), receipts, 0)), 1);
        let got = apply(&mut s, queue::consume("t".into(), "c".into(), 10, None));
        let receipts = got.iter().map(|f| receipt(f.msg.id, f.delivery)).collect();
        assert_eq!(apply(&mut s, queue::ack("t".into(), receipts)), 1);
        assert_eq!(apply(&mut s, queue::redrive("t".into())), 0);
        let settings = dsync_api::queue::TopicSettings::default();
        apply(&mut s, queue::configure("t".into(), &settings));

        let start = JobStep::Start {
            kind: "rebalance".into(),
            moves: Vec::new(),
        };
        assert!(apply(&mut s, cluster::start_job(start)) > 0);
    }

    #[test]
    fn an_answer_of_another_kind_is_reported_not_taken() {
        let (_, answer) = kv::put("k".into(), "1".into(), None, None).split();
        let Err(Unexpected(v)) = answer.read(CmdValue::Done) else {
            panic!("Done is not a version");
        };
        assert_eq!(v, CmdValue::Done);
    }
}
