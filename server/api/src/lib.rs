//! Wire types, error codes, route paths and the typed async [`Client`] of dsync.
//!
//! This crate is the leaf of the workspace: the server, the CLI, the dashboard
//! and the tests all speak through these types, so a field renamed here is
//! renamed everywhere.

pub mod admin;
pub mod auth;
pub mod breaker;
pub mod cache;
pub mod client;
pub mod error;
pub mod events;
pub mod locks;
pub mod queue;
pub mod routes;
#[cfg(feature = "openapi")]
pub mod schema;
pub mod shards;
pub mod types;

#[cfg(all(test, feature = "openapi"))]
mod schema_bounds;

pub use client::{error_chain, CallOpts, Client, ClientConfig, ClientError};
pub use error::{ApiError, ErrorBody, ErrorCode};

/// Response header naming the node that answered.
pub const HEADER_NODE: &str = "x-dsync-node";
/// Response header naming the leader as the answering node knows it (empty if none).
pub const HEADER_LEADER: &str = "x-dsync-leader";
/// Response header carrying the answering node's current Raft term.
pub const HEADER_TERM: &str = "x-dsync-term";

/// Request header naming one logical write: a write resent with the same id
/// (and the same body) is applied at most once, and the resend gets the
/// first answer. 1 to 64 bytes of letters, digits and `-_.:`.
pub const HEADER_REQUEST_ID: &str = "x-dsync-request-id";

/// Request header carrying the cluster secret on peer (`/raft/*`) calls.
pub const HEADER_CLUSTER_SECRET: &str = "x-dsync-cluster-secret";

/// Version of the peer wire protocol; nodes refuse peers that speak another.
/// 2: log entries may carry deduplicated writes (`Command::Once`), and a
/// late `LockCancel` no longer releases a grant; protocol 1 nodes would
/// decode or apply such logs differently.
pub const PROTOCOL_VERSION: u32 = 2;
