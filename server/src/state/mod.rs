//! The deterministic replicated state: everything a Raft entry can change.
//!
//! Entries carry a batch of [`Command`]s plus the leader's clock at proposal
//! time, so applying the same log on any node gives the same state and the
//! same results. All group-specific state lives in [`StateData`] so that one
//! process could later host several groups.

pub mod kv;
pub mod locks;
pub mod queue;

use dsync_api::events::Event;
use dsync_api::locks::LockMode;
use dsync_api::ErrorCode;
use serde::{Deserialize, Serialize};

/// One mutation of the replicated state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// `value` is JSON text, kept as text so the log stays compact binary.
    KvPut {
        key: String,
        value: String,
        if_version: Option<u64>,
        /// `(lock, token)`: apply only if `token` is a current grant of `lock`.
        fence: Option<(String, u64)>,
    },
    KvDelete {
        key: String,
        if_version: Option<u64>,
    },
    LockAcquire {
        name: String,
        owner: String,
        mode: LockMode,
        ttl_ms: u64,
        wait_ms: u64,
    },
    LockRelease {
        name: String,
        owner: String,
        token: u64,
    },
    LockKeepalive {
        name: String,
        owner: String,
        token: u64,
        ttl_ms: Option<u64>,
    },
    /// The client of a queued request went away (or gave up).
    LockCancel {
        name: String,
        owner: String,
        since_seq: u64,
    },
    /// Expire what is due at the entry's leader clock (locks and queues).
    Tick,
    /// A new leader's grace: extend every lease.
    LockExtendLeases {
        by_ms: u64,
    },
    QueueEnqueue {
        topic: String,
        msgs: Vec<queue::Incoming>,
    },
    QueueConsume {
        topic: String,
        consumer: String,
        max: usize,
        visibility_ms: Option<u64>,
    },
    QueueAck {
        topic: String,
        receipts: Vec<String>,
    },
    QueueNack {
        topic: String,
        receipts: Vec<String>,
        delay_ms: u64,
    },
    QueueExtend {
        topic: String,
        receipts: Vec<String>,
        visibility_ms: u64,
    },
    QueueRedrive {
        topic: String,
    },
    /// Plain fields: bincode cannot carry the wire type's skipped options.
    QueueConfigure {
        topic: String,
        max_attempts: Option<u32>,
        visibility_ms: Option<u64>,
        max_message_bytes: Option<u64>,
        retention_ms: Option<u64>,
    },
    /// Admin override: drop every holder of the lock, whatever its token.
    LockForceRelease {
        name: String,
    },
    /// Names the cluster once: the first id applied wins, later ones are
    /// ignored, so every node and every backup agrees on it.
    SetClusterId {
        id: String,
    },
}

impl Command {
    /// Rough size in bytes, used to bound a batch.
    pub fn size_hint(&self) -> usize {
        match self {
            Command::KvPut { key, value, .. } => key.len() + value.len() + 16,
            Command::KvDelete { key, .. } => key.len() + 16,
            Command::LockAcquire { name, owner, .. }
            | Command::LockRelease { name, owner, .. }
            | Command::LockKeepalive { name, owner, .. }
            | Command::LockCancel { name, owner, .. } => name.len() + owner.len() + 32,
            Command::Tick | Command::LockExtendLeases { .. } => 16,
            Command::QueueEnqueue { topic, msgs } => {
                topic.len() + msgs.iter().map(|m| m.payload.len() + 32).sum::<usize>()
            }
            Command::QueueAck { topic, receipts }
            | Command::QueueNack {
                topic, receipts, ..
            }
            | Command::QueueExtend {
                topic, receipts, ..
            } => topic.len() + receipts.iter().map(|r| r.len() + 8).sum::<usize>(),
            Command::QueueConsume { topic, .. }
            | Command::QueueRedrive { topic }
            | Command::QueueConfigure { topic, .. } => topic.len() + 32,
            Command::LockForceRelease { name } => name.len() + 16,
            Command::SetClusterId { id } => id.len() + 16,
        }
    }
}

