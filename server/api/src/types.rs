//! JSON bodies of the HTTP API.

use serde::{Deserialize, Serialize};

/// `PUT /v1/kv/{key}` body.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KvPutRequest {
    /// Any JSON value.
    pub value: serde_json::Value,
    /// Compare-and-set: the write applies only if the key's current version is
    /// this (0 = the key must not exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_version: Option<u64>,
    /// Fencing: the store applies the write only if `token` is the current
    /// grant of `lock` (412 `stale_token` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<Fence>,
}

/// A fencing token presented with a write.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Fence {
    pub lock: String,
    pub token: u64,
}

/// `PUT /v1/kv/{key}` response.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KvPutResponse {
    /// The new version of the key: the cluster revision of this write.
    pub version: u64,
}

/// `DELETE /v1/kv/{key}` query and response.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct KvDeleteQuery {
    #[serde(default)]
    pub if_version: Option<u64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KvDeleteResponse {
    /// Whether a value was present and removed.
    pub deleted: bool,
}

/// `GET /v1/kv/{key}` response, also one item of a listing.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KvItem {
    pub key: String,
    pub value: serde_json::Value,
    pub version: u64,
    /// Present on `consistency=stale` reads: how far behind the leader this
    /// node may be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staleness_ms: Option<u64>,
}

/// `GET /v1/kv?prefix=` response.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KvListResponse {
    pub items: Vec<KvItem>,
    /// True when the listing stopped at `limit`.
    pub truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staleness_ms: Option<u64>,
}

/// The read consistency levels of DESIGN §2.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Leader state confirmed by a quorum round (ReadIndex).
    #[default]
    Linearizable,
    /// The leader's applied state, without a quorum round.
    Leader,
    /// This node's state, possibly behind; bounded by `max_staleness_ms`.
    Stale,
}

impl Consistency {
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Linearizable => "linearizable",
            Consistency::Leader => "leader",
            Consistency::Stale => "stale",
        }
    }
}

/// Query string of reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReadQuery {
    #[serde(default)]
    pub consistency: Consistency,
    #[serde(default)]
    pub max_staleness_ms: Option<u64>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Role of a node as it reports itself.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = NodeRole))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Learner => "learner",
            Role::Shutdown => "shutdown",
        };
        f.write_str(s)
    }
}

/// Membership kind of a cluster member.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberKind {
    Voter,
    Learner,
}

/// One member as the answering node sees the membership.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MemberStatus {
    pub id: u64,
    pub addr: String,
    pub kind: MemberKind,
    /// Last log index known replicated to this member (leader only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_index: Option<u64>,
}

/// The circuit breaker of the answering node's own calls to one peer
/// (Raft RPCs, forwards to the leader, cache messages).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerStatus {
    pub id: u64,
    pub breaker: crate::breaker::BreakerState,
    /// Calls to the peer that failed in a row (reset by any answer).
    pub consecutive_failures: u32,
}

/// `GET /v1/status`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeStatus {
    pub id: u64,
    pub addr: String,
    /// dsync release version of this node.
    pub version: String,
    /// Peer wire protocol version.
    pub protocol: u32,
    pub role: Role,
    pub term: u64,
    pub leader: Option<u64>,
    pub last_index: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    /// Milliseconds since the leader last confirmed its quorum (leader only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub millis_since_quorum_ack: Option<u64>,
    pub members: Vec<MemberStatus>,
    /// This node's breaker for each other member (absent from nodes older
    /// than the field).
    #[serde(default)]
    pub peers: Vec<PeerStatus>,
}

/// Longest member address (`host:port`) a join may name.
pub const MAX_MEMBER_ADDR: usize = 255;

/// `POST /v1/cluster/members`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub id: u64,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::member_addr))]
    pub addr: String,
    /// Promote to voter once caught up (default true); false keeps a learner.
    #[serde(default = "default_true")]
    pub voter: bool,
}

fn default_true() -> bool {
    true
}

/// `POST /v1/cluster/leader/transfer`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LeaderTransferRequest {
    /// The voter to hand leadership to; default: the most caught-up follower.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub to: Option<u64>,
}

/// Where leadership went and how long the hand-off took.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeaderTransferResponse {
    pub from: u64,
    pub leader: u64,
    pub term: u64,
    pub elapsed_ms: u64,
}

/// Response to membership changes: the membership after the change.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MembershipResponse {
    pub members: Vec<MemberStatus>,
}

/// `POST /v1/node/drain` response.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DrainResponse {
    /// The node that now refuses client requests.
    pub id: u64,
    pub draining: bool,
    /// The leader as the node knows it after the drain.
    pub leader: Option<u64>,
    /// Whether the node led when the drain started.
    pub was_leader: bool,
}

/// `GET /health` and `GET /ready`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Health {
    pub ok: bool,
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_request_rejects_unknown_fields() {
        let err = serde_json::from_str::<KvPutRequest>(r#"{"value":1,"bogus":2}"#).unwrap_err();
        assert!(err.to_string().contains("bogus"));
    }

    #[test]
    fn consistency_defaults_to_linearizable() {
        let q: ReadQuery = serde_json::from_str("{}").unwrap();
        assert_eq!(q.consistency, Consistency::Linearizable);
    }

    /// A status from a node older than `peers` still parses (as no peers),
    /// and a new one carries each breaker as its snake_case state.
    #[test]
    fn status_peers_are_optional_on_the_wire() {
        let mut old = serde_json::json!({
            "id": 1, "addr": "127.0.0.1:7001", "version": "0.1.0", "protocol": 1,
            "role": "leader", "term": 2, "leader": 1, "last_index": 9,
            "commit_index": 9, "applied_index": 9, "snapshot_index": 0,
            "members": [{"id": 1, "addr": "127.0.0.1:7001", "kind": "voter"}]
        });
        let status: NodeStatus = serde_json::from_value(old.clone()).unwrap();
        assert!(status.peers.is_empty());

        old["peers"] = serde_json::json!([
            {"id": 2, "breaker": "half_open", "consecutive_failures": 4}
        ]);
        let status: NodeStatus = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(
            status.peers,
            [PeerStatus {
                id: 2,
                breaker: crate::breaker::BreakerState::HalfOpen,
                consecutive_failures: 4,
            }]
        );
        assert_eq!(serde_json::to_value(&status).unwrap(), old);
    }
}
