//! One call: leader following, retries with backoff, and which failures
//! are safe to resend.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{chain, decode, decode_error};
use super::{all_refused, base_url, Client, ClientError, Result};

/// Longest a deduplicated write is resent for (servers keep its answer 60 s).
const MAX_RESEND_FOR: Duration = Duration::from_secs(40);

/// Longest sleep between attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(100);

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

impl Client {
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
        // Servers keep a deduplicated write's answer for 60 s: resending it
        // later could apply it again.
        let retry_for = match request_id {
            Some(_) => self.config.retry_for.min(MAX_RESEND_FOR),
            None => self.config.retry_for,
        };
        let deadline = Instant::now() + retry_for;
        let mut backoff = Duration::from_millis(25);
        // The previous attempt's error, reported if the breakers then refuse
        // every endpoint until the deadline.
        let mut last: Option<ClientError> = None;
        loop {
            let Some((index, base, url)) = self.pick() else {
                let refused = all_refused(last.take());
                if Instant::now() + backoff > deadline {
                    return Err(refused);
                }
                last = Some(refused);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            };
            let mut req = match url {
                Some(url) => self.http.request(method.clone(), join(url, path)),
                None => self.http.request(method.clone(), format!("{base}{path}")),
            };
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
                    match resp.bytes().await {
                        Ok(bytes) if status.is_success() => return Ok(bytes.to_vec()),
                        Ok(bytes) => {
                            let error = decode_error(status, &bytes);
                            // The write may have been applied: sending it
                            // again could apply it twice, so the caller decides.
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
                        // The answer was lost on the way: as ambiguous as a
                        // broken connection.
                        Err(e) => {
                            self.failed(index, true);
                            let err = ClientError::Transport(format!("{base}: {}", chain(&e)));
                            if !idempotent {
                                return Err(err);
                            }
                            Err(err)
                        }
                    }
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
            last = retry.err();
            tokio::time::sleep(backoff).await;
            // Capped low: an election takes under a second, and a client
            // asleep in a long backoff adds its sleep to the failover time.
            backoff = (backoff * 2).min(MAX_BACKOFF);
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

/// `base` with `path` (which may carry a query) appended to its path.
fn join(mut url: reqwest::Url, path: &str) -> reqwest::Url {
    let (p, q) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let full = format!("{}{p}", url.path().trim_end_matches('/'));
    url.set_path(&full);
    url.set_query(q);
    url
}

#[cfg(test)]
mod join_tests {
    use super::join;

    #[test]
    fn joining_keeps_encoded_paths_queries_and_a_base_prefix() {
        let base = reqwest::Url::parse("http://127.0.0.1:7000").unwrap();
        let u = join(base.clone(), "/v1/kv/a%2Fb?consistency=stale");
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:7000/v1/kv/a%2Fb?consistency=stale"
        );
        assert_eq!(
            join(base, "/health").as_str(),
            "http://127.0.0.1:7000/health"
        );
        let prefixed = reqwest::Url::parse("https://h:1/dsync").unwrap();
        assert_eq!(
            join(prefixed, "/v1/status").as_str(),
            "https://h:1/dsync/v1/status"
        );
    }
}
