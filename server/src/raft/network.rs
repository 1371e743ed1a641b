//! Raft RPCs between peers: compact bincode bodies over pooled keep-alive
//! HTTP connections (`/raft/append`, `/raft/vote`, `/raft/snapshot`).

use std::time::Duration;

use dsync_api::routes;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::breakers::PeerBreakers;
use super::{NodeId, TypeConfig};

/// Header every peer request carries: the sender's wire protocol version.
pub const PROTOCOL_HEADER: &str = "x-dsync-protocol";
pub const BINCODE: &str = "application/x-dsync-bincode";

/// Why a peer call failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer could not be reached at all (connection refused, reset before sending).
    #[error("peer {0} unreachable: {1}")]
    Unreachable(String, String),
    /// Sent, and the connection broke or the answer was unreadable: the
    /// peer may have acted.
    #[error("peer {0}: {1}")]
    Network(String, String),
    /// Sent, and no answer came within the call's timeout: the peer may be
    /// slow rather than gone, and may have acted.
    #[error("peer {0} did not answer in time: {1}")]
    TimedOut(String, String),
    /// The peer answered with an HTTP error status (the second field).
    #[error("peer {0} refused: HTTP {1}: {2}")]
    Rejected(String, u16, String),
}

/// Builds the shared HTTP client for peer traffic. Every peer request is
/// sent through it, so it carries the cluster secret (when there is one)
/// on all of them.
/// Idle pooled connections are dropped after `idle`, which must be shorter
/// than the peers' header read timeout (it closes idle connections too).
pub fn peer_http_client(
    cluster_secret: Option<&str>,
    idle: Duration,
    tls: Option<&crate::tls::Tls>,
) -> Result<reqwest::Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(s) = cluster_secret {
        let mut v = reqwest::header::HeaderValue::from_str(s).expect("secrets are validated text");
        v.set_sensitive(true);
        headers.insert(dsync_api::HEADER_CLUSTER_SECRET, v);
    }
    let mut builder = reqwest::Client::builder();
    if let Some(tls) = tls {
        // Only the cluster CA is trusted, and this node proves itself with
        // its own certificate (mutual TLS).
        let identity = reqwest::Identity::from_pem(&tls.identity_pem)
            .map_err(|e| format!("TLS identity: {e}"))?;
        builder = builder
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .identity(identity);
        for ca in reqwest::Certificate::from_pem_bundle(&tls.ca_pem)
            .map_err(|e| format!("TLS CA: {e}"))?
        {
            builder = builder.add_root_certificate(ca);
        }
    }
    builder
        .default_headers(headers)
        // Lines renewed together (granted together, renewed at half their
        // lease) burst past 32 requests to the leader: with a cap of 32, a
        // follower serving cache hits closed and re-dialled ~40 peer
        // connections a second.
        .pool_max_idle_per_host(256)
        .pool_idle_timeout(idle)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_millis(500))
        .build()
        .map_err(|e| format!("peer HTTP client: {e}"))
}

pub fn peer_url(addr: &str, path: &str) -> String {
    format!("{}{path}", dsync_api::client::base_url(addr))
}

/// What a failed send or read of a peer request says about the peer.
pub fn peer_error(addr: &str, e: &reqwest::Error) -> PeerError {
    if e.is_connect() {
        PeerError::Unreachable(addr.to_string(), e.to_string())
    } else if e.is_timeout() {
        PeerError::TimedOut(addr.to_string(), e.to_string())
    } else {
        PeerError::Network(addr.to_string(), e.to_string())
    }
}

/// POSTs a bincode body to peer `to` (id, address) through its breaker and
/// decodes the bincode reply.
pub async fn post_bincode<Req: Serialize, Resp: DeserializeOwned>(
    http: &reqwest::Client,
    breakers: &PeerBreakers,
    (id, addr): (u64, &str),
    path: &str,
    req: &Req,
    timeout: Duration,
) -> Result<Resp, PeerError> {
    let net = |e: &dyn std::fmt::Display| PeerError::Network(addr.to_string(), e.to_string());
    let body = bincode::serialize(req).map_err(|e| net(&e))?;
    let bytes = breakers
        .call(id, addr, async {
            let resp = http
                .post(peer_url(addr, path))
                .header("content-type", BINCODE)
                .header(PROTOCOL_HEADER, dsync_api::PROTOCOL_VERSION.to_string())
                .timeout(timeout)
                .body(body)
                .send()
                .await
                .map_err(|e| peer_error(addr, &e))?;
            let status = resp.status();
            let bytes = resp.bytes().await.map_err(|e| peer_error(addr, &e))?;
            if !status.is_success() {
                return Err(PeerError::Rejected(
                    addr.to_string(),
                    status.as_u16(),
                    refusal_text(&bytes),
                ));
            }
            Ok(bytes)
        })
        .await?;
    bincode::deserialize(&bytes).map_err(|e| net(&format!("bad reply: {e}")))
}

