//! Per-client limits: a request rate (governor's keyed GCRA) and a count of
//! concurrent long polls. Clients are principals when auth is on, remote
//! IPs otherwise.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dsync_api::{ApiError, ErrorCode};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::LimitsConfig;

pub struct Limits {
    pub config: LimitsConfig,
    rate: Option<DefaultKeyedRateLimiter<String>>,
    long_polls: Arc<Mutex<HashMap<String, usize>>>,
}

/// 429 `rate_limited`; the HTTP layer adds `Retry-After`.
pub fn rate_limited(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::RateLimited, msg)
}

/// One long poll in progress; the count drops with it.
#[derive(Debug)]
pub struct LongPoll {
    key: String,
    map: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for LongPoll {
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
            long_polls: Arc::default(),
        }
    }

    /// Takes one request from `key`'s budget, or says when to come back.
    pub fn check_rate(&self, key: &str) -> Result<(), Duration> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
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
    pub fn long_poll(&self, key: &str) -> Result<LongPoll, ApiError> {
        let mut m = self.long_polls.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(key.to_string()).or_insert(0);
        if *n >= self.config.max_long_polls_per_client {
            return Err(rate_limited(format!(
                "{} long polls are already open for this client (the limit)",
                self.config.max_long_polls_per_client
            )));
        }
        *n += 1;
        Ok(LongPoll {
            key: key.to_string(),
            map: self.long_polls.clone(),
        })
    }
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
}
