//! One circuit breaker per peer, shared by every call this node makes to
//! that peer: Raft RPCs, forwards to the leader, cache coherence messages,
//! health probes and proxied backups.
//!
//! What counts against a peer is a call that could not reach it or whose
//! connection broke. A call that got no answer within its own timeout does
//! not (except as the half-open probe): a follower that is slow but alive
//! must keep getting heartbeats, or it would start an election, and several
//! callers use timeouts far shorter than a failure (a cache invalidation
//! waits only for the rest of a lease). Any HTTP answer, even an error
//! status, shows the peer reachable and closes the breaker.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dsync_api::breaker::{Breaker, BreakerState};
use dsync_api::types::PeerStatus;

use super::network::PeerError;

/// Consecutive failed calls that open a peer's breaker.
pub const FAILURES_TO_OPEN: u32 = 3;

#[derive(Clone)]
pub struct PeerBreakers {
    cooldown: Duration,
    peers: Arc<Mutex<HashMap<u64, Breaker>>>,
}

/// What a finished call says about its peer.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Reachable,
    Failed,
    /// No answer in time: says nothing, unless the call was the probe.
    Silent,
}

fn verdict<T>(out: &Result<T, PeerError>) -> Verdict {
    match out {
        Ok(_) | Err(PeerError::Rejected(..)) => Verdict::Reachable,
        Err(PeerError::Unreachable(..) | PeerError::Network(..)) => Verdict::Failed,
        Err(PeerError::TimedOut(..)) => Verdict::Silent,
    }
}