/// A peer's error answer as text: the JSON error's code and message, or
/// the start of whatever else it sent (a node of another release).
fn refusal_text(bytes: &[u8]) -> String {
    match serde_json::from_slice::<dsync_api::ErrorBody>(bytes) {
        Ok(body) => body.error.to_string(),
        Err(_) => String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
    }
}

pub struct Network {
    http: reqwest::Client,
    breakers: PeerBreakers,
    /// Whose RPCs these are: 0 the control group, else a queue group.
    group: u64,
}

impl Network {
    pub fn new(http: reqwest::Client, breakers: PeerBreakers) -> Self {
        Self::for_group(http, breakers, 0)
    }

    /// The network of one Raft group; every group shares the peer client
    /// and breakers, since they reach the same nodes.
    pub fn for_group(http: reqwest::Client, breakers: PeerBreakers, group: u64) -> Self {
        Network {
            http,
            breakers,
            group,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConn;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerConn {
        PeerConn {
            http: self.http.clone(),
            breakers: self.breakers.clone(),
            target,
            addr: node.addr.clone(),
            paths: RpcPaths::of(self.group),
        }
    }
}

pub struct PeerConn {
    http: reqwest::Client,
    breakers: PeerBreakers,
    target: NodeId,
    addr: String,
    paths: RpcPaths,
}

/// The paths of one group's Raft RPCs, built once per connection.
#[derive(Clone)]
struct RpcPaths {
    append: String,
    vote: String,
    snapshot: String,
}

impl RpcPaths {
    fn of(group: u64) -> Self {
        RpcPaths {
            append: routes::raft_rpc(group, "append"),
            vote: routes::raft_rpc(group, "vote"),
            snapshot: routes::raft_rpc(group, "snapshot"),
        }
    }
}

impl PeerConn {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let to = (self.target, self.addr.as_str());
        let reply: Result<Resp, RaftError<NodeId, E>> =
            post_bincode(&self.http, &self.breakers, to, path, req, option.hard_ttl())
                .await
                .map_err(|e| match e {
                    // Also what an open breaker answers: openraft then backs
                    // off (500 ms) instead of retrying at once.
                    PeerError::Unreachable(..) => RPCError::Unreachable(Unreachable::new(&e)),
                    PeerError::Network(..) | PeerError::TimedOut(..) | PeerError::Rejected(..) => {
                        RPCError::Network(NetworkError::new(&e))
                    }
                })?;
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(&self.paths.append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(&self.paths.snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(&self.paths.vote, &rpc, &option).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::Vote;

    fn vote_request() -> VoteRequest<NodeId> {
        VoteRequest::new(Vote::new(1, 1), None)
    }

    /// A peer whose breaker is open is reported unreachable at once, even
    /// one that would accept the connection and never answer.
    #[tokio::test]
    async fn an_open_breaker_fails_an_rpc_as_unreachable_without_sending() {
        let http = peer_http_client(None, Duration::from_secs(5), None).unwrap();
        let breakers = PeerBreakers::new(Duration::from_secs(60));
        let mut net = Network::new(http, breakers);
        // Port 1 on loopback refuses connections.
        let mut refused = net.new_client(2, &BasicNode::new("127.0.0.1:1")).await;
        let option = RPCOption::new(Duration::from_secs(5));
        for _ in 0..super::super::breakers::FAILURES_TO_OPEN {
            let err = refused.vote(vote_request(), option.clone()).await;
            assert!(matches!(err, Err(RPCError::Unreachable(_))), "{err:?}");
        }

        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap().to_string();
        let mut conn = net.new_client(2, &BasicNode::new(addr)).await;
        let sent = tokio::time::timeout(
            Duration::from_secs(30),
            conn.vote(vote_request(), RPCOption::new(Duration::from_secs(60))),
        )
        .await
        .expect("the RPC hung on an open breaker");
        match sent {
            Err(RPCError::Unreachable(e)) => {
                assert!(e.to_string().contains("circuit breaker open"), "{e}")
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
        let accepted = tokio::time::timeout(Duration::from_millis(1), silent.accept()).await;
        assert!(accepted.is_err(), "the RPC was sent");
    }

    #[test]
    fn a_refusal_reads_as_its_code_and_message() {
        let json = br#"{"error":{"code":"invalid_argument","message":"bad peer message: eof"}}"#;
        assert_eq!(
            refusal_text(json),
            "invalid_argument: bad peer message: eof"
        );
        assert_eq!(refusal_text(b"plain words"), "plain words");
    }
}
