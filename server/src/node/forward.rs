//! Writes, and their one-hop forwarding from followers to the leader.

use std::sync::Arc;
use std::time::Duration;

use dsync_api::types::{LeaderTransferResponse, MemberStatus};
use dsync_api::{routes, ErrorCode};
use serde::{Deserialize, Serialize};

use super::Node;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::proposer::ProposeError;
use crate::raft::breakers::PeerBreakers;
use crate::raft::network::{post_bincode, PeerError};
use crate::state::{CmdError, CmdValue, Command, Proposal};

/// Sends [`ForwardRequest`]s to the leader over `/raft/forward`.
pub(super) struct Forwarding {
    peers: reqwest::Client,
    breakers: PeerBreakers,
    metrics: Arc<Metrics>,
}

impl Forwarding {
    pub(super) async fn send(
        &self,
        to: u64,
        addr: &str,
        req: &ForwardRequest,
    ) -> Result<ForwardReply> {
        self.metrics.forwarded.inc();
        let reply: Result<ForwardReply, CmdError> = post_bincode(
            &self.peers,
            &self.breakers,
            (to, addr),
            routes::RAFT_FORWARD,
            req,
            FORWARD_TIMEOUT,
        )
        .await
        .map_err(|e| {
            let write = matches!(
                req,
                ForwardRequest::Write(_) | ForwardRequest::Flush(_) | ForwardRequest::WriteBatch(_)
            );
            forward_failed(&e, write)
        })?;
        reply.map_err(|e| Error::Api(e.to_api()))
    }
}

/// What a follower asks of the leader over `/raft/forward`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardRequest {
    Write(Command),
    /// A linearizable read index (ReadIndex round on the leader).
    ReadIndex,
    /// The leader's applied index, without a round.
    AppliedIndex,
    Join {
        id: u64,
        addr: String,
        voter: bool,
    },
    TransferLeader {
        to: Option<u64>,
    },
    /// To a leadership-transfer target, from the leader handing off.
    Elect,
    Remove {
        id: u64,
    },
    /// A write-back flush: its node owns the line, so the directory has no
    /// copy to invalidate (and may be waiting on this very flush). Last, so
    /// every older variant keeps its bincode tag.
    Flush(Command),
    /// Client writes a follower collected while its previous forwards were
    /// in flight (`forward_batch.rs`); answered with `Values`, one per
    /// command in order. A leader of an older release refuses it as a bad
    /// peer message, and the follower then sends each as a `Write`.
    WriteBatch(Vec<Command>),
    /// A queue request for the leader of a queue group (`routed.rs`).
    Group(u64, super::routed::GroupRequest),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardReply {
    Value(CmdValue),
    Index(u64),
    /// JSON text: `MemberStatus` skips empty fields, which bincode cannot.
    Members(String),
    Transferred {
        from: u64,
        leader: u64,
        term: u64,
        elapsed_ms: u64,
    },
    Done,
    /// The answers to a `WriteBatch`, in its order.
    Values(Vec<Result<CmdValue, CmdError>>),
    Group(super::routed::GroupReply),
}

impl ForwardReply {
    /// The error for an answer of another kind than the request asked for
    /// (a leader of another release, or a bug).
    pub(super) fn unexpected(&self) -> Error {
        Error::Internal(format!("unexpected forward reply {self:?}"))
    }

    /// A write's result.
    pub(super) fn value(self) -> Result<CmdValue> {
        match self {
            ForwardReply::Value(v) => Ok(v),
            other => Err(other.unexpected()),
        }
    }

    /// A read index.
    pub(super) fn index(self) -> Result<u64> {
        match self {
            ForwardReply::Index(i) => Ok(i),
            other => Err(other.unexpected()),
        }
    }

    /// The membership after a join or a removal.
    pub(super) fn members(self) -> Result<Vec<MemberStatus>> {
        match self {
            ForwardReply::Members(m) => serde_json::from_str(&m)
                .map_err(|e| Error::Internal(format!("bad membership from the leader: {e}"))),
            other => Err(other.unexpected()),
        }
    }

    /// How a leadership transfer went.
    pub(super) fn transferred(self) -> Result<LeaderTransferResponse> {
        match self {
            ForwardReply::Transferred {
                from,
                leader,
                term,
                elapsed_ms,
            } => Ok(LeaderTransferResponse {
                from,
                leader,
                term,
                elapsed_ms,
            }),
            other => Err(other.unexpected()),
        }
    }

