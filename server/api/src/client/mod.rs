//! Typed async client: follows the leader, retries 503s with backoff and
//! skips endpoints whose circuit breaker is open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::breaker::Breaker;

mod admin;
mod cache;
mod download;
mod error;
mod kv;
mod locks;
mod queue;
mod request_id;

pub(crate) use error::decode_error;
use error::{chain, decode};
pub use error::{ClientError, Result};
use request_id::RequestIds;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URLs or `host:port` of the nodes.
    pub endpoints: Vec<String>,
    /// Bearer token sent with every request.
    pub token: Option<String>,
    /// Cluster secret sent instead of a token by nodes calling each other's
    /// client API (joining); never needed by ordinary clients.
    pub cluster_secret: Option<String>,
    /// CA certificate (PEM) to trust for `https://` endpoints instead of the
    /// system roots; default: the file named by `DSYNC_CA_CERT`.
    pub ca_cert: Option<std::path::PathBuf>,
    /// Client certificate and key (PEM) presented over TLS: nodes use theirs
    /// when calling each other's client API (joining).
    pub identity_pem: Option<Vec<u8>>,
    /// Timeout of one HTTP attempt.
    pub request_timeout: Duration,
    /// How long one call keeps retrying 503s and unreachable nodes.
    pub retry_for: Duration,
}

impl ClientConfig {
    pub fn new(endpoints: Vec<String>) -> Self {
        ClientConfig {
            endpoints,
            token: None,
            cluster_secret: None,
            ca_cert: None,
            identity_pem: None,
            request_timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(15),
        }
    }
}

/// Options of one call.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallOpts {
    /// Timeout of one attempt (default: the client's `request_timeout`).
    pub timeout: Option<Duration>,
    /// Safe to send again after a connection broke mid-request.
    pub idempotent: bool,
    /// Send one request id (`x-dsync-request-id`) with every attempt: the
    /// server applies the write at most once, so it is resent whatever
    /// became of an earlier attempt (a broken connection, or a 503 whose
    /// outcome is unknown).
    pub request_id: bool,
}

impl CallOpts {
    /// A write the server deduplicates by request id.
    pub fn once() -> Self {
        CallOpts {
            request_id: true,
            ..CallOpts::default()
        }
    }
}

struct Endpoint {
    base: String,
    breaker: Breaker,
}

struct State {
    endpoints: Vec<Endpoint>,
    /// Index of the endpoint believed to be the leader.
    preferred: usize,
    /// Node id → endpoint index, learned from `x-dsync-node`.
    ids: HashMap<u64, usize>,
}

/// Cheap to clone; clones share leader knowledge and breakers.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
    state: Arc<Mutex<State>>,
    request_ids: Arc<RequestIds>,
}

