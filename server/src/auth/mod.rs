//! Authentication and authorization: who a request comes from (a JWT's
//! subject, a peer holding the cluster secret, or the anonymous admin when
//! auth is off), what each route requires (`policy`), the middleware that
//! enforces both (`guard`), ownership binding, limits and the audit log.

pub mod audit;
pub mod config;
pub mod limits;
pub mod ownership;
pub mod policy;
mod security;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap};
use dsync_api::auth::{Claims, Role, Scope, TokenRequest, MAX_SCOPES, MAX_SUBJECT};
use dsync_api::{ApiError, ErrorCode, HEADER_CLUSTER_SECRET};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use subtle::ConstantTimeEq;

pub use self::config::{AuthConfig, AuthMode, JwtAlgorithm, LimitsConfig};
pub use self::security::{peer_certificate, Caller, Security};

/// Shortest secret accepted for HS256 and the cluster secret.
pub const MIN_SECRET_BYTES: usize = 32;
/// Tolerated clock skew between a token's issuer and the node.
const LEEWAY_SECS: u64 = 30;

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// Empty: every name.
    pub scopes: Vec<Scope>,
    pub expires_at: Option<u64>,
    /// True when auth is on: owners and receipts are bound to `name`.
    pub bound: bool,
}

impl Principal {
    pub fn anonymous() -> Principal {
        Principal {
            name: "anonymous".into(),
            role: Role::Admin,
            scopes: Vec::new(),
            expires_at: None,
            bound: false,
        }
    }

    /// Another node of the cluster (it proved the cluster secret).
    pub fn peer() -> Principal {
        Principal {
            name: "peer".into(),
            role: Role::Admin,
            scopes: Vec::new(),
            expires_at: None,
            bound: false,
        }
    }

    /// Equal to [`Principal::anonymous`], without building one.
    pub fn is_anonymous(&self) -> bool {
        self.is_unbound_admin("anonymous")
    }

    /// Equal to [`Principal::peer`], without building one.
    pub fn is_peer(&self) -> bool {
        self.is_unbound_admin("peer")
    }

    fn is_unbound_admin(&self, name: &str) -> bool {
        self.name == name
            && self.role == Role::Admin
            && self.scopes.is_empty()
            && self.expires_at.is_none()
            && !self.bound
    }
}

struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

/// The node's credentials and keys, built once from the configuration.
pub struct Auth {
    pub mode: AuthMode,
    verifier: Option<Verifier>,
    /// HS256 only: lets the node sign tokens for `POST /v1/auth/tokens`.
    signer: Option<EncodingKey>,
    cluster_secret: Option<String>,
    /// Seals queue receipts to the principal they were delivered to.
    receipt_key: ring::hmac::Key,
}

fn unauthenticated(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, msg)
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads a secret file: trimmed, at least [`MIN_SECRET_BYTES`].
pub fn read_secret(path: &Path, what: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    let secret = text.trim().to_string();
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{what} {} must be printable ASCII without spaces (it travels in a header)",
            path.display()
        ));
    }
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "{what} {} is shorter than {MIN_SECRET_BYTES} bytes",
            path.display()
        ));
    }
    Ok(secret)
}

/// Signs an HS256 token (the CLI uses this with the secret file directly).
pub fn mint_hs256(secret: &[u8], req: &TokenRequest) -> Result<(String, u64), ApiError> {
    let claims = claims_for(req)?;
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| ApiError::new(ErrorCode::Internal, format!("cannot sign: {e}")))?;
    Ok((token, claims.exp))
}

/// `:` separates the principal from the owner it qualifies, so it cannot
/// appear in a subject.
fn subject_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_SUBJECT && !s.chars().any(|c| c.is_control() || c == ':')
}

fn claims_for(req: &TokenRequest) -> Result<Claims, ApiError> {
    let bad = |m: String| ApiError::new(ErrorCode::InvalidArgument, m);
    if !subject_ok(&req.subject) {
        return Err(bad(format!(
            "subject must be 1 to {MAX_SUBJECT} bytes of printable text without `:`"
        )));
    }
    if req.ttl_secs == 0 || req.ttl_secs > dsync_api::auth::MAX_TOKEN_TTL_SECS {
        return Err(bad("ttl must be between 1 second and 366 days".into()));
    }
    if req.scopes.len() > MAX_SCOPES {
        return Err(bad(format!("at most {MAX_SCOPES} scopes")));
    }
    for s in &req.scopes {
        s.parse::<Scope>().map_err(bad)?;
    }
    let now = now_secs();
    Ok(Claims {
        sub: req.subject.clone(),
        role: req.role,
        scopes: req.scopes.clone(),
        exp: now + req.ttl_secs,
        iat: now,
    })
}

