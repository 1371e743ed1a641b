//! A per-endpoint circuit breaker: after `threshold` consecutive failures an
//! endpoint is skipped for `cooldown`, then one probe request is let through
//! (half-open); a success closes it again.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            failures: 0,
            open_until: None,
        }
    }

    /// Whether a request may go to this endpoint now.
    pub fn allows(&self, now: Instant) -> bool {
        self.open_until.is_none_or(|t| now >= t)
    }

    /// When the breaker lets the next probe through (now if closed).
    pub fn ready_at(&self, now: Instant) -> Instant {
        self.open_until.map_or(now, |t| t.max(now))
    }

    pub fn on_success(&mut self) {
        self.failures = 0;
        self.open_until = None;
    }

    pub fn on_failure(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.threshold {
            self.open_until = Some(now + self.cooldown);
        }
    }

    pub fn is_open(&self, now: Instant) -> bool {
        !self.allows(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_half_opens_after_cooldown() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(2));
        b.on_failure(t0);
        b.on_failure(t0);
        assert!(b.allows(t0), "two failures stay below the threshold");
        b.on_failure(t0);
        assert!(!b.allows(t0 + Duration::from_millis(1999)));
        assert!(
            b.allows(t0 + Duration::from_secs(2)),
            "half-open after cooldown"
        );
        // A failed probe re-opens at once.
        b.on_failure(t0 + Duration::from_secs(2));
        assert!(b.is_open(t0 + Duration::from_secs(3)));
        b.on_success();
        assert!(b.allows(t0 + Duration::from_secs(3)));
    }
}