impl PeerBreakers {
    /// `cooldown`: how long an open breaker refuses calls before a probe.
    pub fn new(cooldown: Duration) -> Self {
        PeerBreakers {
            cooldown,
            peers: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Breaker>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `call` to peer `id` (at `addr`) if its breaker admits it, and
    /// records what the outcome says about the peer. A refused call fails
    /// at once with `Unreachable`: nothing was sent. A call dropped before
    /// it finished (its caller timed out or went away) records nothing; if
    /// it was the probe, the breaker lets another one go after a cooldown.
    pub async fn call<T>(
        &self,
        id: u64,
        addr: &str,
        call: impl Future<Output = Result<T, PeerError>>,
    ) -> Result<T, PeerError> {
        self.admit(id, addr, Instant::now())?;
        let out = call.await;
        self.record(id, verdict(&out), Instant::now());
        out
    }

    fn admit(&self, id: u64, addr: &str, now: Instant) -> Result<(), PeerError> {
        let mut peers = self.lock();
        let b = peers
            .entry(id)
            .or_insert_with(|| Breaker::new(FAILURES_TO_OPEN, self.cooldown));
        if b.admit(now) {
            return Ok(());
        }
        let wait = b.ready_at(now).saturating_duration_since(now);
        Err(PeerError::Unreachable(
            addr.to_string(),
            format!(
                "not sent: circuit breaker {} after {} failed calls, next probe within {} ms",
                match b.state() {
                    BreakerState::HalfOpen => "half-open (a probe is in flight)",
                    _ => "open",
                },
                b.consecutive_failures(),
                wait.as_millis()
            ),
        ))
    }

    fn record(&self, id: u64, verdict: Verdict, now: Instant) {
        let mut peers = self.lock();
        let Some(b) = peers.get_mut(&id) else {
            return;
        };
        match verdict {
            Verdict::Reachable => b.on_success(),
            Verdict::Failed => b.on_failure(now),
            Verdict::Silent if b.state() == BreakerState::HalfOpen => b.on_failure(now),
            Verdict::Silent => {}
        }
    }

    /// The breaker of each of `members` (never called yet: closed); forgets
    /// the breakers of peers that are no longer members.
    pub fn states(&self, members: &[u64]) -> Vec<PeerStatus> {
        let mut peers = self.lock();
        peers.retain(|id, _| members.contains(id));
        members
            .iter()
            .map(|&id| match peers.get(&id) {
                Some(b) => PeerStatus {
                    id,
                    breaker: b.state(),
                    consecutive_failures: b.consecutive_failures(),
                },
                None => PeerStatus {
                    id,
                    breaker: BreakerState::Closed,
                    consecutive_failures: 0,
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: &str = "127.0.0.1:1";

    fn refused() -> Result<(), PeerError> {
        Err(PeerError::Unreachable(ADDR.into(), "refused".into()))
    }

    /// Peer `id`'s breaker, in a cluster of nodes 2, 3 and 5.
    fn state(b: &PeerBreakers, id: u64) -> (BreakerState, u32) {
        let all = b.states(&[2, 3, 5]);
        let s = all.iter().find(|s| s.id == id).expect("a member");
        (s.breaker, s.consecutive_failures)
    }

    #[tokio::test]
    async fn failures_open_a_peer_and_refused_calls_do_not_run() {
        let b = PeerBreakers::new(Duration::from_secs(60));
        for _ in 0..FAILURES_TO_OPEN {
            assert!(b.call(2, ADDR, async { refused() }).await.is_err());
        }
        assert_eq!(state(&b, 2), (BreakerState::Open, FAILURES_TO_OPEN));
        assert_eq!(state(&b, 3), (BreakerState::Closed, 0), "other peers");
        let mut ran = false;
        let err = b
            .call(2, ADDR, async {
                ran = true;
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(!ran, "a call went through an open breaker");
        assert!(matches!(err, PeerError::Unreachable(..)), "{err}");
        assert!(err.to_string().contains("circuit breaker open"), "{err}");
    }

    #[tokio::test]
    async fn any_answer_closes_and_timeouts_count_only_as_the_probe() {
        let b = PeerBreakers::new(Duration::ZERO);
        let slow = || async { Err::<(), _>(PeerError::TimedOut(ADDR.into(), "slow".into())) };
        for _ in 0..10 {
            let _ = b.call(2, ADDR, slow()).await;
        }
        assert_eq!(state(&b, 2), (BreakerState::Closed, 0), "slow is not dead");

        for _ in 0..FAILURES_TO_OPEN {
            let _ = b.call(2, ADDR, async { refused() }).await;
        }
        assert_eq!(state(&b, 2).0, BreakerState::Open);
        // The cooldown is zero: the next call is the probe.
        let _ = b.call(2, ADDR, slow()).await;
        assert_eq!(state(&b, 2).0, BreakerState::Open, "a silent probe failed");
        let rejected = b
            .call(2, ADDR, async {
                Err::<(), _>(PeerError::Rejected(ADDR.into(), 503, "busy".into()))
            })
            .await;
        assert!(rejected.is_err());
        assert_eq!(state(&b, 2), (BreakerState::Closed, 0), "it answered");
    }

    #[tokio::test]
    async fn a_dropped_probe_keeps_others_out_until_a_cooldown_passes() {
        let b = PeerBreakers::new(Duration::from_secs(60));
        for _ in 0..FAILURES_TO_OPEN {
            let _ = b.call(2, ADDR, async { refused() }).await;
        }
        let t = Instant::now() + Duration::from_secs(60);
        b.admit(2, ADDR, t).expect("the probe");
        // Its caller went away: it never reports.
        assert_eq!(state(&b, 2).0, BreakerState::HalfOpen);
        assert!(b.admit(2, ADDR, t + Duration::from_secs(59)).is_err());
        b.admit(2, ADDR, t + Duration::from_secs(60))
            .expect("a new probe replaces the lost one");
    }

    #[test]
    fn states_cover_every_member_and_forget_removed_ones() {
        let b = PeerBreakers::new(Duration::from_secs(60));
        b.admit(5, ADDR, Instant::now()).unwrap();
        b.record(5, Verdict::Failed, Instant::now());
        assert_eq!(state(&b, 5), (BreakerState::Closed, 1));
        let all = b.states(&[2, 3]);
        assert_eq!(all.iter().map(|p| p.id).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(all[0].breaker, BreakerState::Closed, "never called");
        assert_eq!(state(&b, 5), (BreakerState::Closed, 0), "5 was forgotten");
    }
}
