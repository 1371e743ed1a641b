//! A follower's client writes, forwarded to the leader in batches.
//!
//! One forward per write made the leader serve one more HTTP request per
//! write sent to a follower, so spreading clients over the nodes halved
//! the cluster's write rate. Like the proposer on the leader, a bounded
//! number of forwards are in flight at once; writes arriving meanwhile
//! queue up and leave together as one `WriteBatch`, whose commands the
//! leader proposes together and answers one by one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dsync_api::routes;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::forward::{forward_failed, FORWARD_TIMEOUT};
use super::{ForwardReply, ForwardRequest};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::proposer::collect_batch;
use crate::raft::breakers::PeerBreakers;
use crate::raft::network::{post_bincode, PeerError};
use crate::state::{CmdError, CmdValue, Command};
use crate::tasks::Tasks;

/// A forward's outcome: the leader's answer, or why none came.
pub(crate) type PeerReply =
    std::result::Result<std::result::Result<ForwardReply, CmdError>, PeerError>;

/// Sends one forward to the leader `id` at `addr` (a fake in tests).
pub(crate) trait Transport: Send + Sync + 'static {
    fn post<'a>(
        &'a self,
        id: u64,
        addr: &'a str,
        req: &'a ForwardRequest,
    ) -> BoxFuture<'a, PeerReply>;
}

/// The peer HTTP client: pooled keep-alive connections, so the batches in
/// flight to one leader reuse a few connections; through that peer's
/// circuit breaker.
pub(crate) struct PeerTransport(pub reqwest::Client, pub PeerBreakers);

impl Transport for PeerTransport {
    fn post<'a>(
        &'a self,
        id: u64,
        addr: &'a str,
        req: &'a ForwardRequest,
    ) -> BoxFuture<'a, PeerReply> {
        Box::pin(post_bincode(
            &self.0,
            &self.1,
            (id, addr),
            routes::RAFT_FORWARD,
            req,
            FORWARD_TIMEOUT,
        ))
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Commands per forward.
    pub max_batch: usize,
    /// Bytes of commands per forward (by `Command::size_hint`); the last
    /// command may go past it.
    pub max_bytes: usize,
    /// Forwards in flight at once.
    pub in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch: 256,
            max_bytes: 2 * 1024 * 1024,
            in_flight: 4,
        }
    }
}

/// How long a leader that refused a batch is sent single writes only: it
/// runs an older release until it is upgraded, restarted or replaced.
const NO_BATCH_FOR: Duration = Duration::from_secs(30);

/// Times the batcher yields before sealing a batch, so writes made ready
/// by the same wakeup leave together (as in the proposer).
const DISPATCH_YIELDS: usize = 4;

struct Pending {
    leader: u64,
    addr: String,
    cmd: Command,
    reply: oneshot::Sender<Result<CmdValue>>,
}

#[derive(Clone)]
pub(crate) struct Forwarder {
    tx: mpsc::Sender<Pending>,
}

impl Forwarder {
    pub fn spawn(
        tasks: &Tasks,
        transport: Arc<dyn Transport>,
        limits: Limits,
        metrics: Arc<Metrics>,
    ) -> Forwarder {
        let (tx, rx) = mpsc::channel(limits.max_batch.max(1) * 4);
        let batcher = Batcher {
            tasks: tasks.clone(),
            transport,
            metrics,
            no_batch: Default::default(),
        };
        tasks.spawn("forwarder", batcher.run(rx, limits));
        Forwarder { tx }
    }

    /// Forwards one client write to the leader `leader` at `addr` and
    /// returns the leader's answer to it.
    pub async fn write(&self, leader: u64, addr: String, cmd: Command) -> Result<CmdValue> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending {
                leader,
                addr,
                cmd,
                reply,
            })
            .await
            .map_err(|_| Error::Unavailable("node is stopping: nothing was sent".into()))?;
        rx.await.unwrap_or_else(|_| {
            Err(Error::OutcomeUnknown(
                "the node stopped while forwarding the write; \
                 it may have been applied: read before retrying"
                    .into(),
            ))
        })
    }

    /// Writes queued and not yet in a batch.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

#[derive(Clone)]
struct Batcher {
    tasks: Tasks,
    transport: Arc<dyn Transport>,
    metrics: Arc<Metrics>,
    /// Leaders that refused a batch, and since when.
    no_batch: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Batcher {
    async fn run(self, mut rx: mpsc::Receiver<Pending>, limits: Limits) {
        let slots = Arc::new(Semaphore::new(limits.in_flight.max(1)));
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let Some(first) = rx.recv().await else { return };
            let bounds = (limits.max_batch, limits.max_bytes, DISPATCH_YIELDS);
            let batch = collect_batch(&mut rx, first, bounds, |p| p.cmd.size_hint()).await;
            let this = self.clone();
            self.tasks.spawn("forward", async move {
                // Leadership may have moved while these queued: one
                // forward per leader they were meant for.
                let sends = by_addr(batch)
                    .into_iter()
                    .map(|(addr, group)| this.send(addr, group));
                futures::future::join_all(sends).await;
                drop(permit);
            });
        }
    }

