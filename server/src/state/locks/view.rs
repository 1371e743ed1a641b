//! Wire views of the lock table, with ages relative to the reader's clock.

use dsync_api::locks::{DeadlockInfo, HolderInfo, LockInfo, WaiterInfo};

use super::{Holder, Lock, LockTable};

impl LockTable {
    /// Wire view of one lock; ages relative to `now_ms`.
    pub fn info(&self, name: &str, now_ms: u64) -> Option<LockInfo> {
        self.locks.get(name).map(|l| lock_info(name, l, now_ms))
    }

    pub fn infos(&self, now_ms: u64, limit: usize) -> Vec<LockInfo> {
        self.locks
            .iter()
            .take(limit)
            .map(|(n, l)| lock_info(n, l, now_ms))
            .collect()
    }

    pub fn recent_deadlocks(&self) -> Vec<DeadlockInfo> {
        self.deadlocks.iter().cloned().collect()
    }
}

pub fn holder_info(h: &Holder, now_ms: u64) -> HolderInfo {
    HolderInfo {
        owner: h.owner.clone(),
        mode: h.mode,
        token: h.token,
        ttl_ms: h.ttl_ms,
        held_ms: now_ms.saturating_sub(h.granted_at_ms),
        expires_in_ms: h.expires_at_ms.saturating_sub(now_ms),
    }
}

fn lock_info(name: &str, l: &Lock, now_ms: u64) -> LockInfo {
    LockInfo {
        name: name.to_string(),
        holders: l.holders().map(|h| holder_info(h, now_ms)).collect(),
        waiters: l
            .waiters()
            .map(|w| WaiterInfo {
                owner: w.owner.clone(),
                mode: w.mode,
                waited_ms: now_ms.saturating_sub(w.enqueued_at_ms),
                deadline_in_ms: w.deadline_ms.saturating_sub(now_ms),
                upgrade: w.upgrade,
            })
            .collect(),
    }
}
