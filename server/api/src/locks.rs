//! Wire types of the lock manager (`/v1/locks`).

use serde::{Deserialize, Serialize};

/// Longest lock name, in bytes.
pub const MAX_LOCK_NAME: usize = 256;
/// Longest owner id, in bytes.
pub const MAX_OWNER: usize = 128;
/// Lease bounds.
pub const MIN_TTL_MS: u64 = 100;
pub const MAX_TTL_MS: u64 = 24 * 3600 * 1000;
pub const DEFAULT_TTL_MS: u64 = 30_000;
/// Longest a single acquire may wait in the queue.
pub const MAX_WAIT_MS: u64 = 600_000;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    #[default]
    Exclusive,
    Shared,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Exclusive => "exclusive",
            LockMode::Shared => "shared",
        }
    }
}

/// `POST /v1/locks/{name}/acquire`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AcquireRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::owner))]
    pub owner: String,
    #[serde(default)]
    pub mode: LockMode,
    /// Lease length; the lock is released if not kept alive within it.
    #[serde(default = "default_ttl")]
    #[cfg_attr(feature = "openapi", schema(minimum = 100, maximum = 86_400_000))]
    pub ttl_ms: u64,
    /// 0 = try once (409 `lock_busy`); > 0 = wait in the FIFO queue this long.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 600_000))]
    pub wait_ms: u64,
}

fn default_ttl() -> u64 {
    DEFAULT_TTL_MS
}

/// One holder of a lock.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HolderInfo {
    pub owner: String,
    pub mode: LockMode,
    /// Fencing token of this grant.
    pub token: u64,
    pub ttl_ms: u64,
    /// Milliseconds since the grant (leader clock).
    pub held_ms: u64,
    /// Milliseconds until the lease expires unless kept alive.
    pub expires_in_ms: u64,
}

/// One queued request.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WaiterInfo {
    pub owner: String,
    pub mode: LockMode,
    /// Milliseconds in the queue so far.
    pub waited_ms: u64,
    /// Milliseconds until the request gives up.
    pub deadline_in_ms: u64,
    /// True for a shared holder waiting to become exclusive.
    #[serde(default)]
    pub upgrade: bool,
}

/// `acquire` response: the grant.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AcquireResponse {
    pub name: String,
    pub owner: String,
    pub mode: LockMode,
    /// Fencing token: unique and strictly increasing across all grants.
    pub token: u64,
    pub ttl_ms: u64,
    pub holders: Vec<HolderInfo>,
}

/// `POST /v1/locks/{name}/release`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::owner))]
    pub owner: String,
    pub token: u64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReleaseResponse {
    pub released: bool,
}

/// `POST /v1/locks/{name}/keepalive`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeepaliveRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::owner))]
    pub owner: String,
    pub token: u64,
    /// New lease length (default: the grant's).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 100, maximum = 86_400_000))]
    pub ttl_ms: Option<u64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeepaliveResponse {
    pub token: u64,
    pub ttl_ms: u64,
}

/// `GET /v1/locks/{name}` and one item of `GET /v1/locks`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockInfo {
    pub name: String,
    pub holders: Vec<HolderInfo>,
    pub waiters: Vec<WaiterInfo>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockList {
    pub locks: Vec<LockInfo>,
}

/// An edge of the wait-for graph: `waiter` waits for `holder` on `lock`
/// (`holder` may also be a conflicting request ahead in the queue).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaitEdge {
    pub waiter: String,
    pub holder: String,
    pub lock: String,
}

/// A refused request that would have closed a cycle.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeadlockInfo {
    /// Owners in wait order: the first waits for the second, …, the last
    /// for the first. The first is the refused requester.
    pub cycle: Vec<String>,
    pub lock: String,
    /// Leader clock (ms since the Unix epoch) of the refusal.
    pub at_ms: u64,
}

/// `GET /v1/locks/graph`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockGraph {
    pub edges: Vec<WaitEdge>,
    pub deadlocks: Vec<DeadlockInfo>,
}

/// `POST /v1/locks/{name}/force-release` (admin): every holder evicted.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ForceReleaseResponse {
    pub name: String,
    /// Owners whose grants were dropped (empty if nobody held the lock).
    pub released: Vec<String>,
}
