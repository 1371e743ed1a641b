//! Whether a node keeps up with what it knows committed, for `/ready`.
//!
//! Under load a healthy node has almost always committed entries it has
//! not applied yet: the apply runs just behind the commit. What matters is
//! a node that stays behind, catching up after a restart or stuck, so
//! `/ready` asks how long the node has been short of a commit index it
//! knew, not whether it is short right now.

use std::time::{Duration, Instant};

/// How long a node may stay short of a commit index it knew and still be
/// ready: far above an apply batch under load, far below a catch-up.
pub const GRACE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct ApplyProgress {
    /// The commit index the node was short of when first seen so.
    target: u64,
    since: Instant,
}

impl ApplyProgress {
    pub fn new(now: Instant) -> ApplyProgress {
        ApplyProgress {
            target: 0,
            since: now,
        }
    }

    /// Records the node's applied and commit index at `now`. Returns the
    /// commit index it has been short of for longer than `GRACE`, if any.
    pub fn lagging(&mut self, applied: u64, commit: u64, now: Instant) -> Option<u64> {
        if applied >= self.target {
            self.target = commit;
            self.since = now;
        }
        (applied < self.target && now.duration_since(self.since) > GRACE).then_some(self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apply_just_behind_the_commit_is_not_lag() {
        let t0 = Instant::now();
        let mut p = ApplyProgress::new(t0);
        // Every probe finds the apply a little behind, but past what the
        // previous probe saw committed.
        for (i, step) in (0..10u64).zip(1..) {
            let now = t0 + Duration::from_secs(2 * step);
            assert_eq!(p.lagging(100 * i + 90, 100 * i + 100, now), None);
        }
    }

    #[test]
    fn a_node_that_stays_behind_is_lagging_after_the_grace() {
        let t0 = Instant::now();
        let mut p = ApplyProgress::new(t0);
        assert_eq!(p.lagging(10, 5000, t0), None, "within the grace");
        let later = t0 + GRACE + Duration::from_millis(1);
        assert_eq!(p.lagging(2000, 5000, later), Some(5000), "still short");
        // Caught up: ready again at once.
        let done = later + Duration::from_millis(1);
        assert_eq!(p.lagging(5000, 5000, done), None);
        assert_eq!(p.lagging(5000, 5000, done + GRACE * 3), None);
    }

    #[test]
    fn a_stuck_apply_is_lagging_even_while_commits_go_on() {
        let t0 = Instant::now();
        let mut p = ApplyProgress::new(t0);
        assert_eq!(p.lagging(50, 60, t0), None);
        let later = t0 + GRACE * 2;
        // The target stays the first index it was short of.
        assert_eq!(p.lagging(55, 900, later), Some(60));
    }
}
