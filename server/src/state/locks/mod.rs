//! The replicated lock table: exclusive and shared locks, FIFO waiters,
//! upgrades, leases, fencing tokens and deadlock refusal.
//!
//! Pure and deterministic: time comes from the entry's leader clock and
//! tokens from the state's revision counter, so every replica decides alike.
//! Every operation is O(log n) in the requests queued on a lock (the cycle
//! search aside, which only runs when the requester can be waited on, and
//! then visits each owner once), so one lock can carry 10,000 waiters.

#[cfg(test)]
pub mod graph;
mod index;
mod lock;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod scale_tests;
mod stored;
mod view;
mod waits;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use dsync_api::events::Event;
use dsync_api::locks::{DeadlockInfo, LockMode};
use dsync_api::ErrorCode;
use serde::{Deserialize, Serialize};

use super::CmdError;
use index::Index;
pub use lock::Lock;
pub use view::holder_info;

/// Refused cycles remembered for `GET /v1/locks/graph`.
const RECENT_DEADLOCKS: usize = 32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub owner: String,
    pub mode: LockMode,
    pub token: u64,
    pub ttl_ms: u64,
    pub granted_at_ms: u64,
    pub expires_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiter {
    pub owner: String,
    pub mode: LockMode,
    pub ttl_ms: u64,
    pub enqueued_at_ms: u64,
    pub deadline_ms: u64,
    /// A shared holder asking for exclusive; waits at the front of the queue.
    pub upgrade: bool,
    /// Revision when queued: the grant that answers this request has a
    /// larger token.
    pub seq: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LockStats {
    pub grants: u64,
    pub expired: u64,
    pub deadlocks: u64,
}

/// Serialized as its three stored fields (the format of snapshots made
/// before the indexes existed); the index is rebuilt on load.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "stored::TableRepr")]
pub struct LockTable {
    locks: BTreeMap<String, Lock>,
    deadlocks: VecDeque<DeadlockInfo>,
    pub stats: LockStats,
    #[serde(skip)]
    idx: Index,
}

/// Result of an acquire that was not refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Acquired {
    Granted(Holder),
    Queued { seq: u64 },
}

/// Clock, token source and event outbox of one command.
pub struct Ctx<'a> {
    pub now_ms: u64,
    pub revision: &'a mut u64,
    /// Grants and refusals, for `/v1/events` (drained after apply).
    pub events: &'a mut Vec<Event>,
}

impl Ctx<'_> {
    fn next_token(&mut self) -> u64 {
        *self.revision += 1;
        *self.revision
    }
}

impl LockTable {
    /// Locks with a holder or a waiter (a free lock is not kept).
    pub fn len(&self) -> usize {
        self.locks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.locks.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Lock> {
        self.locks.get(name)
    }

    /// Whether `token` is a current grant of `lock` (the fenced-write check).
    pub fn is_current_grant(&self, lock: &str, token: u64) -> bool {
        self.locks
            .get(lock)
            .is_some_and(|l| l.holder_by_token(token).is_some())
    }

    /// (lock, owner) of the requests that left a queue since the last call:
    /// granted, withdrawn or expired. The node wakes their waiters.
    pub fn take_dequeued(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.idx.dequeued)
    }

