use std::time::Duration;

use dsync_api::ErrorCode;
use tokio::sync::watch;

use super::*;
use crate::state::KvPut;

const LEADER: &str = "127.0.0.1:7001";

/// A leader that answers each KV put `k<i>` with version `i` and refuses
/// key `bad`, while its gate is open; it records every forward it gets.
struct Fake {
    sent: Mutex<Vec<(String, ForwardRequest)>>,
    gate: watch::Sender<bool>,
    /// Refuses `WriteBatch` as a leader of an older release does.
    old_release: bool,
    /// Every forward fails on the way instead.
    fail: Option<fn() -> PeerError>,
}

impl Fake {
    fn new() -> Fake {
        Fake {
            sent: Mutex::new(vec![]),
            gate: watch::channel(true).0,
            old_release: false,
            fail: None,
        }
    }

    fn sent(&self) -> Vec<(String, ForwardRequest)> {
        self.sent.lock().unwrap().clone()
    }

    /// Sizes of the forwards so far: 1 for a `Write`.
    fn sizes(&self) -> Vec<usize> {
        self.sent()
            .iter()
            .map(|(_, r)| match r {
                ForwardRequest::WriteBatch(cmds) => cmds.len(),
                _ => 1,
            })
            .collect()
    }
}

fn answer(cmd: &Command) -> std::result::Result<CmdValue, CmdError> {
    match cmd {
        Command::KvPut(KvPut { key, .. }) if key == "bad" => {
            Err(CmdError::new(ErrorCode::Conflict, "version mismatch"))
        }
        Command::KvPut(KvPut { key, .. }) => Ok(CmdValue::Version(key[1..].parse().unwrap())),
        other => panic!("unexpected command {other:?}"),
    }
}

impl Transport for Fake {
    fn post<'a>(
        &'a self,
        _id: u64,
        addr: &'a str,
        req: &'a ForwardRequest,
    ) -> BoxFuture<'a, PeerReply> {
        Box::pin(async move {
            self.sent
                .lock()
                .unwrap()
                .push((addr.to_string(), req.clone()));
            let mut gate = self.gate.subscribe();
            gate.wait_for(|open| *open).await.unwrap();
            if let Some(fail) = self.fail {
                return Err(fail());
            }
            Ok(match req {
                ForwardRequest::Write(cmd) => answer(cmd).map(ForwardReply::Value),
                ForwardRequest::WriteBatch(_) if self.old_release => {
                    return Err(PeerError::Rejected(
                        addr.to_string(),
                        400,
                        "invalid_argument: bad peer message: invalid value: integer `8`".into(),
                    ))
                }
                ForwardRequest::WriteBatch(cmds) => {
                    Ok(ForwardReply::Values(cmds.iter().map(answer).collect()))
                }
                other => panic!("unexpected forward {other:?}"),
            })
        })
    }
}

fn put(key: &str) -> Command {
    Command::KvPut(KvPut {
        key: key.into(),
        value: "1".into(),
        if_version: None,
        fence: None,
    })
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::task::yield_now().await;
    }
}

fn spawn_with(fake: &Arc<Fake>, limits: Limits) -> Forwarder {
    Forwarder::spawn(
        &Tasks::default(),
        fake.clone(),
        limits,
        Arc::new(Metrics::new()),
    )
}

fn one_at_a_time(max_batch: usize) -> Limits {
    Limits {
        max_batch,
        in_flight: 1,
        ..Limits::default()
    }
}

type Waiter = tokio::task::JoinHandle<Result<CmdValue>>;

/// Holds the leader's answers, sends `k0` alone, then queues `keys` one
/// after the other (in that order) behind it, then lets the leader answer.
async fn queued_behind_one(
    fwd: &Forwarder,
    fake: &Arc<Fake>,
    addrs_keys: &[(&str, &str)],
) -> (Waiter, Vec<Waiter>) {
    fake.gate.send_replace(false);
    let sent_before = fake.sent().len();
    let write = |addr: &str, key: &str| {
        let (fwd, addr, cmd) = (fwd.clone(), addr.to_string(), put(key));
        tokio::spawn(async move { fwd.write(1, addr, cmd).await })
    };
    let first = write(LEADER, "k0");
    until("the first forward", || fake.sent().len() > sent_before).await;
    let mut rest = vec![];
    for (i, (addr, key)) in addrs_keys.iter().enumerate() {
        rest.push(write(addr, key));
        until("the write to queue", || fwd.queued() == i + 1).await;
    }
    fake.gate.send_replace(true);
    (first, rest)
}

fn keys(n: usize) -> Vec<(&'static str, String)> {
    (1..=n).map(|i| (LEADER, format!("k{i}"))).collect()
}

fn refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(a, k)| (*a, k.as_str())).collect()
}

