//! The KV workload for fault runs: reads, blind writes and compare-and-set
//! on a few keys of the replicated KV (`/v1/kv`) through different nodes,
//! each recorded with its outcome, then checked for linearizability per key
//! with the WGL checker.
//!
//! Keys are renamed every [`EPOCH`] so that no single key's history grows
//! without bound over a long run: linearizability is local, so checking
//! each short-lived key on its own is the same check, and it keeps the
//! search small.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dsync_api::client::ClientError;
use dsync_api::types::Consistency;
use dsync_api::{Client, ClientConfig, ErrorCode};
use serde_json::json;

use crate::history::{History, Op, Outcome};
use crate::linearizability::{self, Kind};
use crate::Cluster;

/// Keys in use at a time.
const KEYS: u64 = 3;
/// Pause after a failed operation.
const ERROR_PAUSE: Duration = Duration::from_millis(50);
/// How long a key set is used before the workload moves to fresh keys.
pub const EPOCH: Duration = Duration::from_secs(10);

/// What the KV workload records. Values are the JSON text of the stored
/// value; `None` is an absent key.
#[derive(Debug, Clone)]
pub enum KvOp {
    Read {
        key: String,
        value: Option<String>,
    },
    Write {
        key: String,
        value: String,
    },
    /// `PUT` with `if_version` set to the version that `expect` was read at
    /// (0 for absent). Versions and values correspond one to one because
    /// every write stores a value never written before, so the checker can
    /// compare values.
    Cas {
        key: String,
        expect: Option<String>,
        new: String,
        /// The store refused it with 409 `conflict`: the value was not
        /// `expect`.
        refused: bool,
    },
}

/// The client of KV process `process`, starting at node `process % n`.
///
/// Odd processes resend: their writes carry a request id, so the client
/// resends them through a lost answer or an unknown outcome, and the store
/// must apply each once. A resend applied twice shows up in the checker:
/// a second application of a CAS is refused (its version moved), so the
/// client reports refused a CAS whose value the store holds.
///
/// Even processes make a single attempt per operation, so every failure
/// without a definite answer is recorded as unknown, which exercises the
/// checker's handling of writes that may or may not have applied.
fn client(cluster: &Cluster, process: usize) -> Client {
    let mut endpoints = cluster.endpoints();
    let n = endpoints.len();
    endpoints.rotate_left(process % n);
    let mut cfg = ClientConfig::new(endpoints);
    cfg.request_timeout = Duration::from_secs(5);
    cfg.retry_for = if process % 2 == 1 {
        Duration::from_secs(10)
    } else {
        Duration::ZERO
    };
    Client::new(cfg).expect("client")
}

/// Reads, writes and CASes random keys of the current epoch until `stop`.
pub async fn kv_worker(
    cluster: Arc<Cluster>,
    process: usize,
    history: Arc<History<KvOp>>,
    stop: Arc<AtomicBool>,
) {
    let client = client(&cluster, process);
    let mut rng = (process as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // xorshift: deterministic per process.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let epoch = history.now_us() / EPOCH.as_micros() as u64;
        let key = format!("chaos-kv-{epoch}-{}", rng % KEYS);
        n += 1;
        let value = json!(format!("p{process}-{n}")).to_string();
        let ok = match (rng >> 8) % 3 {
            0 => read(&client, process, &history, &key).await.is_some(),
            1 => {
                let t = history.now_us();
                let res = client
                    .kv_put(&key, json!(format!("p{process}-{n}")), None)
                    .await;
                let outcome = res.as_ref().map_or_else(write_outcome, |_| Outcome::Ok);
                history.record(process, t, outcome, KvOp::Write { key, value });
                outcome == Outcome::Ok
            }
            _ => 'cas: {
                // Read, then CAS from what was read; a failed read says nothing.
                let Some((expect, version)) = read(&client, process, &history, &key).await else {
                    break 'cas false;
                };
                let t = history.now_us();
                let res = client
                    .kv_put(&key, json!(format!("p{process}-{n}")), Some(version))
                    .await;
                let outcome = res.as_ref().map_or_else(write_outcome, |_| Outcome::Ok);
                let refused = matches!(&res, Err(ClientError::Api { error, .. }) if error.code == ErrorCode::Conflict);
                let op = KvOp::Cas {
                    key,
                    expect,
                    new: value,
                    refused,
                };
                history.record(process, t, outcome, op);
                outcome == Outcome::Ok || refused
            }
        };
        if !ok {
            // Think time after an error: without it a cluster that is down
            // turns into a tight loop of failures that only bloats the
            // history (and the checker's search).
            tokio::time::sleep(ERROR_PAUSE).await;
        }
    }
}

