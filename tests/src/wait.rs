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