    /// A queue group's answer.
    pub(super) fn group(self) -> Result<super::routed::GroupReply> {
        match self {
            ForwardReply::Group(r) => Ok(r),
            other => Err(other.unexpected()),
        }
    }
}

pub(super) const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn cmd_err(e: Error) -> CmdError {
    let api = e.to_api();
    CmdError {
        code: api.code,
        message: api.message,
        details: (!api.details.is_empty())
            .then(|| serde_json::Value::Object(api.details).to_string()),
    }
}

fn no_leader() -> Error {
    Error::Unavailable("no leader is elected yet".into())
}

/// Whether a forward that failed this way may still have been acted on:
/// sent with its answer lost, or a server error (ours after applying, or a
/// proxy's). A 4xx is a refusal before anything was proposed.
fn maybe_applied(e: &PeerError) -> bool {
    match e {
        PeerError::Unreachable(..) => false,
        PeerError::Network(..) | PeerError::TimedOut(..) => true,
        PeerError::Rejected(_, status, _) => *status >= 500,
    }
}

/// The client's error for a forward that failed on the way: `write` says
/// whether it carried writes, which may then have been applied.
pub(super) fn forward_failed(e: &PeerError, write: bool) -> Error {
    match e {
        PeerError::Unreachable(..) => {
            Error::Unavailable(format!("leader unreachable, nothing was sent: {e}"))
        }
        _ if write && maybe_applied(e) => Error::OutcomeUnknown(format!(
            "the write was sent towards the leader and no answer came back ({e}); \
             it may have been applied: read before retrying"
        )),
        _ => Error::Unavailable(format!("forwarding to the leader failed: {e}")),
    }
}

impl Node {
    /// Applies one command through Raft, forwarding to the leader if needed.
    /// A KV write invalidates the cached copies of its key first.
    pub async fn write(&self, cmd: Command) -> Result<CmdValue> {
        self.route_write(cmd, false).await
    }

    /// [`write`](Self::write) of a client command, its answer typed.
    pub async fn propose<A>(&self, p: Proposal<A>) -> Result<A> {
        let (cmd, answer) = p.split();
        Ok(answer.read(self.write(cmd).await?)?)
    }

    /// A write-back flush of a line this node owns (see [`ForwardRequest::Flush`]).
    pub(crate) async fn write_owned(&self, cmd: Command) -> Result<CmdValue> {
        self.route_write(cmd, true).await
    }

