//! Wire types of authentication: roles, name-prefix scopes, token claims,
//! `GET /v1/auth/whoami` and `POST /v1/auth/tokens`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a principal may do. Each role includes the ones before it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads: status, metrics, lock/queue/kv/cache inspection.
    #[default]
    Read,
    /// Reads and data mutations: acquire/release, enqueue/consume/ack, kv and cache writes.
    Write,
    /// Everything, including membership, leader transfer, drain, backup, force-release.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            _ => Err(format!("unknown role {s:?} (read, write or admin)")),
        }
    }
}

/// The named resources a scope can restrict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Locks,
    Queues,
    Kv,
    Cache,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Locks => "locks",
            Kind::Queues => "queues",
            Kind::Kv => "kv",
            Kind::Cache => "cache",
        }
    }
}

/// `kind:pattern`, e.g. `locks:billing/*` (names starting with `billing/`),
/// `queues:jobs.*`, `kv:app/config` (that one name) or `cache:*` (every key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub kind: Kind,
    /// The name, or a prefix when `prefix` is set (the `*` is not stored).
    pub pattern: String,
    pub prefix: bool,
}

/// Longest scope text accepted.
pub const MAX_SCOPE_LEN: usize = 300;
/// Most scopes one token may carry.
pub const MAX_SCOPES: usize = 32;

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() > MAX_SCOPE_LEN || s.chars().any(char::is_control) {
            return Err(format!(
                "a scope is at most {MAX_SCOPE_LEN} bytes of printable text"
            ));
        }
        let (kind, pattern) = s
            .split_once(':')
            .ok_or_else(|| format!("scope {s:?} is not KIND:PATTERN (e.g. locks:billing/*)"))?;
        let kind = match kind {
            "locks" => Kind::Locks,
            "queues" => Kind::Queues,
            "kv" => Kind::Kv,
            "cache" => Kind::Cache,
            _ => {
                return Err(format!(
                    "scope kind {kind:?} is not locks, queues, kv or cache"
                ))
            }
        };
        let (pattern, prefix) = match pattern.strip_suffix('*') {
            Some(p) => (p, true),
            None => (pattern, false),
        };
        if pattern.contains('*') {
            return Err(format!("scope {s:?}: `*` is allowed only at the end"));
        }
        if pattern.is_empty() && !prefix {
            return Err(format!("scope {s:?} names nothing"));
        }
        Ok(Scope {
            kind,
            pattern: pattern.to_string(),
            prefix,
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let star = if self.prefix { "*" } else { "" };
        write!(f, "{}:{}{star}", self.kind.as_str(), self.pattern)
    }
}

impl Scope {
    /// Whether this scope grants access to the resource `name` of `kind`.
    pub fn matches(&self, kind: Kind, name: &str) -> bool {
        self.kind == kind
            && if self.prefix {
                name.starts_with(&self.pattern)
            } else {
                name == self.pattern
            }
    }

    /// Whether every name starting with `prefix` is inside this scope
    /// (listing by prefix must not reveal names outside it).
    pub fn covers_prefix(&self, kind: Kind, prefix: &str) -> bool {
        self.kind == kind && self.prefix && prefix.starts_with(&self.pattern)
    }
}

/// The claims of a dsync JWT.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// The principal: who the audit log names and whom lock owners and
    /// queue receipts are bound to.
    pub sub: String,
    pub role: Role,
    /// Name-prefix scopes; empty means every name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    #[serde(default)]
    pub iat: u64,
}

/// `GET /v1/auth/whoami`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WhoAmI {
    /// `none` or `token`: how this node authenticates.
    pub auth_mode: String,
    pub subject: String,
    pub role: Role,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Seconds since the Unix epoch when the credential expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// `POST /v1/auth/tokens` (admin): the node signs a token with its HS256 secret.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::subject))]
    pub subject: String,
    pub role: Role,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 32))]
    pub scopes: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 31_622_400))]
    pub ttl_secs: u64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenResponse {
    pub token: String,
    pub expires_at: u64,
}

/// Longest subject accepted in a token.
pub const MAX_SUBJECT: usize = 128;
/// Longest token lifetime the node signs: one year.
pub const MAX_TOKEN_TTL_SECS: u64 = 366 * 24 * 3600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_match_by_prefix_or_exactly() {
        let s: Scope = "locks:billing/*".parse().unwrap();
        assert!(s.matches(Kind::Locks, "billing/invoice"));
        assert!(!s.matches(Kind::Locks, "billingx"));
        assert!(!s.matches(Kind::Kv, "billing/invoice"));
        assert_eq!(s.to_string(), "locks:billing/*");
        let exact: Scope = "kv:app/config".parse().unwrap();
        assert!(exact.matches(Kind::Kv, "app/config"));
        assert!(!exact.matches(Kind::Kv, "app/config2"));
        let all: Scope = "cache:*".parse().unwrap();
        assert!(all.matches(Kind::Cache, "anything"));
        assert!(all.covers_prefix(Kind::Cache, ""));
        assert!(s.covers_prefix(Kind::Locks, "billing/x"));
        assert!(!s.covers_prefix(Kind::Locks, "bill"));
        assert!(!exact.covers_prefix(Kind::Kv, "app/config"));
    }

    #[test]
    fn bad_scopes_are_refused() {
        for bad in ["locks", "db:x", "locks:a*b", "kv:", "kv:\u{7}"] {
            assert!(bad.parse::<Scope>().is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin > Role::Write && Role::Write > Role::Read);
        assert_eq!("write".parse::<Role>().unwrap(), Role::Write);
        assert!("root".parse::<Role>().is_err());
    }
}
