//! The `auth:` and `limits:` sections of the node configuration.

use std::path::PathBuf;

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Every caller is an anonymous admin. For loopback development only:
    /// the node warns loudly when it listens elsewhere.
    #[default]
    None,
    /// Every client request carries a JWT (`Authorization: Bearer ...`).
    Token,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// Shared secret (`jwt_secret_file`); the node can also sign tokens.
    #[default]
    HS256,
    /// RSA public key in PEM (`jwt_public_key_file`); tokens are signed elsewhere.
    RS256,
    /// Ed25519 public key in PEM (`jwt_public_key_file`).
    EdDSA,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub mode: AuthMode,
    pub jwt_algorithm: JwtAlgorithm,
    /// HS256 secret (at least 32 bytes; surrounding whitespace is ignored).
    pub jwt_secret_file: Option<PathBuf>,
    /// RS256/EdDSA public key (PEM).
    pub jwt_public_key_file: Option<PathBuf>,
    /// Secret every peer presents on `/raft/*` (at least 32 bytes). Required
    /// with `mode: token`; without auth it still isolates the peer routes.
    pub cluster_secret_file: Option<PathBuf>,
}

/// Header fields one request may have (431 past it); not configurable, as
/// no client of dsync sends more than a handful.
pub const MAX_HEADER_FIELDS: usize = 100;

/// How far past our own head limits the HTTP parser goes. Requests between
/// the two reach the router, whose JSON error names the limit to raise;
/// past the parser's room the head is refused before it (`serve::frame`)
/// with a JSON error that can only give the room.
const PARSER_MARGIN: usize = 4;

/// The HTTP/1 parser's own cap on one URI (hyper's, not configurable).
const PARSER_MAX_URI: usize = u16::MAX as usize - 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Open client and peer connections. At the limit a new connection
    /// closes the oldest one doing nothing (first one that never sent a
    /// request, then an idle keep-alive one); with none idle it is closed.
    pub max_connections: usize,
    /// Open connections from one client address (Consul's
    /// `http_max_conns_per_client`); 0 = no limit. A peer's connections,
    /// once they carry peer requests, do not count.
    pub max_connections_per_client: usize,
    /// A connection must send a request's headers within this time,
    /// counted from the accept (or from the end of its previous request),
    /// whatever it sends or does not send: silent and slow clients cannot
    /// hold connections open. This also closes idle connections, so keep
    /// it above the 20 s for which the dsync client pools them.
    pub header_read_timeout_ms: u64,
    /// A request body that sends nothing for this long fails (400) and
    /// its connection is closed.
    pub body_read_timeout_ms: u64,
    /// The longest request target (path and query); longer is 414
    /// `uri_too_long`.
    pub max_uri_bytes: usize,
    /// The most bytes of header fields (names, values and their `: ` and
    /// line ends; the request line not counted); more is 431
    /// `headers_too_large`, like more than [`MAX_HEADER_FIELDS`] fields.
    pub max_header_bytes: usize,
    /// Waiters queued on one lock; further waits get 429 `rate_limited`.
    pub max_waiters_per_lock: usize,
    /// Concurrent queue long polls (`wait_ms` > 0) per principal (per
    /// remote IP without auth); further ones get 429.
    pub max_long_polls_per_client: usize,
    /// Concurrent `/v1/events` streams per principal (per remote IP
    /// without auth); the node streams to at most 64 in all.
    pub max_event_streams_per_client: usize,
    /// Messages held over all topics (ready, delayed, in flight and
    /// dead-lettered); enqueues past it get 429 until consumers catch up.
    /// The state lives in memory, so producers that outrun consumers must
    /// be refused rather than let the node grow until it is killed.
    pub max_queued_messages: usize,
    /// KV keys (cache keys included: they are KV keys); a write of a new
    /// key past it gets 429. Like etcd's space quota, it keeps a runaway
    /// client from growing the replicated state until nodes are killed.
    pub max_kv_keys: usize,
    /// Locks held or waited for at once; acquiring a new name past it gets 429.
    pub max_locks: usize,
    /// Topics (dead-letter topics included); a new topic past it gets 429.
    pub max_topics: usize,
    /// Requests per second per principal (per remote IP without auth); 0 = no limit.
    pub rate_limit_per_sec: u32,
    /// Burst above the rate (default: one second's worth).
    pub rate_limit_burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 16_384,
            max_connections_per_client: 200,
            header_read_timeout_ms: 30_000,
            body_read_timeout_ms: 30_000,
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_waiters_per_lock: 10_000,
            max_long_polls_per_client: 1_000,
            max_event_streams_per_client: 8,
            max_queued_messages: 1_000_000,
            max_kv_keys: 1_000_000,
            max_locks: 1_000_000,
            max_topics: 10_000,
            rate_limit_per_sec: 0,
            rate_limit_burst: 0,
        }
    }
}