/// A linearizable read, recorded; returns the value and its version.
async fn read(
    client: &Client,
    process: usize,
    history: &History<KvOp>,
    key: &str,
) -> Option<(Option<String>, u64)> {
    let t = history.now_us();
    let (outcome, seen) = match client.kv_get(key, Consistency::Linearizable).await {
        Ok(item) => (
            Outcome::Ok,
            Some((Some(item.value.to_string()), item.version)),
        ),
        Err(ClientError::Api { error, .. }) if error.code == ErrorCode::NotFound => {
            (Outcome::Ok, Some((None, 0)))
        }
        // A read that failed changed nothing, whatever the error.
        Err(_) => (Outcome::Fail, None),
    };
    let value = seen.as_ref().and_then(|(v, _)| v.clone());
    history.record(
        process,
        t,
        outcome,
        KvOp::Read {
            key: key.to_string(),
            value,
        },
    );
    seen
}

/// A write's outcome from its error: refusals (409 conflict on a CAS, 4xx)
/// are definite; timeouts, broken connections and 503s are not.
fn write_outcome(e: &ClientError) -> Outcome {
    match e {
        ClientError::Api { status, .. } if *status != 503 && *status < 500 => Outcome::Fail,
        _ => Outcome::Unknown,
    }
}

/// The history as the linearizability checker's operations: refused CASes
/// become observations that the value differed; failed reads and refused
/// writes are left out (they did not happen).
pub fn to_checker_ops(ops: &[Op<KvOp>]) -> Vec<linearizability::Op> {
    ops.iter()
        .filter_map(|o| {
            let done = Some(o.complete_us);
            let (key, kind, ret) = match (&o.op, o.outcome) {
                (KvOp::Read { key, value }, Outcome::Ok) => (key, Kind::Read(value.clone()), done),
                (KvOp::Write { key, value }, Outcome::Ok | Outcome::Unknown) => {
                    let ret = (o.outcome == Outcome::Ok).then_some(o.complete_us);
                    (key, Kind::Write(Some(value.clone())), ret)
                }
                (
                    KvOp::Cas {
                        key,
                        expect,
                        refused: true,
                        ..
                    },
                    Outcome::Fail,
                ) => {
                    let expect = expect.clone();
                    (key, Kind::CasRefused { expect }, done)
                }
                (
                    KvOp::Cas {
                        key, expect, new, ..
                    },
                    Outcome::Ok | Outcome::Unknown,
                ) => {
                    let ret = (o.outcome == Outcome::Ok).then_some(o.complete_us);
                    let (expect, new) = (expect.clone(), Some(new.clone()));
                    (key, Kind::Cas { expect, new }, ret)
                }
                _ => return None,
            };
            Some(linearizability::Op {
                key: key.clone(),
                kind,
                call: o.invoke_us,
                ret,
                note: format!("process {}", o.process),
            })
        })
        .collect()
}

/// Writes one key's operations to a file for diagnosis; returns its path.
fn keep_history(key: &str, ops: &[linearizability::Op]) -> String {
    let path =
        std::env::temp_dir().join(format!("dsync-kv-history-{}-{key}.txt", std::process::id()));
    match std::fs::write(&path, format!("{ops:#?}")) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("not kept: {e}"),
    }
}

