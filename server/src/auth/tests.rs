use std::path::Path;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};
use dsync_api::auth::{Role, TokenRequest};
use dsync_api::{ErrorCode, HEADER_CLUSTER_SECRET};

use super::*;

/// Polls a file until `done` accepts its text (the audit writer is a thread).
pub async fn poll_file(path: &Path, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if done(&text) || std::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const SECRET: &str = "0123456789abcdef0123456789abcdef-jwt";
const CLUSTER: &str = "0123456789abcdef0123456789abcdef-cluster";

fn token_auth(dir: &Path) -> Auth {
    std::fs::write(dir.join("jwt"), SECRET).unwrap();
    std::fs::write(dir.join("cluster"), format!("{CLUSTER}\n")).unwrap();
    Auth::from_config(&AuthConfig {
        mode: AuthMode::Token,
        jwt_secret_file: Some(dir.join("jwt")),
        cluster_secret_file: Some(dir.join("cluster")),
        ..AuthConfig::default()
    })
    .unwrap()
}

fn bearer(t: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
    );
    h
}

fn request(sub: &str, role: Role, scopes: &[&str]) -> TokenRequest {
    TokenRequest {
        subject: sub.into(),
        role,
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ttl_secs: 60,
    }
}

#[test]
fn minted_tokens_authenticate_with_their_role_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let auth = token_auth(dir.path());
    let (t, exp) = auth
        .mint(&request("alice", Role::Write, &["locks:billing/*"]))
        .unwrap();
    let p = auth.authenticate(&bearer(&t)).unwrap();
    assert_eq!(p.name, "alice");
    assert_eq!(p.role, Role::Write);
    assert_eq!(p.scopes.len(), 1);
    assert_eq!(p.expires_at, Some(exp));
    assert!(p.bound);
    // The CLI's offline signer makes the same tokens.
    let (t2, _) = mint_hs256(SECRET.as_bytes(), &request("bob", Role::Read, &[])).unwrap();
    assert_eq!(auth.authenticate(&bearer(&t2)).unwrap().name, "bob");
}

#[test]
fn missing_expired_and_forged_tokens_are_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let auth = token_auth(dir.path());
    let code = |h: &HeaderMap| auth.authenticate(h).unwrap_err().code;
    assert_eq!(code(&HeaderMap::new()), ErrorCode::Unauthenticated);
    assert_eq!(code(&bearer("not.a.jwt")), ErrorCode::Unauthenticated);
    let (forged, _) = mint_hs256(
        b"another-secret-another-secret-another",
        &request("alice", Role::Admin, &[]),
    )
    .unwrap();
    assert_eq!(code(&bearer(&forged)), ErrorCode::Unauthenticated);
    let claims = Claims {
        sub: "alice".into(),
        role: Role::Admin,
        scopes: vec![],
        exp: now_secs() - 3600,
        iat: now_secs() - 7200,
    };
    let expired = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let err = auth.authenticate(&bearer(&expired)).unwrap_err();
    assert!(err.message.contains("expired"), "{}", err.message);
}

#[test]
fn the_cluster_secret_makes_a_peer_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let auth = token_auth(dir.path());
    let mut h = HeaderMap::new();
    assert!(!auth.is_peer(&h));
    h.insert(HEADER_CLUSTER_SECRET, HeaderValue::from_static("wrong"));
    assert!(!auth.is_peer(&h));
    h.insert(HEADER_CLUSTER_SECRET, HeaderValue::from_static(CLUSTER));
    assert!(auth.is_peer(&h));
    assert_eq!(auth.authenticate(&h).unwrap(), Principal::peer());
    let (admin, _) = auth.mint(&request("root", Role::Admin, &[])).unwrap();
    assert!(!auth.is_peer(&bearer(&admin)));
    // Without a cluster secret anyone is a peer, and everyone is anonymous.
    let open = Auth::disabled();
    assert!(open.is_peer(&HeaderMap::new()));
    assert_eq!(
        open.authenticate(&HeaderMap::new()).unwrap(),
        Principal::anonymous()
    );
    assert!(open.mint(&request("x", Role::Read, &[])).is_err());
}

