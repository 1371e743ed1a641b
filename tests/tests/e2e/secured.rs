//! A cluster started with `cluster up --auth token`, and tokens for it.

use dsync_api::auth::{Role, TokenRequest};
use dsync_tests::Cluster;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub struct Secured {
    pub c: Cluster,
    pub secret: String,
    pub http: reqwest::Client,
}

impl Secured {
    pub fn up(n: usize) -> Secured {
        let c = Cluster::up_with(n, &[], &["--auth", "token"]);
        let secret =
            std::fs::read_to_string(c.cluster_dir().join("secrets/jwt.secret")).expect("secret");
        Secured {
            c,
            secret: secret.trim().to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub fn token(&self, sub: &str, role: Role, scopes: &[&str]) -> String {
        sign(self.secret.as_bytes(), sub, role, scopes)
    }

    pub fn addr(&self, id: u64) -> String {
        self.c.node(id).addr
    }

    pub async fn call(
        &self,
        node: u64,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("http://{}{path}", self.addr(node)));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status();
        // An event stream never ends: its status is the answer.
        let streaming = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if streaming {
            return (status, Value::Null);
        }
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

pub fn sign(secret: &[u8], sub: &str, role: Role, scopes: &[&str]) -> String {
    let req = TokenRequest {
        subject: sub.into(),
        role,
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ttl_secs: 600,
    };
    dsync_server::auth::mint_hs256(secret, &req)
        .expect("sign")
        .0
}

/// The `error.code` of a JSON error body.
pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}
