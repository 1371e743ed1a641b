//! Streaming downloads (backups).

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::{all_refused, chain, decode_error, Client, ClientError, Result};

impl Client {
    /// Streams the body of `GET path` into `sink` piece by piece, following
    /// the leader and retrying 503s and unreachable nodes like [`call`]
    /// until the first byte arrives; a stream that breaks after that is an
    /// error (the caller starts again). `sink` gets the announced length,
    /// if any, and each piece. Returns the number of bytes received.
    ///
    /// [`call`]: Self::call
    pub async fn download(
        &self,
        path: &str,
        timeout: Duration,
        mut sink: impl FnMut(Option<u64>, &[u8]),
    ) -> Result<u64> {
        let deadline = Instant::now() + self.config.retry_for;
        let mut backoff = Duration::from_millis(25);
        let mut last = None;
        loop {
            let err = match self.pick() {
                None => all_refused(last.take()),
                Some((index, base, _)) => {
                    let mut req = self.http.get(format!("{base}{path}")).timeout(timeout);
                    if let Some(t) = &self.config.token {
                        req = req.bearer_auth(t);
                    }
                    match req.send().await {
                        Ok(mut resp) => {
                            self.observe(index, resp.headers());
                            let status = resp.status();
                            if status.is_success() {
                                let total = resp.content_length();
                                let mut received = 0u64;
                                while let Some(piece) = resp.chunk().await.map_err(|e| {
                                    ClientError::Transport(format!("{base}: {}", chain(&e)))
                                })? {
                                    received += piece.len() as u64;
                                    sink(total, &piece);
                                }
                                return Ok(received);
                            }
                            let bytes = resp
                                .bytes()
                                .await
                                .map_err(|e| ClientError::Transport(e.to_string()))?;
                            let error = decode_error(status, &bytes);
                            if status != StatusCode::SERVICE_UNAVAILABLE {
                                return Err(ClientError::Api {
                                    status: status.as_u16(),
                                    error,
                                });
                            }
                            self.failed(index, false);
                            ClientError::Api {
                                status: status.as_u16(),
                                error,
                            }
                        }
                        Err(e) => {
                            self.failed(index, true);
                            ClientError::Transport(format!("{base}: {}", chain(&e)))
                        }
                    }
                }
            };
            if Instant::now() + backoff > deadline {
                return Err(err);
            }
            last = Some(err);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }
}