#[test]
fn bad_token_requests_and_short_secrets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let auth = token_auth(dir.path());
    for bad in [
        request("", Role::Read, &[]),
        request("a:b", Role::Read, &[]),
        request("a", Role::Read, &["nope"]),
        TokenRequest {
            ttl_secs: 0,
            ..request("a", Role::Read, &[])
        },
    ] {
        assert_eq!(
            auth.mint(&bad).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
    }
    std::fs::write(dir.path().join("short"), "tooshort").unwrap();
    let err = read_secret(&dir.path().join("short"), "secret").unwrap_err();
    assert!(err.contains("shorter than"), "{err}");
}

#[test]
fn eddsa_tokens_verify_against_the_public_key_only() {
    use base64::Engine;
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    // SubjectPublicKeyInfo of an Ed25519 key: a fixed prefix, then the key.
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(pair.public_key().as_ref());
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&spki)
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pub.pem"), pem).unwrap();
    std::fs::write(dir.path().join("cluster"), CLUSTER).unwrap();
    let auth = Auth::from_config(&AuthConfig {
        mode: AuthMode::Token,
        jwt_algorithm: JwtAlgorithm::EdDSA,
        jwt_public_key_file: Some(dir.path().join("pub.pem")),
        cluster_secret_file: Some(dir.path().join("cluster")),
        ..AuthConfig::default()
    })
    .unwrap();
    let claims = Claims {
        sub: "issuer-made".into(),
        role: Role::Read,
        scopes: vec!["kv:app/*".into()],
        exp: now_secs() + 60,
        iat: now_secs(),
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        &claims,
        &EncodingKey::from_ed_der(pkcs8.as_ref()),
    )
    .unwrap();
    let p = auth.authenticate(&bearer(&token)).unwrap();
    assert_eq!((p.name.as_str(), p.role), ("issuer-made", Role::Read));
    // A node holding only a public key cannot sign, and HS256 tokens fail.
    assert!(auth.mint(&request("x", Role::Read, &[])).is_err());
    let (hs, _) = mint_hs256(SECRET.as_bytes(), &request("x", Role::Admin, &[])).unwrap();
    assert!(auth.authenticate(&bearer(&hs)).is_err());
}

#[test]
fn nbf_lifetime_and_the_scheme_case_are_checked_on_verification() {
    let dir = tempfile::tempdir().unwrap();
    let auth = token_auth(dir.path());
    let sign = |claims: &serde_json::Value| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let now = now_secs();
    let base = |extra: serde_json::Value| {
        let mut c =
            serde_json::json!({"sub": "alice", "role": "write", "exp": now + 600, "iat": now});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        sign(&c)
    };
    let err = auth
        .authenticate(&bearer(&base(serde_json::json!({"nbf": now + 3600}))))
        .unwrap_err();
    assert!(err.message.contains("not valid yet"), "{}", err.message);
    assert!(auth
        .authenticate(&bearer(&base(serde_json::json!({"nbf": now - 10}))))
        .is_ok());
    let far = now + dsync_api::auth::MAX_TOKEN_TTL_SECS + 3600;
    let err = auth
        .authenticate(&bearer(&base(serde_json::json!({"exp": far}))))
        .unwrap_err();
    assert!(
        err.message.contains("longer than the maximum"),
        "{}",
        err.message
    );
    let (t, _) = auth.mint(&request("alice", Role::Read, &[])).unwrap();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("{scheme} {t}")).unwrap(),
        );
        assert!(auth.authenticate(&h).is_ok(), "{scheme}");
    }
    let mut h = HeaderMap::new();
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Basic {t}")).unwrap(),
    );
    assert!(auth.authenticate(&h).is_err());
}