impl Auth {
    pub fn from_config(c: &AuthConfig) -> Result<Auth, String> {
        c.validate()?;
        let cluster_secret = c
            .cluster_secret_file
            .as_deref()
            .map(|p| read_secret(p, "cluster secret file"))
            .transpose()?;
        let (verifier, signer) = match c.mode {
            AuthMode::None => (None, None),
            AuthMode::Token => verifier_for(c)?,
        };
        // Without a cluster secret nothing is bound, so a per-process key
        // is as good as any.
        let key_material = cluster_secret
            .clone()
            .unwrap_or_else(|| format!("{:x}", rand::random::<u128>()));
        Ok(Auth {
            mode: c.mode,
            verifier,
            signer,
            cluster_secret,
            receipt_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key_material.as_bytes()),
        })
    }

    pub fn disabled() -> Auth {
        Auth::from_config(&AuthConfig::default()).expect("default auth config is valid")
    }

    /// The secret this node presents to its peers.
    pub fn cluster_secret(&self) -> Option<&str> {
        self.cluster_secret.as_deref()
    }

    /// Whether the request carries the cluster secret (always true when the
    /// cluster has none).
    pub fn is_peer(&self, headers: &HeaderMap) -> bool {
        let Some(want) = &self.cluster_secret else {
            return true;
        };
        headers
            .get(HEADER_CLUSTER_SECRET)
            .is_some_and(|got| bool::from(got.as_bytes().ct_eq(want.as_bytes())))
    }

    fn has_peer_secret(&self, headers: &HeaderMap) -> bool {
        self.cluster_secret.is_some() && self.is_peer(headers)
    }

    /// The principal of a client request.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        if self.has_peer_secret(headers) {
            return Ok(Principal::peer());
        }
        let Some(v) = &self.verifier else {
            return Ok(Principal::anonymous());
        };
        let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
            unauthenticated("this node requires a bearer token (--token or DSYNC_TOKEN)")
        })?;
        let token = value
            .to_str()
            .ok()
            // The scheme is case-insensitive (RFC 9110 §11.1).
            .and_then(|s| s.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or_else(|| unauthenticated("the Authorization header is not `Bearer <token>`"))?;
        let data =
            jsonwebtoken::decode::<Claims>(token, &v.key, &v.validation).map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                        unauthenticated("the token has expired")
                    }
                    jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
                        unauthenticated("the token is not valid yet (nbf)")
                    }
                    _ => unauthenticated(format!("the token is not valid: {e}")),
                }
            })?;
        let c = data.claims;
        // Tokens signed elsewhere (RS256/EdDSA issuers, the offline signer)
        // get the same ceiling as the ones this node mints.
        let ceiling = now_secs() + dsync_api::auth::MAX_TOKEN_TTL_SECS + LEEWAY_SECS;
        if c.exp > ceiling {
            return Err(unauthenticated(format!(
                "the token lives longer than the maximum of {} s",
                dsync_api::auth::MAX_TOKEN_TTL_SECS
            )));
        }
        if !subject_ok(&c.sub) {
            return Err(unauthenticated("the token's subject is not acceptable"));
        }
        let scopes = c
            .scopes
            .iter()
            .take(MAX_SCOPES + 1)
            .map(|s| s.parse::<Scope>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unauthenticated(format!("the token has a bad scope: {e}")))?;
        if scopes.len() > MAX_SCOPES {
            return Err(unauthenticated("the token has too many scopes"));
        }
        Ok(Principal {
            name: c.sub,
            role: c.role,
            scopes,
            expires_at: Some(c.exp),
            bound: true,
        })
    }

    /// Signs a token with this node's HS256 secret.
    pub fn mint(&self, req: &TokenRequest) -> Result<(String, u64), ApiError> {
        let Some(key) = &self.signer else {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                "this node cannot sign tokens (auth is off or it holds only a public key); sign them where the private key is",
            ));
        };
        let claims = claims_for(req)?;
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key)
            .map_err(|e| ApiError::new(ErrorCode::Internal, format!("cannot sign: {e}")))?;
        Ok((token, claims.exp))
    }

    fn receipt_tag(&self, principal: &str, receipt: &str) -> String {
        let msg = format!("{principal}\0{receipt}");
        let tag = ring::hmac::sign(&self.receipt_key, msg.as_bytes());
        tag.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

fn verifier_for(c: &AuthConfig) -> Result<(Option<Verifier>, Option<EncodingKey>), String> {
    let (key, signer, alg) = match c.jwt_algorithm {
        JwtAlgorithm::HS256 => {
            let path = c.jwt_secret_file.as_deref().ok_or("no jwt_secret_file")?;
            let secret = read_secret(path, "JWT secret file")?;
            (
                DecodingKey::from_secret(secret.as_bytes()),
                Some(EncodingKey::from_secret(secret.as_bytes())),
                Algorithm::HS256,
            )
        }
        JwtAlgorithm::RS256 | JwtAlgorithm::EdDSA => {
            let path = c
                .jwt_public_key_file
                .as_deref()
                .ok_or("no jwt_public_key_file")?;
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read JWT public key {}: {e}", path.display()))?;
            let (key, alg) = if c.jwt_algorithm == JwtAlgorithm::RS256 {
                (DecodingKey::from_rsa_pem(&pem), Algorithm::RS256)
            } else {
                (DecodingKey::from_ed_pem(&pem), Algorithm::EdDSA)
            };
            let key = key.map_err(|e| format!("JWT public key {}: {e}", path.display()))?;
            (key, None, alg)
        }
    };
    let mut validation = Validation::new(alg);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "sub"]);
    Ok((Some(Verifier { key, validation }), signer))
}

#[cfg(test)]
mod tests;