    pub fn acquire(
        &mut self,
        name: &str,
        owner: &str,
        mode: LockMode,
        ttl_ms: u64,
        wait_ms: u64,
        ctx: &mut Ctx,
    ) -> Result<Acquired, CmdError> {
        let lock = self.locks.entry(name.to_string()).or_default();
        let mut upgrade = false;
        if let Some((token, held)) = lock.holder_of(owner).map(|h| (h.token, h.mode)) {
            if held == mode || held == LockMode::Exclusive {
                // Idempotent re-acquire: same grant, lease refreshed.
                let expires = ctx.now_ms.saturating_add(ttl_ms);
                let h = lock.set_expiry(name, token, ttl_ms, expires, &mut self.idx);
                return Ok(Acquired::Granted(h.expect("held").clone()));
            }
            upgrade = true;
        }
        if let Some(w) = lock.waiter_of(owner) {
            return Ok(Acquired::Queued { seq: w.seq });
        }
        let free_now = if upgrade {
            lock.holder_count() == 1
        } else {
            lock.waiter_count() == 0
                && match mode {
                    LockMode::Exclusive => lock.holder_count() == 0,
                    LockMode::Shared => !lock.has_exclusive_holder(),
                }
        };
        if free_now {
            let h = lock.grant(
                name,
                (owner, mode, ttl_ms),
                ctx,
                &mut self.stats,
                &mut self.idx,
            );
            return Ok(Acquired::Granted(h));
        }
        if wait_ms == 0 {
            let holders: Vec<&str> = lock
                .holders()
                .map(|h| h.owner.as_str())
                .filter(|o| *o != owner)
                .collect();
            let busy = CmdError::new(ErrorCode::LockBusy, format!("lock {name:?} is held"))
                .with_details(serde_json::json!({ "holders": holders }));
            self.drop_if_empty(name);
            return Err(busy);
        }
        let lock = &self.locks[name];
        let mut targets = Vec::new();
        lock.blockers((owner, mode, upgrade), lock.back(), &mut targets);
        if let Some(cycle) = self.closing_cycle(owner, &targets) {
            return Err(self.refuse(name, cycle, ctx));
        }
        let seq = *ctx.revision;
        let w = Waiter {
            owner: owner.to_string(),
            mode,
            ttl_ms,
            enqueued_at_ms: ctx.now_ms,
            deadline_ms: ctx.now_ms.saturating_add(wait_ms),
            upgrade,
            seq,
        };
        let lock = self.locks.get_mut(name).expect("entry created above");
        lock.enqueue(name, w, &mut self.idx);
        Ok(Acquired::Queued { seq })
    }

    /// Records a refused wait that would have closed `cycle`.
    fn refuse(&mut self, name: &str, cycle: Vec<String>, ctx: &mut Ctx) -> CmdError {
        self.stats.deadlocks += 1;
        if self.deadlocks.len() == RECENT_DEADLOCKS {
            self.deadlocks.pop_front();
        }
        self.deadlocks.push_back(DeadlockInfo {
            cycle: cycle.clone(),
            lock: name.to_string(),
            at_ms: ctx.now_ms,
        });
        ctx.events.push(Event::Deadlock {
            lock: name.to_string(),
            cycle: cycle.clone(),
            at_ms: ctx.now_ms,
        });
        self.drop_if_empty(name);
        CmdError::new(
            ErrorCode::Deadlock,
            format!(
                "waiting for {name:?} would deadlock: {}",
                cycle.join(" -> ")
            ),
        )
        .with_details(serde_json::json!({ "cycle": cycle }))
    }

    pub fn release(
        &mut self,
        name: &str,
        owner: &str,
        token: u64,
        ctx: &mut Ctx,
    ) -> Result<(), CmdError> {
        let lock = self
            .locks
            .get_mut(name)
            .filter(|l| l.holder_by_token(token).is_some_and(|h| h.owner == owner))
            .ok_or_else(|| stale(name, owner, token))?;
        lock.take_holder(name, token, &mut self.idx);
        lock.promote(name, ctx, &mut self.stats, &mut self.idx);
        self.drop_if_empty(name);
        Ok(())
    }

    pub fn keepalive(
        &mut self,
        name: &str,
        owner: &str,
        token: u64,
        ttl_ms: Option<u64>,
        ctx: &mut Ctx,
    ) -> Result<Holder, CmdError> {
        let lock = self.locks.get_mut(name);
        let held = lock.and_then(|l| {
            let ttl = l
                .holder_by_token(token)
                .filter(|h| h.owner == owner)
                .map(|h| ttl_ms.unwrap_or(h.ttl_ms))?;
            l.set_expiry(
                name,
                token,
                ttl,
                ctx.now_ms.saturating_add(ttl),
                &mut self.idx,
            )
        });
        held.cloned().ok_or_else(|| stale(name, owner, token))
    }