    async fn route_write(&self, cmd: Command, owned: bool) -> Result<CmdValue> {
        match self.leader() {
            Some((leader, addr)) if leader != self.id => {
                self.forward_write(leader, addr, cmd, owned).await
            }
            // Believed leader: no copy of the command is kept (it may carry a
            // large batch); if leadership just moved, the client's 503 retry
            // finds the new leader.
            Some(_) if owned => self.propose_local(cmd).await,
            Some(_) => self.write_local(cmd).await,
            // Straight to the proposer would skip the cache directory.
            None if !owned && cmd.kv_key().is_some() => Err(no_leader()),
            None => match self.control.proposer.propose(cmd.clone()).await {
                Ok(out) => out.map_err(|e| Error::Api(e.to_api())),
                Err(ProposeError::NotLeader(Some((leader, addr)))) => {
                    self.forward_write(leader, addr, cmd, owned).await
                }
                Err(ProposeError::NotLeader(None)) => Err(no_leader()),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// A write on the leader only: forwarded requests never hop twice.
    pub(crate) async fn write_local(&self, cmd: Command) -> Result<CmdValue> {
        self.refuse_while_handing_off()?;
        let _copies = match cmd.kv_key() {
            Some(key) => Some(crate::cache::invalidate_for_kv(self, key).await?),
            None => None,
        };
        self.propose_local(cmd).await
    }

    /// A write on the leader that needs no cache invalidation.
    pub(crate) async fn propose_local(&self, cmd: Command) -> Result<CmdValue> {
        self.refuse_while_handing_off()?;
        match self.control.proposer.propose(cmd).await {
            Ok(out) => out.map_err(|e| Error::Api(e.to_api())),
            Err(e) => Err(e.into()),
        }
    }

    /// A client write goes through the batcher, which shares one forward
    /// among the writes queued behind the ones in flight; a flush stays a
    /// request of its own.
    async fn forward_write(
        &self,
        leader: u64,
        addr: String,
        cmd: Command,
        owned: bool,
    ) -> Result<CmdValue> {
        if !owned {
            return self.forwarder.write(leader, addr, cmd).await;
        }
        self.forward(leader, &addr, &ForwardRequest::Flush(cmd))
            .await?
            .value()
    }

    /// Sends `req` to node `to` at `addr` (the leader, or a transfer target).
    pub(super) async fn forward(
        &self,
        to: u64,
        addr: &str,
        req: &ForwardRequest,
    ) -> Result<ForwardReply> {
        self.forwarding().send(to, addr, req).await
    }

    /// What a forward needs, for a task that cannot borrow the node.
    pub(super) fn forwarding(&self) -> Forwarding {
        Forwarding {
            peers: self.peers.clone(),
            breakers: self.breakers.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Serves a request forwarded by a follower.
    pub async fn handle_forward(&self, req: ForwardRequest) -> Result<ForwardReply, CmdError> {
        // Only the transfer target's campaign, and queue groups (which have
        // leaders of their own), are served by a non-leader.
        if !matches!(req, ForwardRequest::Elect | ForwardRequest::Group(..)) && !self.is_leader() {
            return Err(CmdError::new(
                ErrorCode::Unavailable,
                "this node is no longer the leader; retry",
            ));
        }
        let res = match req {
            ForwardRequest::Write(cmd) => self.write_local(cmd).await.map(ForwardReply::Value),
            ForwardRequest::Flush(cmd) => self.propose_local(cmd).await.map(ForwardReply::Value),
            // Together, so the proposer puts them in the same entries; each
            // KV write still goes through its key's directory lock, which
            // KV writes share (two of one key commit together).
            ForwardRequest::WriteBatch(cmds) => {
                let writes = cmds.into_iter().map(|cmd| self.write_local(cmd));
                let values = futures::future::join_all(writes).await;
                Ok(ForwardReply::Values(
                    values.into_iter().map(|v| v.map_err(cmd_err)).collect(),
                ))
            }
            ForwardRequest::ReadIndex => self.local_read_index().await.map(ForwardReply::Index),
            ForwardRequest::AppliedIndex => Ok(ForwardReply::Index(self.applied_index())),
            ForwardRequest::Join { id, addr, voter } => self
                .join_local(id, addr, voter)
                .await
                .map(|m| ForwardReply::Members(serde_json::to_string(&m).unwrap_or_default())),
            ForwardRequest::TransferLeader { to } => {
                self.transfer_local(to)
                    .await
                    .map(|r| ForwardReply::Transferred {
                        from: r.from,
                        leader: r.leader,
                        term: r.term,
                        elapsed_ms: r.elapsed_ms,
                    })
            }
            ForwardRequest::Elect => self.elect_now().await.map(|()| ForwardReply::Done),
            ForwardRequest::Group(id, req) => return self.handle_group(id, req).await,
            ForwardRequest::Remove { id } => self
                .remove_local(id)
                .await
                .map(|m| ForwardReply::Members(serde_json::to_string(&m).unwrap_or_default())),
        };
        res.map_err(cmd_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_answer_or_a_server_error_may_have_applied_a_forward() {
        let peer = || "127.0.0.1:1".to_string();
        assert!(!maybe_applied(&PeerError::Unreachable(
            peer(),
            "refused".into()
        )));
        assert!(maybe_applied(&PeerError::Network(peer(), "reset".into())));
        assert!(maybe_applied(&PeerError::TimedOut(peer(), "slow".into())));
        assert!(maybe_applied(&PeerError::Rejected(
            peer(),
            502,
            "bad gateway".into()
        )));
        assert!(!maybe_applied(&PeerError::Rejected(
            peer(),
            400,
            "bad request".into()
        )));
    }

    /// Nodes of different releases talk during a rolling upgrade: the
    /// variants a previous release knows keep their bincode tags.
    #[test]
    fn new_forward_variants_come_last_so_older_tags_stay() {
        let tag = |bytes: Vec<u8>| u32::from_le_bytes(bytes[..4].try_into().unwrap());
        let req = |r: &ForwardRequest| tag(bincode::serialize(r).unwrap());
        assert_eq!(req(&ForwardRequest::Write(Command::Tick)), 0);
        assert_eq!(req(&ForwardRequest::Flush(Command::Tick)), 7);
        assert_eq!(req(&ForwardRequest::WriteBatch(vec![Command::Tick])), 8);
        let reply = |r: &ForwardReply| tag(bincode::serialize(r).unwrap());
        assert_eq!(reply(&ForwardReply::Value(CmdValue::Done)), 0);
        assert_eq!(reply(&ForwardReply::Done), 4);
        assert_eq!(reply(&ForwardReply::Values(vec![])), 5);
    }
}