#[tokio::test]
async fn writes_queued_behind_a_forward_leave_as_one_batch_and_each_gets_its_own_answer() {
    let fake = Arc::new(Fake::new());
    let fwd = spawn_with(&fake, one_at_a_time(256));
    let mut queued = keys(6);
    queued.insert(3, (LEADER, "bad".into()));
    let (first, rest) = queued_behind_one(&fwd, &fake, &refs(&queued)).await;
    assert_eq!(first.await.unwrap().unwrap(), CmdValue::Version(0));
    let mut answers = vec![];
    for w in rest {
        answers.push(w.await.unwrap());
    }
    for ((_, key), answer) in queued.iter().zip(&answers) {
        match key.as_str() {
            "bad" => {
                let e = answer.as_ref().unwrap_err().to_api();
                assert_eq!(e.code, ErrorCode::Conflict, "{e:?}");
            }
            k => assert_eq!(
                answer.as_ref().unwrap(),
                &CmdValue::Version(k[1..].parse().unwrap())
            ),
        }
    }
    let sent = fake.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(matches!(&sent[0].1, ForwardRequest::Write(c) if *c == put("k0")));
    let want: Vec<Command> = queued.iter().map(|(_, k)| put(k)).collect();
    assert!(
        matches!(&sent[1].1, ForwardRequest::WriteBatch(c) if *c == want),
        "{sent:?}"
    );
}

#[tokio::test]
async fn a_batch_holds_at_most_max_batch_writes_and_max_bytes() {
    let fake = Arc::new(Fake::new());
    let fwd = spawn_with(&fake, one_at_a_time(4));
    let queued = keys(10);
    let (first, rest) = queued_behind_one(&fwd, &fake, &refs(&queued)).await;
    first.await.unwrap().unwrap();
    for w in rest {
        w.await.unwrap().unwrap();
    }
    assert_eq!(fake.sizes(), [1, 4, 4, 2]);

    // The batch is sealed once its commands reach max_bytes.
    let fake = Arc::new(Fake::new());
    let two = 2 * put("k1").size_hint();
    let fwd = spawn_with(
        &fake,
        Limits {
            max_bytes: two,
            ..one_at_a_time(256)
        },
    );
    let (first, rest) = queued_behind_one(&fwd, &fake, &refs(&queued)).await;
    first.await.unwrap().unwrap();
    for w in rest {
        w.await.unwrap().unwrap();
    }
    assert_eq!(fake.sizes(), [1, 2, 2, 2, 2, 2]);
}

#[tokio::test]
async fn a_leader_that_cannot_decode_a_batch_gets_the_writes_one_by_one_from_then_on() {
    let fake = Arc::new(Fake {
        old_release: true,
        ..Fake::new()
    });
    let fwd = spawn_with(&fake, one_at_a_time(256));
    let queued = keys(3);
    for round in 0..2 {
        let (first, rest) = queued_behind_one(&fwd, &fake, &refs(&queued)).await;
        first.await.unwrap().unwrap();
        for (i, w) in rest.into_iter().enumerate() {
            assert_eq!(
                w.await.unwrap().unwrap(),
                CmdValue::Version(i as u64 + 1),
                "round {round}"
            );
        }
    }
    // Round one: k0, the refused batch, then its writes one by one; round
    // two sends no batch at all.
    assert_eq!(fake.sizes(), [1, 3, 1, 1, 1, 1, 1, 1, 1]);
}

#[tokio::test]
async fn a_lost_answer_leaves_every_write_of_the_batch_unknown_and_an_unreachable_leader_none() {
    fn lost() -> PeerError {
        PeerError::Network(LEADER.into(), "connection reset".into())
    }
    fn unreachable() -> PeerError {
        PeerError::Unreachable(LEADER.into(), "connection refused".into())
    }
    for (fail, unknown) in [(lost as fn() -> PeerError, true), (unreachable, false)] {
        let fake = Arc::new(Fake {
            fail: Some(fail),
            ..Fake::new()
        });
        let fwd = spawn_with(&fake, one_at_a_time(256));
        let (first, rest) = queued_behind_one(&fwd, &fake, &refs(&keys(3))).await;
        let mut answers = vec![first.await.unwrap()];
        for w in rest {
            answers.push(w.await.unwrap());
        }
        assert_eq!(fake.sizes(), [1, 3]);
        for a in answers {
            let e = a.unwrap_err().to_api();
            assert_eq!(e.code, ErrorCode::Unavailable, "{e:?}");
            assert_eq!(e.is_outcome_unknown(), unknown, "{e:?}");
            if !unknown {
                assert!(e.message.contains("nothing was sent"), "{e:?}");
            }
        }
    }
}

#[tokio::test]
async fn writes_meant_for_different_leaders_go_to_each() {
    let fake = Arc::new(Fake::new());
    let fwd = spawn_with(&fake, one_at_a_time(256));
    let other = "127.0.0.1:7002";
    let queued = [(LEADER, "k1"), (other, "k2"), (LEADER, "k3"), (other, "k4")];
    let (first, rest) = queued_behind_one(&fwd, &fake, &queued).await;
    first.await.unwrap().unwrap();
    for (w, i) in rest.into_iter().zip(1..) {
        assert_eq!(w.await.unwrap().unwrap(), CmdValue::Version(i));
    }
    let mut sent = fake.sent();
    sent.sort_by(|a, b| a.0.cmp(&b.0));
    let batch = |keys: &[&str]| ForwardRequest::WriteBatch(keys.iter().map(|k| put(k)).collect());
    let want = [
        (LEADER, ForwardRequest::Write(put("k0"))),
        (LEADER, batch(&["k1", "k3"])),
        (other, batch(&["k2", "k4"])),
    ];
    assert_eq!(sent.len(), want.len(), "{sent:?}");
    for ((addr, req), (want_addr, want_req)) in sent.iter().zip(&want) {
        assert_eq!(addr, want_addr);
        assert_eq!(format!("{req:?}"), format!("{want_req:?}"));
    }
}
