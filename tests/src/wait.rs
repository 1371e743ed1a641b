//! Polling with a deadline: tests wait for a condition, never for a time.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 50 ms until it yields `Some`, or panics after `limit`
/// naming what it waited for.
pub async fn wait_until<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Like [`wait_until`], for a check that can say why it is not done yet:
/// polls `check` every 50 ms until it yields `Ok`, or panics after `limit`
/// with the last reason.
pub async fn wait_ok<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        let why = match check().await {
            Ok(v) => return v,
            Err(why) => why,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}: {why}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