/// Normalizes `host:port` into `http://host:port`.
pub fn base_url(endpoint: &str) -> String {
    let e = endpoint.trim().trim_end_matches('/');
    if e.starts_with("http://") || e.starts_with("https://") {
        e.to_string()
    } else {
        format!("http://{e}")
    }
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Self> {
        if config.endpoints.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        let mut builder = reqwest::Client::builder();
        let ca = config
            .ca_cert
            .clone()
            .or_else(|| std::env::var_os("DSYNC_CA_CERT").map(Into::into));
        if let Some(path) = ca {
            let pem = std::fs::read(&path).map_err(|e| {
                ClientError::Transport(format!("cannot read CA {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ClientError::Transport(format!("CA {}: {e}", path.display())))?;
            builder = builder.use_rustls_tls().tls_built_in_root_certs(false);
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        if let Some(pem) = &config.identity_pem {
            let id = reqwest::Identity::from_pem(pem)
                .map_err(|e| ClientError::Transport(format!("client certificate: {e}")))?;
            builder = builder.use_rustls_tls().identity(id);
        }
        let http = builder
            .timeout(config.request_timeout)
            .pool_max_idle_per_host(256)
            // Below the server's header read timeout (30 s by default), which
            // also closes idle connections: reusing one it is closing would
            // fail a write with an unknown outcome.
            .pool_idle_timeout(Duration::from_secs(20))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let endpoints = config
            .endpoints
            .iter()
            .map(|e| Endpoint {
                base: base_url(e),
                breaker: Breaker::new(3, Duration::from_secs(2)),
            })
            .collect();
        Ok(Client {
            http,
            config: Arc::new(config),
            state: Arc::new(Mutex::new(State {
                endpoints,
                preferred: 0,
                ids: HashMap::new(),
            })),
            request_ids: Arc::new(RequestIds::new()),
        })
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.lock()
            .endpoints
            .iter()
            .map(|e| e.base.clone())
            .collect()
    }

    /// Prefer this endpoint index for the next calls (e.g. to spread load).
    pub fn prefer(&self, index: usize) {
        let mut s = self.lock();
        if index < s.endpoints.len() {
            s.preferred = index;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Picks the preferred endpoint if its breaker allows, else the next one
    /// that does, else the one whose breaker reopens first.
    fn pick(&self) -> (usize, String) {
        let s = self.lock();
        let now = Instant::now();
        let n = s.endpoints.len();
        let start = s.preferred % n;
        for k in 0..n {
            let i = (start + k) % n;
            if s.endpoints[i].breaker.allows(now) {
                return (i, s.endpoints[i].base.clone());
            }
        }
        let i = (0..n)
            .min_by_key(|&i| s.endpoints[i].breaker.ready_at(now))
            .unwrap_or(0);
        (i, s.endpoints[i].base.clone())
    }

    fn observe(&self, index: usize, headers: &reqwest::header::HeaderMap) {
        let parse = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let mut s = self.lock();
        s.endpoints[index].breaker.on_success();
        if let Some(node) = parse(crate::HEADER_NODE) {
            s.ids.insert(node, index);
        }
        if let Some(leader) = parse(crate::HEADER_LEADER) {
            if let Some(&i) = s.ids.get(&leader) {
                s.preferred = i;
            }
        }
    }

    /// Records a failure and moves on to the next endpoint.
    fn failed(&self, index: usize, breaker: bool) {
        let mut s = self.lock();
        if breaker {
            s.endpoints[index].breaker.on_failure(Instant::now());
        }
        if s.preferred == index {
            s.preferred = (index + 1) % s.endpoints.len();
        }
    }

    fn credentials(&self, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(t) = &self.config.token {
            req = req.bearer_auth(t);
        }
        if let Some(s) = &self.config.cluster_secret {
            req = req.header(crate::HEADER_CLUSTER_SECRET, s);
        }
        req
    }

    /// Sends a request with leader following and retries; decodes the JSON
    /// response or the API error.
    pub async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let bytes = self.call_raw(method, path, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Transport(format!("bad response body: {e}")))
    }

    /// Like [`call`](Self::call), for a write the server deduplicates: it is
    /// resent, with the same request id, until it gets an answer.
    pub async fn call_once<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let bytes = self.call_opts(method, path, body, CallOpts::once()).await?;
        decode(&bytes)
    }

    /// Like [`call`](Self::call) but returns the raw body.
    pub async fn call_raw<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Vec<u8>> {
        let idempotent = method == Method::GET || method == Method::HEAD;
        self.call_opts(
            method,
            path,
            body,
            CallOpts {
                idempotent,
                ..CallOpts::default()
            },
        )
        .await
    }

    /// The general form: a per-call timeout and whether resending after a
    /// broken connection is safe.
    pub async fn call_opts<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        opts: CallOpts,
    ) -> Result<Vec<u8>> {
        let body = match body {
            Some(b) => {
                Some(serde_json::to_vec(b).map_err(|e| ClientError::Transport(e.to_string()))?)
            }
            None => None,
        };
        let request_id = opts.request_id.then(|| self.request_ids.next());
        let idempotent = opts.idempotent || request_id.is_some();
        let deadline = Instant::now() + self.config.retry_for;
        let mut backoff = Duration::from_millis(25);
        loop {
            let (index, base) = self.pick();
            let mut req = self.http.request(method.clone(), format!("{base}{path}"));
            if let Some(t) = opts.timeout {
                req = req.timeout(t);
            }
            req = self.credentials(req);
            if let Some(id) = &request_id {
                req = req.header(crate::HEADER_REQUEST_ID, id);
            }
            if let Some(b) = &body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.clone());
            }
            let retry = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    self.observe(index, resp.headers());
                    let bytes = resp
                        .bytes()
                        .await
                        .map_err(|e| ClientError::Transport(e.to_string()))?;
                    if status.is_success() {
                        return Ok(bytes.to_vec());
                    }
                    let error = decode_error(status, &bytes);
                    // The write may have been applied: sending it again
                    // could apply it twice, so the caller decides.
                    if status != StatusCode::SERVICE_UNAVAILABLE
                        || (!idempotent && error.is_outcome_unknown())
                    {
                        return Err(ClientError::Api {
                            status: status.as_u16(),
                            error,
                        });
                    }
                    // No leader or no quorum yet: another node may know better.
                    self.failed(index, false);
                    Err(ClientError::Api {
                        status: status.as_u16(),
                        error,
                    })
                }
                Err(e) => {
                    self.failed(index, true);
                    // A write whose request may have reached the server must not
                    // be sent twice: report the unknown outcome.
                    let err = ClientError::Transport(format!("{base}: {}", chain(&e)));
                    if !idempotent && !e.is_connect() {
                        return Err(err);
                    }
                    Err(err)
                }
            };
            if Instant::now() + backoff > deadline {
                return retry;
            }
            tokio::time::sleep(backoff).await;
            // Capped low: an election takes under a second, and a client
            // asleep in a long backoff adds its sleep to the failover time.
            backoff = (backoff * 2).min(Duration::from_millis(100));
        }
    }

    /// A GET to one node with this client's credentials, for callers that
    /// read the response themselves (streams).
    pub(crate) fn get_node(&self, endpoint: &str, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.get(format!("{}{path}", base_url(endpoint)));
        match &self.config.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// One request to one node, no retry, no leader following.
    pub async fn call_node<T: DeserializeOwned>(&self, endpoint: &str, path: &str) -> Result<T> {
        let req = self.http.get(format!("{}{path}", base_url(endpoint)));
        let resp = self
            .credentials(req)
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        if !status.is_success() {
            return Err(ClientError::Api {
                status: status.as_u16(),
                error: decode_error(status, &bytes),
            });
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Transport(format!("bad response body: {e}")))
    }
}

#[cfg(test)]
mod retry_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn base_urls_are_normalized() {
        assert_eq!(base_url("127.0.0.1:7000"), "http://127.0.0.1:7000");
        assert_eq!(base_url("https://a:1/"), "https://a:1");
    }

    #[test]
    fn non_json_errors_get_a_code_from_the_status() {
        let e = decode_error(StatusCode::PAYLOAD_TOO_LARGE, b"length limit exceeded");
        assert_eq!(e.code, ErrorCode::TooLarge);
    }

    #[tokio::test]
    async fn unreachable_endpoints_trip_breakers_and_give_up_after_retry_window() {
        // Port 1 on loopback refuses connections immediately.
        let mut cfg = ClientConfig::new(vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()]);
        cfg.retry_for = Duration::from_secs(1);
        let c = Client::new(cfg).unwrap();
        let err = c.status().await.unwrap_err();
        assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
        let s = c.lock();
        assert!(s
            .endpoints
            .iter()
            .all(|e| e.breaker.is_open(Instant::now())));
    }
}
