//! The commands clients cause, each built with the answer it gives, by
//! domain (`kv::put`, `locks::acquire`, `queue::enqueue`, `shards::job`).
//! A caller proposes a [`Proposal`] and gets that answer typed; reading it
//! here is the one place a [`CmdValue`] of another kind is met (a bug, see
//! [`Unexpected`]), instead of a fallback arm at every caller. The log keeps
//! carrying the flat [`Command`], so entries written by earlier releases
//! read the same.

use super::{dedup, locks as lock_state, queue as queue_state, CmdValue, Command};

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
    fn new(cmd: Command, answer: fn(CmdValue) -> Result<A, CmdValue>) -> Self {
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

    pub fn command(&self) -> &Command {
        &self.cmd
    }

    pub fn split(self) -> (Command, Answer<A>) {
        (self.cmd, self.answer)
    }
}

fn version(v: CmdValue) -> Result<u64, CmdValue> {
    match v {
        CmdValue::Version(n) => Ok(n),
        other => Err(other),
    }
}

fn count(v: CmdValue) -> Result<u64, CmdValue> {
    match v {
        CmdValue::Count(n) => Ok(n),
        other => Err(other),
    }
}

fn done(v: CmdValue) -> Result<(), CmdValue> {
    match v {
        CmdValue::Done => Ok(()),
        other => Err(other),
    }
}

pub mod kv {
    use super::*;

    /// Answers the key's new version.
    pub fn put(
        key: String,
        value: String,
        if_version: Option<u64>,
        fence: Option<(String, u64)>,
    ) -> Proposal<u64> {
        let cmd = Command::KvPut {
            key,
            value,
            if_version,
            fence,
        };
        Proposal::new(cmd, version)
    }

    /// Answers whether a value was removed.
    pub fn delete(key: String, if_version: Option<u64>) -> Proposal<bool> {
        Proposal::new(Command::KvDelete { key, if_version }, |v| match v {
            CmdValue::Deleted(d) => Ok(d),
            other => Err(other),
        })
    }
}

pub mod locks {
    use dsync_api::locks::LockMode;

    use super::*;

    /// Answers the grant, or the place in the queue of waiters.
    pub fn acquire(
        name: String,
        owner: String,
        mode: LockMode,
        ttl_ms: u64,
        wait_ms: u64,
    ) -> Proposal<lock_state::Acquired> {
        let cmd = Command::LockAcquire {
            name,
            owner,
            mode,
            ttl_ms,
            wait_ms,
        };
        Proposal::new(cmd, |v| match v {
            CmdValue::Granted(h) => Ok(lock_state::Acquired::Granted(h)),
            CmdValue::Queued { seq } => Ok(lock_state::Acquired::Queued { seq }),
            other => Err(other),
        })
    }

    pub fn release(name: String, owner: String, token: u64) -> Proposal<()> {
        Proposal::new(Command::LockRelease { name, owner, token }, done)
    }

    /// Answers the renewed grant.
    pub fn keepalive(
        name: String,
        owner: String,
        token: u64,
        ttl_ms: Option<u64>,
    ) -> Proposal<lock_state::Holder> {
        let cmd = Command::LockKeepalive {
            name,
            owner,
            token,
            ttl_ms,
        };
        Proposal::new(cmd, |v| match v {
            CmdValue::Granted(h) => Ok(h),
            other => Err(other),
        })
    }

    /// Answers the owners evicted.
    pub fn force_release(name: String) -> Proposal<Vec<String>> {
        Proposal::new(Command::LockForceRelease { name }, |v| match v {
            CmdValue::Released(owners) => Ok(owners),
            other => Err(other),
        })
    }
}

pub mod queue {
    use super::*;

    /// Answers the new messages' ids, in order.
    pub fn enqueue(topic: String, msgs: Vec<queue_state::Incoming>) -> Proposal<Vec<u64>> {
        Proposal::new(Command::QueueEnqueue { topic, msgs }, |v| match v {
            CmdValue::Ids(ids) => Ok(ids),
            other => Err(other),
        })
    }

    /// Answers the messages delivered (maybe none).
    pub fn consume(
        topic: String,
        consumer: String,
        max: usize,
        visibility_ms: Option<u64>,
    ) -> Proposal<Vec<queue_state::InFlight>> {
        let cmd = Command::QueueConsume {
            topic,
            consumer,
            max,
            visibility_ms,
        };
        Proposal::new(cmd, |v| match v {
            CmdValue::Delivered(msgs) => Ok(msgs),
            other => Err(other),
        })
    }

    /// Each answers how many receipts took effect.
    pub fn ack(topic: String, receipts: Vec<String>) -> Proposal<u64> {
        Proposal::new(Command::QueueAck { topic, receipts }, count)
    }

    pub fn nack(topic: String, receipts: Vec<String>, delay_ms: u64) -> Proposal<u64> {
        let cmd = Command::QueueNack {
            topic,
            receipts,
            delay_ms,
        };
        Proposal::new(cmd, count)
    }

    pub fn extend(topic: String, receipts: Vec<String>, visibility_ms: u64) -> Proposal<u64> {
        let cmd = Command::QueueExtend {
            topic,
            receipts,
            visibility_ms,
        };
        Proposal::new(cmd, count)
    }

    /// Answers how many dead letters went back to the topic.
    pub fn redrive(topic: String) -> Proposal<u64> {
        Proposal::new(Command::QueueRedrive { topic }, count)
    }

    pub fn configure(topic: String, s: &dsync_api::queue::TopicSettings) -> Proposal<()> {
        let cmd = Command::QueueConfigure {
            topic,
            max_attempts: s.max_attempts,
            visibility_ms: s.visibility_ms,
            max_message_bytes: s.max_message_bytes,
            retention_ms: s.retention_ms,
        };
        Proposal::new(cmd, done)
    }
}

pub mod shards {
    use super::*;
    use crate::state::jobs::JobStep;

    /// Starts a shard job (`JobStep::Start`, `StartReshard`); answers its id.
    pub fn start_job(step: JobStep) -> Proposal<u64> {
        Proposal::new(Command::ShardJob { step }, count)
    }
}

#[cfg(test)]
mod tests {
    use dsync_api::locks::LockMode;

    use super::*;
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

        let msg = queue_state::Incoming {
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
        assert!(apply(&mut s, shards::start_job(start)) > 0);
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
