//! Per-client limits: a request rate (governor's keyed GCRA) and counts of
//! concurrent long polls and event streams. Clients are principals when
//! auth is on, remote IPs otherwise. Every table here is keyed by a client,
//! so each is kept to the clients active now: the rate table forgets
//! clients whose budget is full again, the counters drop a client at zero.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dsync_api::{ApiError, ErrorCode};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::LimitsConfig;

/// Rate checks between two prunings of the rate table: the table holds at
/// most the clients seen in the last this-many checks plus those whose
/// budget is not full again yet.
const PRUNE_EVERY: u64 = 4096;

type Counts = Arc<Mutex<HashMap<String, usize>>>;

pub struct Limits {
    pub config: LimitsConfig,
    rate: Option<DefaultKeyedRateLimiter<String>>,
    checks: AtomicU64,
    long_polls: Counts,
    event_streams: Counts,
}

/// 429 `rate_limited`; the HTTP layer adds `Retry-After`.
pub fn rate_limited(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::RateLimited, msg)
}

/// One long poll or event stream in progress; the count drops with it.
#[derive(Debug)]
pub struct Held {
    key: String,
    map: Counts,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Limits {
        let rate = NonZeroU32::new(config.rate_limit_per_sec).map(|per_sec| {
            let burst = NonZeroU32::new(config.rate_limit_burst).unwrap_or(per_sec);
            RateLimiter::keyed(Quota::per_second(per_sec).allow_burst(burst))
        });
        Limits {
            config,
            rate,
            checks: AtomicU64::new(0),
            long_polls: Arc::default(),
            event_streams: Arc::default(),
        }
    }

    /// Whether a per-client request rate is enforced at all.
    pub fn rate_limited(&self) -> bool {
        self.rate.is_some()
    }

    /// Takes one request from `key`'s budget, or says when to come back.
    pub fn check_rate(&self, key: &str) -> Result<(), Duration> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.forget_idle();
        }
        rate.check_key(&key.to_string())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets clients idle long enough to have a full budget again, so the
    /// table stays as small as the set of recently active clients.
    pub fn forget_idle(&self) {
        if let Some(rate) = &self.rate {
            rate.retain_recent();
            rate.shrink_to_fit();
        }
    }

    /// Registers a long poll of `key`, or 429 past the per-client limit.
    pub fn long_poll(&self, key: &str) -> Result<Held, ApiError> {
        hold(
            &self.long_polls,
            key,
            self.config.max_long_polls_per_client,
            "long polls",
        )
    }

    /// Registers an event stream of `key`, or 429 past the per-client
    /// limit, so one client cannot take every subscription of the node.
    pub fn event_stream(&self, key: &str) -> Result<Held, ApiError> {
        hold(
            &self.event_streams,
            key,
            self.config.max_event_streams_per_client,
            "event streams",
        )
    }

    /// Clients the rate table holds now.
    pub fn rate_clients(&self) -> usize {
        self.rate.as_ref().map_or(0, |r| r.len())
    }
}

/// 429 when a name that is not in a table of `what` yet would take it
/// past `max` entries. Checked on the node that takes the request, before
/// anything is proposed: a soft limit, which concurrent writes of new
/// names may pass by a few.
pub fn room_for_new(
    what: &str,
    setting: &str,
    exists: bool,
    have: usize,
    max: usize,
) -> Result<(), ApiError> {
    if exists || have < max {
        return Ok(());
    }
    Err(rate_limited(format!(
        "there are {have} {what}, the limit (limits.{setting}): remove some or raise it"
    )))
}

fn hold(map: &Counts, key: &str, max: usize, what: &str) -> Result<Held, ApiError> {
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    let n = m.entry(key.to_string()).or_insert(0);
    if *n >= max {
        return Err(rate_limited(format!(
            "{max} {what} are already open for this client (the limit)"
        )));
    }
    *n += 1;
    Ok(Held {
        key: key.to_string(),
        map: map.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_per_key_and_says_when_to_retry() {
        let l = Limits::new(LimitsConfig {
            rate_limit_per_sec: 1,
            rate_limit_burst: 2,
            ..LimitsConfig::default()
        });
        assert!(l.check_rate("a").is_ok());
        assert!(l.check_rate("a").is_ok());
        let wait = l.check_rate("a").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(l.check_rate("b").is_ok());
        let off = Limits::new(LimitsConfig::default());
        assert!((0..1000).all(|_| off.check_rate("a").is_ok()));
    }

    #[test]
    fn long_polls_are_counted_until_dropped() {
        let l = Limits::new(LimitsConfig {
            max_long_polls_per_client: 2,
            ..LimitsConfig::default()
        });
        let a = l.long_poll("a").unwrap();
        let _b = l.long_poll("a").unwrap();
        assert_eq!(l.long_poll("a").unwrap_err().code, ErrorCode::RateLimited);
        assert!(l.long_poll("z").is_ok());
        drop(a);
        assert!(l.long_poll("a").is_ok());
    }

    #[test]
    fn the_rate_table_forgets_clients_whose_budget_is_full_again() {
        // A budget refills in a millisecond: every client seen once is
        // forgettable almost at once.
        let l = Limits::new(LimitsConfig {
            rate_limit_per_sec: 1000,
            rate_limit_burst: 1,
            ..LimitsConfig::default()
        });
        for i in 0..100_000 {
            assert!(l
                .check_rate(&format!("10.0.{}.{}", i / 256, i % 256))
                .is_ok());
        }
        let held = l.rate_clients();
        assert!(
            held < 50_000,
            "{held} of 100,000 one-off clients still held"
        );
    }

    #[test]
    fn event_streams_are_counted_per_client() {
        let l = Limits::new(LimitsConfig {
            max_event_streams_per_client: 1,
            ..LimitsConfig::default()
        });
        let a = l.event_stream("a").unwrap();
        assert_eq!(
            l.event_stream("a").unwrap_err().code,
            ErrorCode::RateLimited
        );
        assert!(l.event_stream("b").is_ok());
        // Long polls are a separate count.
        assert!(l.long_poll("a").is_ok());
        drop(a);
        assert!(l.event_stream("a").is_ok());
    }
}