    async fn send(&self, addr: String, group: Vec<Pending>) {
        self.metrics.forwarded.inc_by(group.len() as u64);
        self.metrics.forward_batch_size.observe(group.len() as f64);
        if group.len() == 1 || !self.batches_to(&addr) {
            self.send_singly(&addr, group).await;
            return;
        }
        let leader = group[0].leader;
        let (cmds, replies): (Vec<_>, Vec<_>) = group.into_iter().map(|p| (p.cmd, p.reply)).unzip();
        let req = ForwardRequest::WriteBatch(cmds);
        let res = self.transport.post(leader, &addr, &req).await;
        match res {
            Ok(Ok(ForwardReply::Values(values))) if values.len() == replies.len() => {
                for (reply, value) in replies.into_iter().zip(values) {
                    let _ = reply.send(value.map_err(|e| Error::Api(e.to_api())));
                }
            }
            Ok(Ok(ForwardReply::Values(values))) => {
                let n = replies.len();
                for reply in replies {
                    let _ = reply.send(Err(Error::Internal(format!(
                        "the leader answered {} of {n} forwarded writes",
                        values.len()
                    ))));
                }
            }
            Err(e) if refused_as_unknown(&e) => {
                tracing::info!(leader = %addr, "the leader cannot take forwarded batches; sending writes one by one");
                self.no_batch_for(&addr);
                let ForwardRequest::WriteBatch(cmds) = req else {
                    return;
                };
                // Nothing of the batch was applied: it was refused undecoded.
                let group = cmds
                    .into_iter()
                    .zip(replies)
                    .map(|(cmd, reply)| Pending {
                        leader,
                        addr: addr.clone(),
                        cmd,
                        reply,
                    })
                    .collect();
                self.send_singly(&addr, group).await;
            }
            other => {
                for reply in replies {
                    let _ = reply.send(batch_failed(&other));
                }
            }
        }
    }

    /// Each write as a `Write` of its own, all at once.
    async fn send_singly(&self, addr: &str, group: Vec<Pending>) {
        let sends = group.into_iter().map(|p| async move {
            let res = self
                .transport
                .post(p.leader, addr, &ForwardRequest::Write(p.cmd))
                .await;
            let value = match res {
                Ok(Ok(ForwardReply::Value(v))) => Ok(v),
                other => batch_failed(&other),
            };
            let _ = p.reply.send(value);
        });
        futures::future::join_all(sends).await;
    }

    fn batches_to(&self, addr: &str) -> bool {
        let mut refused = self.no_batch.lock().unwrap_or_else(|p| p.into_inner());
        refused.retain(|_, since| since.elapsed() < NO_BATCH_FOR);
        !refused.contains_key(addr)
    }

    fn no_batch_for(&self, addr: &str) {
        let mut refused = self.no_batch.lock().unwrap_or_else(|p| p.into_inner());
        refused.insert(addr.to_string(), Instant::now());
    }
}

/// The pending writes grouped by leader address, in their order.
fn by_addr(batch: Vec<Pending>) -> Vec<(String, Vec<Pending>)> {
    let mut groups: Vec<(String, Vec<Pending>)> = Vec::new();
    for p in batch {
        match groups.iter_mut().find(|(addr, _)| *addr == p.addr) {
            Some((_, group)) => group.push(p),
            None => groups.push((p.addr.clone(), vec![p])),
        }
    }
    groups
}

/// A leader of an older release cannot decode `WriteBatch`: its extractor
/// answers 400 `invalid_argument` "bad peer message" before doing anything.
fn refused_as_unknown(e: &PeerError) -> bool {
    matches!(e, PeerError::Rejected(_, 400, text) if text.contains("bad peer message"))
}

/// What every write of a forward gets when the forward as a whole failed
/// or got an answer that is not one per write.
fn batch_failed(res: &PeerReply) -> Result<CmdValue> {
    Err(match res {
        Err(e) => forward_failed(e, true),
        // The leader refused the whole forward (no longer the leader, …).
        Ok(Err(e)) => Error::Api(e.to_api()),
        Ok(Ok(other)) => other.unexpected(),
    })
}

#[cfg(test)]
#[path = "forward_batch_tests.rs"]
mod tests;