/// The successful result of one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CmdValue {
    Version(u64),
    Deleted(bool),
    Granted(locks::Holder),
    Queued {
        seq: u64,
    },
    Done,
    Ids(Vec<u64>),
    Delivered(Vec<queue::InFlight>),
    Count(u64),
    /// Owners evicted by a force-release.
    Released(Vec<String>),
}

/// A command refused by the state machine (bincode-friendly, unlike
/// `ApiError`, whose details are free-form JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CmdError {
    pub code: ErrorCode,
    pub message: String,
    /// Extra fields of the API error, as JSON object text.
    pub details: Option<String>,
}

impl CmdError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CmdError {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details.to_string());
        self
    }

    pub fn to_api(&self) -> dsync_api::ApiError {
        let mut e = dsync_api::ApiError::new(self.code, self.message.clone());
        if let Some(serde_json::Value::Object(map)) = self
            .details
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
        {
            e.details = map;
        }
        e
    }
}

pub type CmdOutput = Result<CmdValue, CmdError>;

/// Application data of one Raft entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Leader wall clock (ms since the Unix epoch) when the batch was proposed;
    /// the only clock the state machine may read.
    pub now_ms: u64,
    pub cmds: Vec<Command>,
}

/// Results of one entry, one per command, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response(pub Vec<CmdOutput>);

/// Everything the replicated log decides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateData {
    /// Advanced by every applied command. KV versions (and fencing tokens)
    /// are revisions: unique and strictly increasing even when many commands
    /// share one Raft entry.
    pub revision: u64,
    /// Leader clock of the last applied entry.
    pub now_ms: u64,
    pub kv: kv::KvTable,
    pub locks: locks::LockTable,
    pub queues: queue::QueueTable,
    /// Events of the entries applied since the state machine last drained
    /// it (`/v1/events`); not part of the replicated state or snapshots.
    #[serde(skip)]
    pub outbox: Vec<Event>,
    /// Set once by the first leader of a new cluster (see `SetClusterId`).
    pub cluster_id: Option<String>,
}

impl StateData {
    pub fn apply(&mut self, req: Request) -> Response {
        // A new leader's clock may lag the old one's: time never goes back.
        self.now_ms = self.now_ms.max(req.now_ms);
        let out = req.cmds.into_iter().map(|c| self.apply_one(c)).collect();
        for (topic, id, attempt) in self.queues.take_dead_lettered() {
            self.outbox.push(Event::DeadLetter {
                topic,
                id,
                attempt,
                at_ms: self.now_ms,
            });
        }
        Response(out)
    }

