//! Keeping a lease alive for `dsync lock run`, and deciding when it is lost.

use std::future::Future;
use std::time::Duration;

use dsync_api::client::ClientError;
use dsync_api::locks::KeepaliveResponse;
use dsync_api::ErrorCode;
use tokio::time::{sleep_until, timeout_at, Instant};

use crate::context::RequestError;
use crate::duration::format_ms;

/// Why the lease ended while the command still ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Lost {
    pub reason: String,
}

/// When to renew. A third of the lease leaves two more tries before expiry
/// if one renewal is lost; failed renewals are retried sooner, since the
/// remaining lease shrinks while the cluster is unreachable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub renew_every: Duration,
    pub retry_every: Duration,
}

impl Schedule {
    pub fn for_ttl(ttl: Duration) -> Self {
        let renew_every = ttl / 3;
        let retry_every = (ttl / 10)
            .clamp(Duration::from_millis(50), Duration::from_secs(1))
            .min(renew_every);
        Schedule {
            renew_every,
            retry_every,
        }
    }
}

/// Renews the lease with `renew` until it is lost, and says why; never
/// returns while the lease holds (the caller drops it when done).
///
/// The lease is assumed to end `ttl` after the *sending* of the last
/// successful renewal: the server started the new lease no earlier than
/// that, so this errs towards declaring the lock lost too soon, never too
/// late. `granted_at` is when the grant arrived (its send time may lie far
/// back in a queue wait).
pub async fn keep_alive<F, Fut>(
    name: &str,
    ttl: Duration,
    granted_at: Instant,
    mut renew: F,
) -> Lost
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<KeepaliveResponse, ClientError>>,
{
    let schedule = Schedule::for_ttl(ttl);
    let mut expires = granted_at + ttl;
    let mut next = granted_at + schedule.renew_every;
    let mut failing: Option<String> = None;
    loop {
        sleep_until(next).await;
        let sent = Instant::now();
        let failure = match timeout_at(expires, renew()).await {
            Ok(Ok(resp)) => {
                expires = sent + Duration::from_millis(resp.ttl_ms);
                next = sent + Schedule::for_ttl(Duration::from_millis(resp.ttl_ms)).renew_every;
                if failing.take().is_some() {
                    eprintln!("lock {name}: keepalive works again");
                }
                continue;
            }
            Ok(Err(e)) if e.code() == Some(ErrorCode::StaleToken) => {
                return Lost {
                    reason: format!("keepalive refused: {}", RequestError(e)),
                };
            }
            Ok(Err(e)) => RequestError(e).to_string(),
            Err(_) => failing
                .clone()
                .unwrap_or_else(|| "no answer to keepalive".to_string()),
        };
        let now = Instant::now();
        if now >= expires {
            return Lost {
                reason: format!(
                    "no keepalive succeeded within the {} lease (last error: {failure})",
                    format_ms(crate::duration::millis(ttl))
                ),
            };
        }
        if failing.is_none() {
            eprintln!("lock {name}: keepalive failed, retrying: {failure}");
        }
        failing = Some(failure);
        // One last try exactly at expiry rather than none after it.
        next = (now + schedule.retry_every).min(expires);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsync_api::ApiError;
    use std::sync::{Arc, Mutex};

    fn ok(ttl_ms: u64) -> Result<KeepaliveResponse, ClientError> {
        Ok(KeepaliveResponse { token: 5, ttl_ms })
    }

    fn api(code: ErrorCode) -> Result<KeepaliveResponse, ClientError> {
        Err(ClientError::Api {
            status: code.http_status(),
            error: ApiError::new(code, "nope"),
        })
    }

    /// Answers from a script (then `fallback` forever), recording call times
    /// relative to `start`.
    fn scripted(
        start: Instant,
        script: Vec<Result<KeepaliveResponse, ClientError>>,
        fallback: fn() -> Result<KeepaliveResponse, ClientError>,
        calls: Arc<Mutex<Vec<Duration>>>,
    ) -> impl FnMut() -> std::future::Ready<Result<KeepaliveResponse, ClientError>> {
        let mut script = script.into_iter();
        move || {
            calls.lock().unwrap().push(Instant::now() - start);
            std::future::ready(script.next().unwrap_or_else(fallback))
        }
    }

    #[test]
    fn renewal_is_every_third_and_retries_are_sooner() {
        let s = Schedule::for_ttl(Duration::from_secs(15));
        assert_eq!(s.renew_every, Duration::from_secs(5));
        assert_eq!(s.retry_every, Duration::from_secs(1));
        let s = Schedule::for_ttl(Duration::from_millis(120));
        assert_eq!(s.renew_every, Duration::from_millis(40));
        assert_eq!(s.retry_every, Duration::from_millis(40));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_token_loses_the_lock_at_once() {
        let start = Instant::now();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let renew = scripted(
            start,
            vec![ok(3_000), api(ErrorCode::StaleToken)],
            || ok(3_000),
            calls.clone(),
        );
        let lost = keep_alive("x", Duration::from_secs(3), start, renew).await;
        assert!(lost.reason.contains("stale_token"), "{lost:?}");
        let calls = calls.lock().unwrap().clone();
        assert_eq!(calls, vec![Duration::from_secs(1), Duration::from_secs(2)]);
    }

    #[tokio::test(start_paused = true)]
    async fn passing_failures_are_retried_and_the_lease_holds() {
        let start = Instant::now();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let renew = scripted(
            start,
            vec![
                api(ErrorCode::Unavailable),
                api(ErrorCode::Unavailable),
                ok(3_000),
            ],
            || ok(3_000),
            calls.clone(),
        );
        let outcome = tokio::time::timeout(
            Duration::from_secs(60),
            keep_alive("x", Duration::from_secs(3), start, renew),
        )
        .await;
        assert!(outcome.is_err(), "the lease must still hold: {outcome:?}");
        let calls = calls.lock().unwrap().clone();
        // 1 s, then retries 300 ms apart, then back to every second.
        assert_eq!(
            calls[..4].to_vec(),
            [1_000, 1_300, 1_600, 2_600].map(Duration::from_millis)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failing_until_expiry_loses_the_lock() {
        let start = Instant::now();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let renew = scripted(start, vec![], || api(ErrorCode::Unavailable), calls.clone());
        let lost = keep_alive("x", Duration::from_secs(3), start, renew).await;
        assert!(lost.reason.contains("within the 3s lease"), "{lost:?}");
        assert!(lost.reason.contains("unavailable"), "{lost:?}");
        assert!(Instant::now() - start <= Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_keepalive_is_cut_off_at_expiry() {
        let start = Instant::now();
        let renew = || std::future::pending::<Result<KeepaliveResponse, ClientError>>();
        let lost = keep_alive("x", Duration::from_secs(3), start, renew).await;
        assert!(lost.reason.contains("no answer"), "{lost:?}");
        assert_eq!(Instant::now() - start, Duration::from_secs(3));
    }
}