    /// An operator's override: drops every holder of `name` (whatever their
    /// tokens) and grants to whoever is next. Returns the evicted owners.
    pub fn force_release(&mut self, name: &str, ctx: &mut Ctx) -> Vec<String> {
        let Some(lock) = self.locks.get_mut(name) else {
            return Vec::new();
        };
        let tokens: Vec<u64> = lock.holders().map(|h| h.token).collect();
        let owners: Vec<String> = tokens
            .into_iter()
            .filter_map(|t| lock.take_holder(name, t, &mut self.idx))
            .map(|h| h.owner)
            .collect();
        if !owners.is_empty() {
            ctx.events.push(Event::LockForceReleased {
                lock: name.to_string(),
                owners: owners.clone(),
                at_ms: ctx.now_ms,
            });
        }
        lock.promote(name, ctx, &mut self.stats, &mut self.idx);
        self.drop_if_empty(name);
        owners
    }

    /// The client behind a queued request went away: drop the request if it
    /// is still queued. (`_since_seq` stays in the command for the wire and
    /// log format; it used to select a grant to drop, see below.)
    pub fn cancel(&mut self, name: &str, owner: &str, _since_seq: u64, ctx: &mut Ctx) {
        let Some(lock) = self.locks.get_mut(name) else {
            return;
        };
        // Only the queued request is withdrawn. A grant that already
        // answered it stays until released or expired: the same owner may
        // hold it through another request (a retry, an idempotent
        // re-acquire) by the time this cancel is applied, and cancels can be
        // applied seconds late (their proposal waits out elections and
        // partitions). Releasing it here broke mutual exclusion. An
        // undelivered grant costs at most its lease.
        if lock.dequeue(name, owner, &mut self.idx).is_some() {
            self.idx
                .dequeued
                .push((name.to_string(), owner.to_string()));
        }
        lock.promote(name, ctx, &mut self.stats, &mut self.idx);
        self.drop_if_empty(name);
    }

    /// Expires leases and queued requests due at `ctx.now_ms`, granting to
    /// whoever is next.
    pub fn tick(&mut self, ctx: &mut Ctx) {
        let now = ctx.now_ms;
        let mut touched = BTreeSet::new();
        for (name, token) in self.idx.due_leases(now) {
            if let Some(lock) = self.locks.get_mut(&name) {
                lock.take_holder(&name, token, &mut self.idx);
                self.stats.expired += 1;
            }
            touched.insert(name);
        }
        for (name, owner) in self.idx.due_waits(now) {
            if let Some(lock) = self.locks.get_mut(&name) {
                lock.dequeue(&name, &owner, &mut self.idx);
                self.idx.dequeued.push((name.clone(), owner));
            }
            touched.insert(name);
        }
        // Lock order, as every replica does it: grants get their tokens
        // in the same order everywhere.
        for name in touched {
            if let Some(lock) = self.locks.get_mut(&name) {
                lock.promote(&name, ctx, &mut self.stats, &mut self.idx);
            }
            self.drop_if_empty(&name);
        }
    }

    /// A new leader's grace period: every lease lasts `by_ms` longer, so no
    /// holder loses a lock to the election itself.
    pub fn extend_leases(&mut self, by_ms: u64) {
        for (name, lock) in &mut self.locks {
            let grants: Vec<(u64, u64, u64)> = lock
                .holders()
                .map(|h| (h.token, h.ttl_ms, h.expires_at_ms.saturating_add(by_ms)))
                .collect();
            for (token, ttl, expires) in grants {
                lock.set_expiry(name, token, ttl, expires, &mut self.idx);
            }
        }
    }

    /// The earliest lease expiry or queue deadline, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.idx.next_deadline()
    }

    fn drop_if_empty(&mut self, name: &str) {
        if self.locks.get(name).is_some_and(Lock::is_empty) {
            self.locks.remove(name);
        }
    }

    /// (grants held, requests queued) over all locks.
    pub fn counts(&self) -> (usize, usize) {
        (self.idx.leases.len(), self.idx.deadlines.len())
    }
}

fn stale(name: &str, owner: &str, token: u64) -> CmdError {
    CmdError::new(
        ErrorCode::StaleToken,
        format!("token {token} is not a current grant of lock {name:?} to {owner:?}"),
    )
}