    fn apply_one(&mut self, cmd: Command) -> CmdOutput {
        self.revision += 1;
        let rev = self.revision;
        let mut ctx = locks::Ctx {
            now_ms: self.now_ms,
            revision: &mut self.revision,
            events: &mut self.outbox,
        };
        let l = &mut self.locks;
        // Commands are taken by value so payloads move into the state
        // instead of being copied.
        match cmd {
            Command::KvPut {
                key,
                value,
                if_version,
                fence,
            } => {
                if let Some((lock, token)) = &fence {
                    if !l.is_current_grant(lock, *token) {
                        return Err(CmdError::new(
                            ErrorCode::StaleToken,
                            format!(
                                "fencing token {token} is not the current grant of lock {lock:?}"
                            ),
                        ));
                    }
                }
                self.kv.put(key, value, if_version, rev)
            }
            Command::QueueEnqueue { topic, msgs } => self
                .queues
                .enqueue(&topic, msgs, self.now_ms)
                .map(CmdValue::Ids),
            Command::KvDelete { key, if_version } => self.kv.delete(&key, if_version),
            Command::LockAcquire {
                name,
                owner,
                mode,
                ttl_ms,
                wait_ms,
            } => l
                .acquire(&name, &owner, mode, ttl_ms, wait_ms, &mut ctx)
                .map(|a| match a {
                    locks::Acquired::Granted(h) => CmdValue::Granted(h),
                    locks::Acquired::Queued { seq } => CmdValue::Queued { seq },
                }),
            Command::LockRelease { name, owner, token } => l
                .release(&name, &owner, token, &mut ctx)
                .map(|_| CmdValue::Done),
            Command::LockKeepalive {
                name,
                owner,
                token,
                ttl_ms,
            } => l
                .keepalive(&name, &owner, token, ttl_ms, &mut ctx)
                .map(CmdValue::Granted),
            Command::LockCancel {
                name,
                owner,
                since_seq,
            } => {
                l.cancel(&name, &owner, since_seq, &mut ctx);
                Ok(CmdValue::Done)
            }
            Command::Tick => {
                l.tick(&mut ctx);
                self.queues.tick(self.now_ms);
                Ok(CmdValue::Done)
            }
            Command::LockExtendLeases { by_ms } => {
                l.extend_leases(by_ms);
                Ok(CmdValue::Done)
            }
            Command::QueueConsume {
                topic,
                consumer,
                max,
                visibility_ms,
            } => Ok(CmdValue::Delivered(self.queues.consume(
                &topic,
                &consumer,
                max,
                visibility_ms,
                self.now_ms,
                &mut self.revision,
            ))),
            Command::QueueAck { topic, receipts } => self
                .queues
                .ack(&topic, &receipts)
                .map(|n| CmdValue::Count(n as u64)),
            Command::QueueNack {
                topic,
                receipts,
                delay_ms,
            } => self
                .queues
                .nack(&topic, &receipts, delay_ms, self.now_ms)
                .map(|n| CmdValue::Count(n as u64)),
            Command::QueueExtend {
                topic,
                receipts,
                visibility_ms,
            } => self
                .queues
                .extend(&topic, &receipts, visibility_ms, self.now_ms)
                .map(|n| CmdValue::Count(n as u64)),
            Command::QueueRedrive { topic } => Ok(CmdValue::Count(self.queues.redrive(&topic))),
            Command::QueueConfigure {
                topic,
                max_attempts,
                visibility_ms,
                max_message_bytes,
                retention_ms,
            } => {
                let s = dsync_api::queue::TopicSettings {
                    max_attempts,
                    visibility_ms,
                    max_message_bytes,
                    retention_ms,
                };
                self.queues.configure(&topic, &s);
                Ok(CmdValue::Done)
            }
            Command::LockForceRelease { name } => {
                Ok(CmdValue::Released(l.force_release(&name, &mut ctx)))
            }
            Command::SetClusterId { id } => {
                self.cluster_id.get_or_insert(id);
                Ok(CmdValue::Done)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_cluster_id_wins() {
        let mut d = StateData::default();
        let set = |id: &str| Request {
            now_ms: 1,
            cmds: vec![Command::SetClusterId { id: id.into() }],
        };
        d.apply(set("a"));
        d.apply(set("b"));
        assert_eq!(d.cluster_id.as_deref(), Some("a"));
    }

    fn put(key: &str, v: &str, if_version: Option<u64>) -> Command {
        Command::KvPut {
            key: key.into(),
            value: v.into(),
            if_version,
            fence: None,
        }
    }

    #[test]
    fn revisions_are_unique_within_one_entry() {
        let mut s = StateData::default();
        let r = s.apply(Request {
            now_ms: 5,
            cmds: vec![put("a", "1", None), put("a", "2", None)],
        });
        assert_eq!(
            r.0,
            vec![Ok(CmdValue::Version(1)), Ok(CmdValue::Version(2))]
        );
        assert_eq!(s.kv.get("a").unwrap().value, "2");
    }

    #[test]
    fn clock_never_goes_back() {
        let mut s = StateData::default();
        s.apply(Request {
            now_ms: 100,
            cmds: vec![],
        });
        s.apply(Request {
            now_ms: 50,
            cmds: vec![],
        });
        assert_eq!(s.now_ms, 100);
    }

    fn acquire(name: &str, owner: &str, wait_ms: u64) -> Command {
        Command::LockAcquire {
            name: name.into(),
            owner: owner.into(),
            mode: LockMode::Exclusive,
            ttl_ms: 10_000,
            wait_ms,
        }
    }

    #[test]
    fn force_release_evicts_holders_and_grants_the_next_waiter() {
        let mut s = StateData::default();
        let r = s.apply(Request {
            now_ms: 1,
            cmds: vec![acquire("l", "a", 0), acquire("l", "b", 5_000)],
        });
        let Ok(CmdValue::Granted(a)) = &r.0[0] else {
            panic!("a not granted: {r:?}");
        };
        let r = s.apply(Request {
            now_ms: 2,
            cmds: vec![Command::LockForceRelease { name: "l".into() }],
        });
        assert_eq!(r.0, vec![Ok(CmdValue::Released(vec!["a".into()]))]);
        let holders: Vec<_> = s.locks.get("l").expect("b holds l").holders().collect();
        assert_eq!(holders.len(), 1);
        assert_eq!(holders[0].owner, "b");
        assert!(holders[0].token > a.token);
        assert!(!s.locks.is_current_grant("l", a.token));
        // Releasing a lock nobody holds evicts nobody and is not an error.
        let r = s.apply(Request {
            now_ms: 3,
            cmds: vec![Command::LockForceRelease {
                name: "free".into(),
            }],
        });
        assert_eq!(r.0, vec![Ok(CmdValue::Released(vec![]))]);
    }

    #[test]
    fn grants_refusals_and_releases_reach_the_outbox() {
        let mut s = StateData::default();
        s.apply(Request {
            now_ms: 1,
            cmds: vec![
                acquire("x", "a", 0),
                acquire("y", "b", 0),
                acquire("y", "a", 5_000),
                acquire("x", "b", 5_000),
                Command::LockForceRelease { name: "x".into() },
            ],
        });
        let kinds: Vec<&str> = s.outbox.iter().map(Event::kind).collect();
        assert_eq!(
            kinds,
            [
                "lock_granted",
                "lock_granted",
                "deadlock",
                "lock_force_released"
            ]
        );
        let Event::Deadlock { cycle, lock, .. } = &s.outbox[2] else {
            unreachable!()
        };
        assert_eq!(
            (lock.as_str(), cycle.clone()),
            ("x", vec!["b".to_string(), "a".to_string()])
        );
    }

    #[test]
    fn dead_letters_reach_the_outbox() {
        let mut s = StateData::default();
        let r = s.apply(Request {
            now_ms: 1,
            cmds: vec![
                Command::QueueConfigure {
                    topic: "t".into(),
                    max_attempts: Some(1),
                    visibility_ms: None,
                    max_message_bytes: None,
                    retention_ms: None,
                },
                Command::QueueEnqueue {
                    topic: "t".into(),
                    msgs: vec![queue::Incoming {
                        payload: "1".into(),
                        delay_ms: 0,
                        dedup_id: None,
                    }],
                },
                Command::QueueConsume {
                    topic: "t".into(),
                    consumer: "c".into(),
                    max: 1,
                    visibility_ms: Some(10),
                },
            ],
        });
        assert!(r.0.iter().all(Result::is_ok), "{r:?}");
        s.apply(Request {
            now_ms: 100,
            cmds: vec![Command::Tick],
        });
        assert!(
            matches!(&s.outbox[..], [Event::DeadLetter { topic, attempt: 1, at_ms: 100, .. }] if topic == "t"),
            "{:?}",
            s.outbox
        );
    }

    #[test]
    fn errors_keep_their_details() {
        let e = CmdError::new(ErrorCode::Conflict, "x")
            .with_details(serde_json::json!({"current_version": 3}));
        let bytes = bincode::serialize(&e).unwrap();
        let back: CmdError = bincode::deserialize(&bytes).unwrap();
        assert_eq!(back.to_api().details["current_version"], 3);
    }
}
