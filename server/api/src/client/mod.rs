//! Typed async client: follows the leader (unless told not to), retries
//! 503s with backoff and skips endpoints whose circuit breaker is open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::breaker::Breaker;

mod admin;
mod cache;
mod call;
mod download;
mod error;
mod kv;
mod locks;
mod queue;
mod request_id;

pub use call::CallOpts;
pub(crate) use error::decode_error;
use error::{chain, decode};
pub use error::{chain as error_chain, ClientError, Result};
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
    /// Move to the node that answers name as the leader (`x-dsync-leader`),
    /// so writes skip the follower's forwarding hop. Off, the client stays
    /// on its preferred endpoint (see [`Client::prefer`]) until it fails,
    /// as a client behind a load balancer does; followers forward writes.
    pub follow_leader: bool,
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
            follow_leader: true,
        }
    }
}

struct Endpoint {
    base: String,
    /// `base` parsed once: parsing a URL (host, IDNA) per request cost the
    /// bench client about 8% of its CPU.
    url: Option<reqwest::Url>,
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

/// What a call reports when every endpoint's breaker refuses it: the
/// error of its previous attempt, if it made one.
fn all_refused(last: Option<ClientError>) -> ClientError {
    last.unwrap_or_else(|| {
        ClientError::Transport(
            "every endpoint failed repeatedly and its circuit breaker is open; retry later".into(),
        )
    })
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
            // Servers never redirect, and the endpoints are dialled directly.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let endpoints = config
            .endpoints
            .iter()
            .map(|e| Endpoint {
                base: base_url(e),
                url: reqwest::Url::parse(&base_url(e)).ok(),
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

    /// Picks the preferred endpoint if its breaker admits a request, else
    /// the next one that does; `None` when every breaker refuses (open, or
    /// half-open with its probe in flight), so the call waits instead of
    /// sending to an endpoint that keeps failing.
    fn pick(&self) -> Option<(usize, String, Option<reqwest::Url>)> {
        let mut s = self.lock();
        let now = Instant::now();
        let n = s.endpoints.len();
        let start = s.preferred % n;
        (0..n).map(|k| (start + k) % n).find_map(|i| {
            let e = &mut s.endpoints[i];
            e.breaker
                .admit(now)
                .then(|| (i, e.base.clone(), e.url.clone()))
        })
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
        if !self.config.follow_leader {
            return;
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
}

#[cfg(test)]
mod breaker_tests;
#[cfg(test)]
mod follow_tests;
#[cfg(test)]
mod retry_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerState;
    use crate::error::ErrorCode;

    #[test]
    fn base_urls_are_normalized() {
        assert_eq!(base_url("127.0.0.1:7000"), "http://127.0.0.1:7000");
        assert_eq!(base_url("https://a:1/"), "https://a:1");
    }

    #[test]
    fn non_json_errors_get_a_code_from_the_status() {
        let e = decode_error(
            reqwest::StatusCode::PAYLOAD_TOO_LARGE,
            b"length limit exceeded",
        );
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
            .all(|e| e.breaker.state() == BreakerState::Open));
    }
}
