//! Batches concurrent commands into one Raft entry.
//!
//! One entry = one log append = one fsync per node, so under load many
//! client writes share the cost of a round. A bounded number of batches are
//! in flight at once; while they are, new commands queue up and form the
//! next, larger batch.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::raft::Raft;
use crate::state::{CmdOutput, Command, Request};
use crate::tasks::Tasks;
use prometheus_client::metrics::histogram::Histogram;

/// Why a command was not applied.
#[derive(Debug, Clone, PartialEq)]
pub enum ProposeError {
    /// This node is not the leader; the leader if known (id, address).
    NotLeader(Option<(u64, String)>),
    /// Raft is shutting down or failed before the command was handed to it.
    Stopped(String),
    /// Raft failed after taking the command: it may still commit.
    Unknown(String),
}

impl From<ProposeError> for crate::error::Error {
    /// A failed proposal on this node, as the client's error.
    fn from(e: ProposeError) -> Self {
        use crate::error::Error;
        match e {
            ProposeError::NotLeader(_) => Error::Unavailable("leadership moved; retry".into()),
            ProposeError::Stopped(m) => Error::Unavailable(format!("node is stopping: {m}")),
            ProposeError::Unknown(m) => Error::OutcomeUnknown(format!(
                "the write was proposed but Raft failed before it committed ({m}); \
                 it may still be applied: read before retrying"
            )),
        }
    }
}

struct Pending {
    cmd: Command,
    reply: oneshot::Sender<Result<CmdOutput, ProposeError>>,
}

#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::Sender<Pending>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Times the proposer yields to the runtime before sealing a batch.
const DISPATCH_YIELDS: usize = 8;

/// Bytes of commands per entry; keeps append RPCs and log rows bounded.
const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;

impl Proposer {
    pub fn spawn(
        tasks: &Tasks,
        raft: Raft,
        max_batch: usize,
        in_flight: usize,
        batch_size: Histogram,
    ) -> Proposer {
        let (tx, rx) = mpsc::channel(max_batch * 4);
        tasks.spawn(
            "proposer",
            run(tasks.clone(), raft, rx, max_batch, in_flight, batch_size),
        );
        Proposer { tx }
    }

    pub async fn propose(&self, cmd: Command) -> Result<CmdOutput, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending { cmd, reply })
            .await
            .map_err(|_| ProposeError::Stopped("proposer stopped".into()))?;
        rx.await
            .unwrap_or_else(|_| Err(ProposeError::Unknown("proposal dropped".into())))
    }
}

/// `first` and what else is already queued behind it in `rx`, up to `max`
/// items or about `max_bytes` (by `size`), after `yields` turns of the
/// runtime.
///
/// Lets the runtime run what is already ready first: commands sent in
/// reaction to the same event (a lock's next holder releasing while the
/// previous one queues again) then share one entry, one fsync, instead of
/// the second waiting behind the first's. Costs a lone command
/// microseconds, not a timer tick.
pub(crate) async fn collect_batch<T>(
    rx: &mut mpsc::Receiver<T>,
    first: T,
    (max, max_bytes, yields): (usize, usize, usize),
    size: impl Fn(&T) -> usize,
) -> Vec<T> {
    for _ in 0..yields {
        tokio::task::yield_now().await;
    }
    let mut bytes = size(&first);
    let mut batch = vec![first];
    while batch.len() < max && bytes < max_bytes {
        match rx.try_recv() {
            Ok(p) => {
                bytes += size(&p);
                batch.push(p);
            }
            Err(_) => break,
        }
    }
    batch
}

async fn run(
    tasks: Tasks,
    raft: Raft,
    mut rx: mpsc::Receiver<Pending>,
    max_batch: usize,
    in_flight: usize,
    batch_size: Histogram,
) {
    let slots = Arc::new(Semaphore::new(in_flight.max(1)));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else { return };
        let limits = (max_batch, MAX_BATCH_BYTES, DISPATCH_YIELDS);
        let batch = collect_batch(&mut rx, first, limits, |p| p.cmd.size_hint()).await;
        batch_size.observe(batch.len() as f64);
        let raft = raft.clone();
        tasks.spawn("proposal", async move {
            let (cmds, replies): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
            let result = raft
                .client_write(Arc::new(Request {
                    now_ms: now_ms(),
                    cmds,
                }))
                .await;
            drop(permit);
            match result {
                Ok(resp) => {
                    for (reply, out) in replies.into_iter().zip(resp.data.0) {
                        let _ = reply.send(Ok(out));
                    }
                }
                Err(e) => {
                    let err = match e {
                        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                            ProposeError::NotLeader(f.leader_id.zip(f.leader_node.map(|n| n.addr)))
                        }
                        // openraft 0.9 answers ForwardToLeader only for an
                        // entry it never appended or has truncated; any
                        // other failure leaves the entry's fate open.
                        other => ProposeError::Unknown(other.to_string()),
                    };
                    for reply in replies {
                        let _ = reply.send(Err(err.clone()));
                    }
                }
            }
        });
    }
}