impl AuthConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.mode == AuthMode::None {
            return Ok(());
        }
        if self.cluster_secret_file.is_none() {
            return Err(
                "auth.mode token needs auth.cluster_secret_file: peers must prove membership"
                    .into(),
            );
        }
        match self.jwt_algorithm {
            JwtAlgorithm::HS256 if self.jwt_secret_file.is_none() => {
                Err("auth.jwt_algorithm HS256 needs auth.jwt_secret_file".into())
            }
            JwtAlgorithm::RS256 | JwtAlgorithm::EdDSA if self.jwt_public_key_file.is_none() => {
                Err(format!(
                    "auth.jwt_algorithm {:?} needs auth.jwt_public_key_file",
                    self.jwt_algorithm
                ))
            }
            _ => Ok(()),
        }
    }
}

impl LimitsConfig {
    /// What the accept loop enforces.
    pub fn serve_limits(&self) -> crate::serve::ServeLimits {
        crate::serve::ServeLimits {
            max_connections: self.max_connections,
            max_connections_per_client: self.max_connections_per_client,
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(self.body_read_timeout_ms),
            // hyper panics on a buffer under 8 KiB.
            parser_max_head_bytes: (PARSER_MARGIN * (self.max_uri_bytes + self.max_header_bytes))
                .max(8192),
            parser_max_headers: PARSER_MARGIN * MAX_HEADER_FIELDS,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(16..=1_000_000).contains(&self.max_connections) {
            return Err("limits.max_connections must be 16 to 1000000".into());
        }
        if !(100..=600_000).contains(&self.header_read_timeout_ms) {
            return Err("limits.header_read_timeout_ms must be 100 to 600000".into());
        }
        if !(100..=600_000).contains(&self.body_read_timeout_ms) {
            return Err("limits.body_read_timeout_ms must be 100 to 600000".into());
        }
        // At most half the parser's URI cap: a longer target must reach
        // our check (JSON 414), not the parser's (a bare 414).
        if !(256..=PARSER_MAX_URI / 2).contains(&self.max_uri_bytes) {
            return Err(format!(
                "limits.max_uri_bytes must be 256 to {}",
                PARSER_MAX_URI / 2
            ));
        }
        if !(1024..=1024 * 1024).contains(&self.max_header_bytes) {
            return Err("limits.max_header_bytes must be 1024 to 1048576".into());
        }
        if self.max_waiters_per_lock == 0
            || self.max_long_polls_per_client == 0
            || self.max_event_streams_per_client == 0
            || self.max_queued_messages == 0
            || self.max_kv_keys == 0
            || self.max_locks == 0
            || self.max_topics == 0
        {
            return Err(
                "limits.max_waiters_per_lock, max_long_polls_per_client, max_event_streams_per_client, max_queued_messages, max_kv_keys, max_locks and max_topics must be > 0".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_mode_needs_its_key_and_a_cluster_secret() {
        let mut a = AuthConfig {
            mode: AuthMode::Token,
            ..AuthConfig::default()
        };
        assert!(a.validate().unwrap_err().contains("cluster_secret_file"));
        a.cluster_secret_file = Some("c".into());
        assert!(a.validate().unwrap_err().contains("jwt_secret_file"));
        a.jwt_secret_file = Some("s".into());
        a.validate().unwrap();
        a.jwt_algorithm = JwtAlgorithm::EdDSA;
        assert!(a.validate().unwrap_err().contains("jwt_public_key_file"));
        assert!(AuthConfig::default().validate().is_ok());
    }

    #[test]
    fn limits_are_bounded() {
        LimitsConfig::default().validate().unwrap();
        let l = LimitsConfig {
            header_read_timeout_ms: 0,
            ..LimitsConfig::default()
        };
        assert!(l.validate().is_err());
        let l = LimitsConfig {
            max_uri_bytes: 40_000,
            ..LimitsConfig::default()
        };
        assert!(l.validate().unwrap_err().contains("max_uri_bytes"));
    }

    #[test]
    fn the_parser_takes_more_than_our_own_head_limits() {
        let l = LimitsConfig::default();
        let s = l.serve_limits();
        assert!(s.parser_max_head_bytes > 2 * (l.max_uri_bytes + l.max_header_bytes));
        assert!(s.parser_max_headers > MAX_HEADER_FIELDS);
        assert!(l.max_uri_bytes < PARSER_MAX_URI);
    }
}