/// Linearizability violations of a KV history (one per bad key), with the
/// number of keys checked and the keys the checker could not decide within
/// its search budget (reported, never counted as clean).
pub fn check_kv(ops: &[Op<KvOp>]) -> (usize, Vec<String>, Vec<String>) {
    let all = to_checker_ops(ops);
    let mut keys: Vec<&str> = all.iter().map(|o| o.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut violations = Vec::new();
    let mut undecided = Vec::new();
    for key in &keys {
        let of_key: Vec<_> = all.iter().filter(|o| o.key == *key).cloned().collect();
        match linearizability::verdict(&of_key, None) {
            Some(true) => {}
            Some(false) => violations.push(format!(
                "kv key {key:?}: {} operations cannot be linearized (history: {})",
                of_key.len(),
                keep_history(key, &of_key)
            )),
            None => undecided.push(format!(
                "kv key {key:?}: {} operations, search budget exhausted (history: {})",
                of_key.len(),
                keep_history(key, &of_key)
            )),
        }
    }
    (keys.len(), violations, undecided)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        process: usize,
        invoke_us: u64,
        complete_us: u64,
        outcome: Outcome,
        op: KvOp,
    ) -> Op<KvOp> {
        Op {
            process,
            invoke_us,
            complete_us,
            outcome,
            op,
        }
    }

    fn read(key: &str, value: Option<&str>) -> KvOp {
        KvOp::Read {
            key: key.into(),
            value: value.map(str::to_string),
        }
    }

    fn write(key: &str, value: &str) -> KvOp {
        KvOp::Write {
            key: key.into(),
            value: value.into(),
        }
    }

    fn cas(key: &str, expect: Option<&str>, new: &str, refused: bool) -> KvOp {
        KvOp::Cas {
            key: key.into(),
            expect: expect.map(str::to_string),
            new: new.into(),
            refused,
        }
    }

    fn clean() -> Vec<Op<KvOp>> {
        vec![
            op(1, 0, 10, Outcome::Ok, write("k", "a")),
            op(2, 20, 30, Outcome::Ok, read("k", Some("a"))),
            op(2, 40, 50, Outcome::Ok, cas("k", Some("a"), "b", false)),
            op(3, 45, 55, Outcome::Fail, cas("k", Some("a"), "c", true)),
            op(1, 60, 70, Outcome::Unknown, write("k", "d")),
            op(3, 80, 90, Outcome::Ok, read("k", Some("d"))),
            op(1, 100, 110, Outcome::Fail, read("j", Some("zzz"))),
            op(2, 120, 130, Outcome::Ok, read("j", None)),
        ]
    }

    #[test]
    fn a_clean_kv_history_passes() {
        let (keys, violations, _) = check_kv(&clean());
        assert_eq!(keys, 2);
        assert!(violations.is_empty(), "{violations:?}");
    }

    #[test]
    fn a_stale_read_in_a_kv_history_is_flagged() {
        let mut h = clean();
        // Process 2 reads "b" well after "d" was observed by process 3.
        h.push(op(2, 200, 210, Outcome::Ok, read("k", Some("b"))));
        let (_, violations, _) = check_kv(&h);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].contains("\"k\""), "{violations:?}");
    }

    #[test]
    fn a_lost_acknowledged_cas_is_flagged() {
        let h = vec![
            op(1, 0, 10, Outcome::Ok, write("k", "a")),
            op(2, 20, 30, Outcome::Ok, cas("k", Some("a"), "b", false)),
            op(3, 40, 50, Outcome::Ok, read("k", Some("a"))),
        ];
        assert_eq!(check_kv(&h).1.len(), 1);
    }

    #[test]
    fn a_conflict_while_the_value_matched_is_flagged() {
        let h = vec![
            op(1, 0, 10, Outcome::Ok, write("k", "a")),
            op(2, 20, 30, Outcome::Fail, cas("k", Some("a"), "b", true)),
            op(3, 40, 50, Outcome::Ok, read("k", Some("a"))),
        ];
        assert_eq!(check_kv(&h).1.len(), 1);
    }

    /// What a resend applied twice looks like: the first application set
    /// "b", the second was refused because the version had moved, and the
    /// client reports the CAS refused while "b" is what the store holds.
    #[test]
    fn a_resent_cas_applied_twice_is_flagged() {
        let h = vec![
            op(1, 0, 10, Outcome::Ok, write("k", "a")),
            op(21, 20, 30, Outcome::Fail, cas("k", Some("a"), "b", true)),
            op(3, 40, 50, Outcome::Ok, read("k", Some("b"))),
        ];
        assert_eq!(check_kv(&h).1.len(), 1);
    }

    #[test]
    fn refusals_other_than_conflict_and_failed_reads_say_nothing() {
        let h = vec![
            op(1, 0, 10, Outcome::Ok, write("k", "a")),
            op(2, 20, 30, Outcome::Fail, cas("k", Some("a"), "b", false)),
            op(2, 20, 30, Outcome::Fail, write("k", "x")),
            op(3, 40, 50, Outcome::Ok, read("k", Some("a"))),
        ];
        assert!(to_checker_ops(&h).len() == 2);
        assert!(check_kv(&h).1.is_empty());
    }
}
