//! One lock: its grants and its FIFO queue, indexed so that every change
//! costs O(log n) however many requests wait on it.
//!
//! The indexes are derived, never stored (see `stored.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use dsync_api::events::Event;
use dsync_api::locks::LockMode;

use super::index::Index;
use super::{Ctx, Holder, LockStats, Waiter};

/// Up to this many holders, every request lists those it conflicts with.
const FEW_HOLDERS: usize = 8;

#[derive(Debug, Clone, Default)]
pub struct Lock {
    /// Grants by token: token order is grant order.
    holders: BTreeMap<u64, Holder>,
    /// owner → token of its grant.
    holder_tokens: HashMap<String, u64>,
    /// Tokens of exclusive grants (at most one, alone, in a sound table).
    exclusive_holders: BTreeSet<u64>,
    /// The queue by position. Upgrades wait at the front, at negative
    /// positions (the newest first); other requests at increasing positions
    /// from 0, in arrival order.
    waiters: BTreeMap<i64, Waiter>,
    /// owner → position of its queued request (one per owner and lock).
    positions: HashMap<String, i64>,
    /// Positions of queued exclusive requests that are not upgrades: a
    /// shared request waits for the nearest one ahead of it.
    exclusive_waiters: BTreeSet<i64>,
    /// Lowest upgrade position used; the next upgrade goes below it.
    front: i64,
    /// Next position for a request that is not an upgrade.
    back: i64,
}

impl Lock {
    pub fn holders(&self) -> impl ExactSizeIterator<Item = &Holder> + Clone {
        self.holders.values()
    }

    /// The queue in order: upgrades first, then arrival order.
    pub fn waiters(&self) -> impl ExactSizeIterator<Item = &Waiter> + Clone {
        self.waiters.values()
    }

    pub fn holder_count(&self) -> usize {
        self.holders.len()
    }

    pub fn waiter_count(&self) -> usize {
        self.waiters.len()
    }

    pub fn holder_of(&self, owner: &str) -> Option<&Holder> {
        self.holder_tokens
            .get(owner)
            .and_then(|t| self.holders.get(t))
    }

    pub fn holder_by_token(&self, token: u64) -> Option<&Holder> {
        self.holders.get(&token)
    }

    pub fn waiter_of(&self, owner: &str) -> Option<&Waiter> {
        self.positions.get(owner).and_then(|p| self.waiters.get(p))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.holders.is_empty() && self.waiters.is_empty()
    }

    pub(super) fn has_exclusive_holder(&self) -> bool {
        !self.exclusive_holders.is_empty()
    }

    /// Whether some queued request comes after `owner`'s.
    pub(super) fn has_waiters_behind(&self, owner: &str) -> bool {
        self.positions
            .get(owner)
            .is_some_and(|&p| self.waiters.range(p + 1..).next().is_some())
    }

    /// Records a grant, replacing the owner's previous one (an upgrade).
    pub(super) fn put_holder(&mut self, name: &str, h: Holder, idx: &mut Index) {
        if let Some(&old) = self.holder_tokens.get(&h.owner) {
            self.take_holder(name, old, idx);
        }
        idx.held(name, &h);
        self.holder_tokens.insert(h.owner.clone(), h.token);
        if h.mode == LockMode::Exclusive {
            self.exclusive_holders.insert(h.token);
        }
        self.holders.insert(h.token, h);
    }

    pub(super) fn take_holder(
        &mut self,
        name: &str,
        token: u64,
        idx: &mut Index,
    ) -> Option<Holder> {
        let h = self.holders.remove(&token)?;
        self.holder_tokens.remove(&h.owner);
        self.exclusive_holders.remove(&token);
        idx.unheld(name, &h);
        Some(h)
    }

    /// Moves a grant's lease end (keepalive, re-acquire, a leader's grace).
    pub(super) fn set_expiry(
        &mut self,
        name: &str,
        token: u64,
        ttl_ms: u64,
        expires_at_ms: u64,
        idx: &mut Index,
    ) -> Option<&Holder> {
        let h = self.holders.get_mut(&token)?;
        idx.unheld(name, h);
        h.ttl_ms = ttl_ms;
        h.expires_at_ms = expires_at_ms;
        idx.held(name, h);
        Some(h)
    }

    /// Queues `w`: upgrades at the front, everything else at the back.
    pub(super) fn enqueue(&mut self, name: &str, w: Waiter, idx: &mut Index) {
        let pos = if w.upgrade {
            self.front -= 1;
            self.front
        } else {
            self.back += 1;
            self.back - 1
        };
        idx.queued(name, &w);
        if !w.upgrade && w.mode == LockMode::Exclusive {
            self.exclusive_waiters.insert(pos);
        }
        self.positions.insert(w.owner.clone(), pos);
        self.waiters.insert(pos, w);
    }

