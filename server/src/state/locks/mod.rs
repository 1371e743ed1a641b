//! The replicated lock table: exclusive and shared locks, FIFO waiters,
//! upgrades, leases, fencing tokens and deadlock refusal.
//!
//! Pure and deterministic: time comes from the entry's leader clock and
//! tokens from the state's revision counter, so every replica decides alike.

#[cfg(test)]
pub mod graph;
#[cfg(test)]
mod model_tests;

use std::collections::{BTreeMap, VecDeque};

use dsync_api::events::Event;
use dsync_api::locks::{DeadlockInfo, HolderInfo, LockInfo, LockMode, WaitEdge, WaiterInfo};
use dsync_api::ErrorCode;
use serde::{Deserialize, Serialize};

use super::CmdError;

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
pub struct Lock {
    pub holders: Vec<Holder>,
    pub waiters: VecDeque<Waiter>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LockStats {
    pub grants: u64,
    pub expired: u64,
    pub deadlocks: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LockTable {
    locks: BTreeMap<String, Lock>,
    deadlocks: VecDeque<DeadlockInfo>,
    pub stats: LockStats,
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

fn conflicts(a: LockMode, b: LockMode) -> bool {
    a == LockMode::Exclusive || b == LockMode::Exclusive
}

impl Lock {
    fn grant(
        &mut self,
        name: &str,
        owner: &str,
        mode: LockMode,
        ttl_ms: u64,
        ctx: &mut Ctx,
        stats: &mut LockStats,
    ) -> Holder {
        let h = Holder {
            owner: owner.to_string(),
            mode,
            token: ctx.next_token(),
            ttl_ms,
            granted_at_ms: ctx.now_ms,
            expires_at_ms: ctx.now_ms.saturating_add(ttl_ms),
        };
        self.holders.retain(|x| x.owner != owner);
        self.holders.push(h.clone());
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
    fn promote(&mut self, name: &str, ctx: &mut Ctx, stats: &mut LockStats) {
        while let Some(head) = self.waiters.front() {
            let holds = self.holders.iter().any(|h| h.owner == head.owner);
            let others = self
                .holders
                .iter()
                .filter(|h| h.owner != head.owner)
                .count();
            let grantable = match (head.upgrade && holds, head.mode) {
                (true, _) => others == 0,
                (false, LockMode::Exclusive) => self.holders.is_empty(),
                (false, LockMode::Shared) => {
                    self.holders.iter().all(|h| h.mode == LockMode::Shared)
                }
            };
            if !grantable {
                return;
            }
            let w = self.waiters.pop_front().expect("head exists");
            self.grant(name, &w.owner, w.mode, w.ttl_ms, ctx, stats);
        }
    }

    /// Who `waiter` (at queue position `pos`) waits for.
    fn blockers(&self, owner: &str, mode: LockMode, upgrade: bool, ahead: usize) -> Vec<String> {
        let mut out: Vec<String> = self
            .holders
            .iter()
            .filter(|h| h.owner != owner && (upgrade || conflicts(mode, h.mode)))
            .map(|h| h.owner.clone())
            .collect();
        for w in self.waiters.iter().take(ahead) {
            if w.owner != owner && conflicts(mode, w.mode) && !out.contains(&w.owner) {
                out.push(w.owner.clone());
            }
        }
        out
    }
}

impl LockTable {
    pub fn get(&self, name: &str) -> Option<&Lock> {
        self.locks.get(name)
    }

    /// Whether `token` is a current grant of `lock` (the fenced-write check).
    pub fn is_current_grant(&self, lock: &str, token: u64) -> bool {
        self.locks
            .get(lock)
            .is_some_and(|l| l.holders.iter().any(|h| h.token == token))
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
        if let Some(h) = lock.holders.iter_mut().find(|h| h.owner == owner) {
            if h.mode == mode || h.mode == LockMode::Exclusive {
                // Idempotent re-acquire: same grant, lease refreshed.
                h.ttl_ms = ttl_ms;
                h.expires_at_ms = ctx.now_ms.saturating_add(ttl_ms);
                return Ok(Acquired::Granted(h.clone()));
            }
            upgrade = true;
        }
        if let Some(w) = lock.waiters.iter().find(|w| w.owner == owner) {
            return Ok(Acquired::Queued { seq: w.seq });
        }
        let others = lock.holders.iter().filter(|h| h.owner != owner).count();
        let free_now = if upgrade {
            others == 0
        } else {
            lock.waiters.is_empty() && lock.holders.iter().all(|h| !conflicts(mode, h.mode))
        };
        if free_now {
            let h = lock.grant(name, owner, mode, ttl_ms, ctx, &mut self.stats);
            return Ok(Acquired::Granted(h));
        }
        let ahead = if upgrade { 0 } else { lock.waiters.len() };
        let blockers = lock.blockers(owner, mode, upgrade, ahead);
        if wait_ms == 0 {
            let busy = CmdError::new(ErrorCode::LockBusy, format!("lock {name:?} is held"))
                .with_details(serde_json::json!({ "holders": blockers }));
            self.drop_if_empty(name);
            return Err(busy);
        }
        if let Some(cycle) = self.closing_cycle(owner, &blockers) {
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
            return Err(CmdError::new(
                ErrorCode::Deadlock,
                format!(
                    "waiting for {name:?} would deadlock: {}",
                    cycle.join(" -> ")
                ),
            )
            .with_details(serde_json::json!({ "cycle": cycle })));
        }
        let seq = *ctx.revision;
        let lock = self.locks.get_mut(name).expect("entry created above");
        let w = Waiter {
            owner: owner.to_string(),
            mode,
            ttl_ms,
            enqueued_at_ms: ctx.now_ms,
            deadline_ms: ctx.now_ms.saturating_add(wait_ms),
            upgrade,
            seq,
        };
        if upgrade {
            lock.waiters.push_front(w);
        } else {
            lock.waiters.push_back(w);
        }
        Ok(Acquired::Queued { seq })
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
            .ok_or_else(|| stale(name, owner, token))?;
        let before = lock.holders.len();
        lock.holders
            .retain(|h| !(h.owner == owner && h.token == token));
        if lock.holders.len() == before {
            return Err(stale(name, owner, token));
        }
        lock.promote(name, ctx, &mut self.stats);
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
        let h = self
            .locks
            .get_mut(name)
            .and_then(|l| {
                l.holders
                    .iter_mut()
                    .find(|h| h.owner == owner && h.token == token)
            })
            .ok_or_else(|| stale(name, owner, token))?;
        if let Some(t) = ttl_ms {
            h.ttl_ms = t;
        }
        h.expires_at_ms = ctx.now_ms.saturating_add(h.ttl_ms);
        Ok(h.clone())
    }

    /// An operator's override: drops every holder of `name` (whatever their
    /// tokens) and grants to whoever is next. Returns the evicted owners.
    pub fn force_release(&mut self, name: &str, ctx: &mut Ctx) -> Vec<String> {
        let Some(lock) = self.locks.get_mut(name) else {
            return Vec::new();
        };
        let owners: Vec<String> = lock.holders.drain(..).map(|h| h.owner).collect();
        if !owners.is_empty() {
            ctx.events.push(Event::LockForceReleased {
                lock: name.to_string(),
                owners: owners.clone(),
                at_ms: ctx.now_ms,
            });
        }
        lock.promote(name, ctx, &mut self.stats);
        self.drop_if_empty(name);
        owners
    }

    /// The client behind a queued request went away: drop the request, or
    /// the grant that answered it if it came too late to be delivered.
    pub fn cancel(&mut self, name: &str, owner: &str, since_seq: u64, ctx: &mut Ctx) {
        let Some(lock) = self.locks.get_mut(name) else {
            return;
        };
        let queued = lock.waiters.len();
        lock.waiters.retain(|w| w.owner != owner);
        if lock.waiters.len() == queued {
            lock.holders
                .retain(|h| !(h.owner == owner && h.token > since_seq));
        }
        lock.promote(name, ctx, &mut self.stats);
        self.drop_if_empty(name);
    }

    /// Expires leases and queued requests due at `ctx.now_ms`, granting to
    /// whoever is next.
    pub fn tick(&mut self, ctx: &mut Ctx) {
        let now = ctx.now_ms;
        let names: Vec<String> = self.locks.keys().cloned().collect();
        for name in names {
            let lock = self.locks.get_mut(&name).expect("listed key");
            let held = lock.holders.len();
            lock.holders.retain(|h| h.expires_at_ms > now);
            self.stats.expired += (held - lock.holders.len()) as u64;
            lock.waiters.retain(|w| w.deadline_ms > now);
            lock.promote(&name, ctx, &mut self.stats);
            self.drop_if_empty(&name);
        }
    }

    /// A new leader's grace period: every lease lasts `by_ms` longer, so no
    /// holder loses a lock to the election itself.
    pub fn extend_leases(&mut self, by_ms: u64) {
        for h in self.locks.values_mut().flat_map(|l| l.holders.iter_mut()) {
            h.expires_at_ms = h.expires_at_ms.saturating_add(by_ms);
        }
    }

    /// The earliest lease expiry or queue deadline, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.locks
            .values()
            .flat_map(|l| {
                l.holders
                    .iter()
                    .map(|h| h.expires_at_ms)
                    .chain(l.waiters.iter().map(|w| w.deadline_ms))
            })
            .min()
    }

    fn drop_if_empty(&mut self, name: &str) {
        if self
            .locks
            .get(name)
            .is_some_and(|l| l.holders.is_empty() && l.waiters.is_empty())
        {
            self.locks.remove(name);
        }
    }

    /// Every current wait as edges.
    pub fn edges(&self) -> Vec<WaitEdge> {
        let mut out = Vec::new();
        for (name, lock) in &self.locks {
            for (i, w) in lock.waiters.iter().enumerate() {
                let ahead = if w.upgrade { 0 } else { i };
                for b in lock.blockers(&w.owner, w.mode, w.upgrade, ahead) {
                    out.push(WaitEdge {
                        waiter: w.owner.clone(),
                        holder: b,
                        lock: name.clone(),
                    });
                }
            }
        }
        out
    }

    /// The graph as a map (tests compare the implicit search against it).
    #[cfg(test)]
    pub fn graph(&self) -> graph::Graph {
        let mut g = graph::Graph::new();
        for e in self.edges() {
            g.entry(e.waiter).or_default().insert(e.holder);
        }
        g
    }

    /// Whether `from` waiting for `targets` would close a cycle, searching
    /// the wait-for graph without materializing it: only the owners reachable
    /// from `targets` are expanded, and names are borrowed, not copied.
    fn closing_cycle(&self, from: &str, targets: &[String]) -> Option<Vec<String>> {
        // owner → (lock, queue position) of each request it has queued.
        let mut waits: std::collections::HashMap<&str, Vec<(&Lock, usize)>> = Default::default();
        for lock in self.locks.values() {
            for (i, w) in lock.waiters.iter().enumerate() {
                waits.entry(w.owner.as_str()).or_default().push((lock, i));
            }
        }
        let mut seen: std::collections::HashSet<&str> = Default::default();
        for t in targets {
            let mut path: Vec<&str> = vec![t.as_str()];
            if self.dfs(&waits, t, from, &mut seen, &mut path) {
                let mut cycle = vec![from.to_string()];
                cycle.extend(path[..path.len() - 1].iter().map(|s| s.to_string()));
                return Some(cycle);
            }
        }
        None
    }

    fn dfs<'a>(
        &'a self,
        waits: &std::collections::HashMap<&'a str, Vec<(&'a Lock, usize)>>,
        at: &'a str,
        goal: &str,
        seen: &mut std::collections::HashSet<&'a str>,
        path: &mut Vec<&'a str>,
    ) -> bool {
        if !seen.insert(at) {
            return false;
        }
        for &(lock, pos) in waits.get(at).map(Vec::as_slice).unwrap_or_default() {
            let w = &lock.waiters[pos];
            let ahead = if w.upgrade { 0 } else { pos };
            let holders = lock
                .holders
                .iter()
                .filter(|h| h.owner != w.owner && (w.upgrade || conflicts(w.mode, h.mode)))
                .map(|h| h.owner.as_str());
            let queued = lock
                .waiters
                .iter()
                .take(ahead)
                .filter(|x| x.owner != w.owner && conflicts(w.mode, x.mode))
                .map(|x| x.owner.as_str());
            for next in holders.chain(queued) {
                path.push(next);
                if next == goal || self.dfs(waits, next, goal, seen, path) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }

    pub fn recent_deadlocks(&self) -> Vec<DeadlockInfo> {
        self.deadlocks.iter().cloned().collect()
    }

    pub fn counts(&self) -> (usize, usize) {
        self.locks.values().fold((0, 0), |(h, w), l| {
            (h + l.holders.len(), w + l.waiters.len())
        })
    }

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
        holders: l.holders.iter().map(|h| holder_info(h, now_ms)).collect(),
        waiters: l
            .waiters
            .iter()
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

fn stale(name: &str, owner: &str, token: u64) -> CmdError {
    CmdError::new(
        ErrorCode::StaleToken,
        format!("token {token} is not a current grant of lock {name:?} to {owner:?}"),
    )
}
