//! A per-endpoint circuit breaker: after `threshold` consecutive failures an
//! endpoint is skipped for `cooldown` (open), then exactly one probe request
//! is let through (half-open); the probe's success closes the breaker, its
//! failure opens it for another cooldown. A probe that never reports (its
//! caller was cancelled) is replaced by a new one after a cooldown, so a
//! lost probe cannot keep the endpoint skipped for ever.

use std::time::{Duration, Instant};

/// What a breaker does with the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests go through.
    Closed,
    /// One probe is in flight; other requests are skipped until it reports.
    HalfOpen,
    /// Requests are skipped until the cooldown ends and a probe goes.
    Open,
}

impl BreakerState {
    /// The value of the `dsync_peer_breaker_state` gauge.
    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    Open { until: Instant },
    Probing { since: Instant },
}

#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    phase: Phase,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            failures: 0,
            phase: Phase::Closed,
        }
    }

    /// Asks to send a request now. Closed: yes. Open past its cooldown, or
    /// half-open with a probe older than a cooldown: yes, and that request
    /// becomes the probe. Otherwise no. The caller must report the outcome
    /// of an admitted request with `on_success` or `on_failure`.
    pub fn admit(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Closed => true,
            Phase::Open { until } if now >= until => {
                self.phase = Phase::Probing { since: now };
                true
            }
            Phase::Probing { since } if now >= since + self.cooldown => {
                self.phase = Phase::Probing { since: now };
                true
            }
            Phase::Open { .. } | Phase::Probing { .. } => false,
        }
    }

    /// When `admit` would next say yes (now if it would now).
    pub fn ready_at(&self, now: Instant) -> Instant {
        match self.phase {
            Phase::Closed => now,
            Phase::Open { until } => until.max(now),
            Phase::Probing { since } => (since + self.cooldown).max(now),
        }
    }

    /// Half-open only while a probe is in flight: an open breaker whose
    /// cooldown ended has let nothing through yet, so it is still open.
    pub fn state(&self) -> BreakerState {
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::Probing { .. } => BreakerState::HalfOpen,
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// The endpoint answered: whichever request it was, the endpoint works.
    pub fn on_success(&mut self) {
        self.failures = 0;
        self.phase = Phase::Closed;
    }

    pub fn on_failure(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        let probe_failed = matches!(self.phase, Phase::Probing { .. });
        if probe_failed || self.failures >= self.threshold {
            self.phase = Phase::Open {
                until: now + self.cooldown,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(2);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A breaker opened at `t0` by three failures.
    fn opened(t0: Instant) -> Breaker {
        let mut b = Breaker::new(3, COOLDOWN);
        for _ in 0..3 {
            assert!(b.admit(t0));
            b.on_failure(t0);
        }
        b
    }

    #[test]
    fn stays_closed_below_the_threshold_and_a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, COOLDOWN);
        b.on_failure(t0);
        b.on_failure(t0);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.consecutive_failures(), 2);
        assert!(b.admit(t0));
        b.on_success();
        assert_eq!(b.consecutive_failures(), 0);
        b.on_failure(t0);
        b.on_failure(t0);
        assert_eq!(b.state(), BreakerState::Closed, "the count restarted");
    }

    #[test]
    fn opens_at_the_threshold_and_refuses_until_the_cooldown_ends() {
        let t0 = Instant::now();
        let mut b = opened(t0);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.admit(t0 + COOLDOWN - ms(1)));
        assert_eq!(b.ready_at(t0), t0 + COOLDOWN);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn after_the_cooldown_one_probe_goes_and_a_second_request_is_refused() {
        let t0 = Instant::now();
        let mut b = opened(t0);
        let t1 = t0 + COOLDOWN;
        assert_eq!(b.state(), BreakerState::Open, "nothing let through yet");
        assert!(b.admit(t1), "the probe");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.admit(t1), "a second request during half-open");
        assert!(!b.admit(t1 + COOLDOWN - ms(1)));
        assert_eq!(b.ready_at(t1), t1 + COOLDOWN);
    }

    #[test]
    fn a_successful_probe_closes() {
        let t0 = Instant::now();
        let mut b = opened(t0);
        assert!(b.admit(t0 + COOLDOWN));
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.consecutive_failures(), 0);
        assert!(b.admit(t0 + COOLDOWN));
        assert!(b.admit(t0 + COOLDOWN), "closed admits everything");
    }

    #[test]
    fn a_failed_probe_opens_for_another_cooldown() {
        let t0 = Instant::now();
        let mut b = opened(t0);
        let t1 = t0 + COOLDOWN + ms(5);
        assert!(b.admit(t1));
        b.on_failure(t1);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.admit(t1 + COOLDOWN - ms(1)));
        assert!(b.admit(t1 + COOLDOWN), "the next probe");
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn a_stuck_probe_is_replaced_after_a_cooldown() {
        let t0 = Instant::now();
        let mut b = opened(t0);
        let t1 = t0 + COOLDOWN;
        assert!(b.admit(t1), "a probe that will never report");
        assert!(!b.admit(t1 + COOLDOWN - ms(1)));
        let t2 = t1 + COOLDOWN;
        assert!(b.admit(t2), "a new probe replaces the stuck one");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.admit(t2), "and only one");
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn gauge_values_are_the_documented_ones() {
        assert_eq!(BreakerState::Closed.gauge(), 0);
        assert_eq!(BreakerState::HalfOpen.gauge(), 1);
        assert_eq!(BreakerState::Open.gauge(), 2);
        assert_eq!(
            serde_json::to_string(&BreakerState::HalfOpen).unwrap(),
            "\"half_open\""
        );
    }
}
