//! Request ids for deduplicated writes (`x-dsync-request-id`).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// Ids unique to one client: a random prefix, then a counter.
pub(super) struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    pub(super) fn new() -> Self {
        // RandomState is seeded from the OS per thread and stepped for each
        // new one; the pid and clock keep two processes apart as well.
        let seed = (std::process::id(), std::time::SystemTime::now());
        RequestIds {
            prefix: RandomState::new().hash_one(seed),
            next: AtomicU64::new(0),
        }
    }

    pub(super) fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}{n:016x}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_within_a_client_and_between_clients() {
        let (a, b) = (RequestIds::new(), RequestIds::new());
        let ids = [a.next(), a.next(), b.next()];
        assert_eq!(ids[0].len(), 32);
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[0][..16], ids[2][..16]);
    }
}