    pub(super) fn dequeue(&mut self, name: &str, owner: &str, idx: &mut Index) -> Option<Waiter> {
        let pos = self.positions.remove(owner)?;
        let w = self.waiters.remove(&pos).expect("indexed position");
        self.exclusive_waiters.remove(&pos);
        idx.unqueued(name, &w);
        Some(w)
    }

    pub(super) fn grant(
        &mut self,
        name: &str,
        (owner, mode, ttl_ms): (&str, LockMode, u64),
        ctx: &mut Ctx,
        stats: &mut LockStats,
        idx: &mut Index,
    ) -> Holder {
        let h = Holder {
            owner: owner.to_string(),
            mode,
            token: ctx.next_token(),
            ttl_ms,
            granted_at_ms: ctx.now_ms,
            expires_at_ms: ctx.now_ms.saturating_add(ttl_ms),
        };
        self.put_holder(name, h.clone(), idx);
        stats.grants += 1;
        ctx.events.push(Event::LockGranted {
            lock: name.to_string(),
            owner: h.owner.clone(),
            mode,
            token: h.token,
            at_ms: ctx.now_ms,
        });
        h
    }

    /// Grants from the head of the queue while it can: consecutive shared
    /// requests together, an exclusive one alone, an upgrade when its owner
    /// is the sole holder.
    pub(super) fn promote(
        &mut self,
        name: &str,
        ctx: &mut Ctx,
        stats: &mut LockStats,
        idx: &mut Index,
    ) {
        while let Some(head) = self.waiters.values().next() {
            let holds = self.holder_tokens.contains_key(&head.owner);
            let grantable = match (head.upgrade && holds, head.mode) {
                (true, _) => self.holders.len() == 1,
                (false, LockMode::Exclusive) => self.holders.is_empty(),
                (false, LockMode::Shared) => self.exclusive_holders.is_empty(),
            };
            if !grantable {
                return;
            }
            let owner = head.owner.clone();
            let w = self.dequeue(name, &owner, idx).expect("head exists");
            idx.dequeued.push((name.to_string(), owner));
            self.grant(name, (&w.owner, w.mode, w.ttl_ms), ctx, stats, idx);
        }
    }

    /// Owners the request of `owner` (queued, or about to be, at `pos`)
    /// waits for, reduced to what keeps the wait-for graph's reachability:
    /// an exclusive request waits for the request just ahead (and, behind
    /// shared ones, for each of them down to the previous exclusive one), a
    /// shared request for the nearest exclusive request ahead; only the
    /// front of the queue must wait for the holders. Every reduced edge is
    /// a real wait and every real wait is reachable through them, so the
    /// cycles are the same while the edges stay linear in the queue.
    /// Conflicting holders come first when there are few: the search then
    /// finds the shortest cycles, the ones through a holder.
    pub(super) fn blockers<'a>(
        &'a self,
        (owner, mode, upgrade): (&str, LockMode, bool),
        pos: i64,
        out: &mut Vec<&'a str>,
    ) {
        let conflicting = |h: &&'a Holder| {
            h.owner != owner
                && (upgrade || mode == LockMode::Exclusive || h.mode == LockMode::Exclusive)
        };
        let few = self.holders.len() <= FEW_HOLDERS;
        if upgrade || few {
            out.extend(
                self.holders
                    .values()
                    .filter(conflicting)
                    .map(|h| h.owner.as_str()),
            );
        }
        if upgrade {
            return;
        }
        let is_conflicting_holder = |o: &str| self.holder_of(o).is_some_and(|h| conflicting(&h));
        if mode == LockMode::Shared {
            if let Some(p) = self.exclusive_waiters.range(0..pos).next_back() {
                out.push(&self.waiters[p].owner);
                return;
            }
        } else {
            for (_, w) in self.waiters.range(0..pos).rev() {
                out.push(&w.owner);
                if w.mode == LockMode::Exclusive {
                    return;
                }
            }
        }
        // At the front: the holders in the way and the upgrades ahead.
        if !few {
            out.extend(
                self.holders
                    .values()
                    .filter(conflicting)
                    .map(|h| h.owner.as_str()),
            );
        }
        for w in self.waiters.range(..0).map(|(_, w)| w) {
            if !is_conflicting_holder(&w.owner) {
                out.push(&w.owner);
            }
        }
    }

    /// Reduced blockers of the request `owner` has queued here.
    pub(super) fn blockers_of<'a>(&'a self, owner: &str, out: &mut Vec<&'a str>) {
        if let Some(&pos) = self.positions.get(owner) {
            let w = &self.waiters[&pos];
            self.blockers((owner, w.mode, w.upgrade), pos, out);
        }
    }

    /// Position a new request that is not an upgrade would take.
    pub(super) fn back(&self) -> i64 {
        self.back
    }
}
