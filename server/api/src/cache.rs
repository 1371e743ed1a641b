//! Wire types of the coherent cache (`/v1/cache`).

use serde::{Deserialize, Serialize};

/// MESI state of one node's line; a key a node does not hold is `I` and has
/// no line at all.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LineState {
    /// Modified: the sole copy, written by this node.
    M,
    /// Exclusive: the sole copy, clean.
    E,
    /// Shared: one of several clean copies.
    S,
    /// Invalid: not held (only appears in `states`, never as a line).
    I,
}

impl LineState {
    pub fn as_str(self) -> &'static str {
        match self {
            LineState::M => "M",
            LineState::E => "E",
            LineState::S => "S",
            LineState::I => "I",
        }
    }
}

/// `GET /v1/cache/{key}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheItem {
    pub value: serde_json::Value,
    pub version: u64,
    /// This node's state after the read (`I` if the line could not be kept).
    pub state: LineState,
    pub node: u64,
    /// Whether the read was served from this node's line without any request.
    pub hit: bool,
}

/// `PUT /v1/cache/{key}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CachePutRequest {
    pub value: serde_json::Value,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachePutResponse {
    /// KV version of the committed value; absent when a write-back node
    /// buffered the write in its M line (it is committed on the next flush).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    pub state: LineState,
    pub node: u64,
}

/// `DELETE /v1/cache/{key}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheDeleteResponse {
    pub deleted: bool,
}

/// One line as `GET /v1/cache/lines` shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineInfo {
    pub key: String,
    pub state: LineState,
    pub version: u64,
    pub lease_remaining_ms: u64,
    /// Write-back: the line holds a write not yet committed.
    #[serde(default)]
    pub dirty: bool,
}

/// `GET /v1/cache/lines`: this node's own lines.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheLines {
    pub node: u64,
    pub lines: Vec<LineInfo>,
    /// True when more lines exist than were listed.
    #[serde(default)]
    pub truncated: bool,
}

/// One node's view of a key in `GET /v1/cache/{key}/states`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeLineState {
    pub node: u64,
    pub state: LineState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_remaining_ms: Option<u64>,
    /// Set when the node could not be asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /v1/cache/{key}/states`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheStates {
    pub key: String,
    pub nodes: Vec<NodeLineState>,
}

/// Lines of one node by state.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinesByState {
    #[serde(rename = "M")]
    pub m: u64,
    #[serde(rename = "E")]
    pub e: u64,
    #[serde(rename = "S")]
    pub s: u64,
}

/// `GET /v1/cache`: this node's counters.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheStats {
    pub node: u64,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub invalidations_sent: u64,
    pub invalidations_received: u64,
    /// Coherence messages from other nodes this node has served.
    pub remote_requests: u64,
    pub lines: LinesByState,
    pub entries: u64,
    pub bytes: u64,
    pub capacity_entries: u64,
    pub capacity_bytes: u64,
    pub write_policy: String,
    pub lease_ms: u64,
}
