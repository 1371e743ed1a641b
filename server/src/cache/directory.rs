//! The leader's directory: `key → holders` with each holder's state and the
//! lease the directory granted it. Leader-local soft state, never
//! replicated: a new leader starts empty and waits one lease instead.
//!
//! Pure and clock-free; the coherence protocol (`directory_side.rs`) drives
//! it under a per-key lock ([`KeyLocks`]) so one key's cache operations
//! never overlap.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dsync_api::cache::LineState;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Holder {
    pub state: LineState,
    /// The directory's view of the lease (no earlier than the holder's).
    pub lease_until: Instant,
    pub grant: u64,
}

#[derive(Default)]
pub struct Directory {
    keys: HashMap<String, BTreeMap<u64, Holder>>,
    next_grant: u64,
}

impl Directory {
    /// Holders of `key` whose lease has not ended (expired ones are dropped:
    /// they stopped serving on their own).
    pub fn holders(&mut self, key: &str, now: Instant) -> Vec<(u64, Holder)> {
        let Some(h) = self.keys.get_mut(key) else {
            return Vec::new();
        };
        h.retain(|_, x| now < x.lease_until);
        let out = h.iter().map(|(n, x)| (*n, *x)).collect();
        if h.is_empty() {
            self.keys.remove(key);
        }
        out
    }

    /// A read miss from `reader`: the M or E holder elsewhere that must be
    /// downgraded to S first, with its lease end.
    pub fn read_plan(&mut self, key: &str, reader: u64, now: Instant) -> Option<(u64, Instant)> {
        self.holders(key, now)
            .into_iter()
            .find(|(n, h)| *n != reader && matches!(h.state, LineState::M | LineState::E))
            .map(|(n, h)| (n, h.lease_until))
    }

    /// The downgrade of `node` finished: acknowledged → S; else (no line, or
    /// no answer before its lease ended) it holds nothing.
    pub fn downgraded(&mut self, key: &str, node: u64, acked: bool) {
        if let Some(h) = self.keys.get_mut(key) {
            match (acked, h.get_mut(&node)) {
                (true, Some(x)) => x.state = LineState::S,
                _ => {
                    h.remove(&node);
                }
            }
        }
    }

    /// Grants `reader` a line: E when nobody else holds the key, else S
    /// (an M owner reading again stays M).
    pub fn grant_read(&mut self, key: &str, reader: u64, now: Instant, lease: Duration) -> Holder {
        let holders = self.holders(key, now);
        let others = holders.iter().filter(|(n, _)| *n != reader).count();
        let own = holders
            .iter()
            .find(|(n, _)| *n == reader)
            .map(|(_, h)| h.state);
        let state = match (others, own) {
            (0, Some(LineState::M)) => LineState::M,
            (0, _) => LineState::E,
            _ => LineState::S,
        };
        self.insert(key, reader, state, now + lease)
    }

    fn insert(&mut self, key: &str, node: u64, state: LineState, until: Instant) -> Holder {
        self.next_grant += 1;
        let h = Holder {
            state,
            lease_until: until,
            grant: self.next_grant,
        };
        self.keys
            .entry(key.to_string())
            .or_default()
            .insert(node, h);
        h
    }

    /// A write from `writer`: every other copy must be invalidated. The
    /// writer's own record goes too (it dropped its line before asking).
    pub fn write_plan(&mut self, key: &str, writer: u64, now: Instant) -> Vec<(u64, Instant)> {
        let out = self
            .holders(key, now)
            .into_iter()
            .filter(|(n, _)| *n != writer)
            .map(|(n, h)| (n, h.lease_until))
            .collect();
        self.remove(key, writer);
        out
    }

    /// `node` no longer holds `key` (acknowledged or lease ended).
    pub fn remove(&mut self, key: &str, node: u64) {
        if let Some(h) = self.keys.get_mut(key) {
            h.remove(&node);
            if h.is_empty() {
                self.keys.remove(key);
            }
        }
    }

    /// The write committed: the writer is the sole holder, in M.
    pub fn grant_write(&mut self, key: &str, writer: u64, now: Instant, lease: Duration) -> Holder {
        self.keys.remove(key);
        self.insert(key, writer, LineState::M, now + lease)
    }

    /// Extends `node`'s lease if it still holds grant `grant`.
    pub fn renew(&mut self, key: &str, node: u64, grant: u64, until: Instant) -> bool {
        match self.keys.get_mut(key).and_then(|h| h.get_mut(&node)) {
            Some(x) if x.grant == grant && until > x.lease_until => {
                x.lease_until = until;
                true
            }
            Some(x) => x.grant == grant,
            None => false,
        }
    }

    pub fn clear(&mut self) {
        self.keys.clear();
    }

    /// The MESI invariants over live records: at most one M/E holder per
    /// key, and an M/E holder is the only holder.
    pub fn check(&self, now: Instant) -> Result<(), String> {
        for (key, h) in &self.keys {
            let live: Vec<_> = h.iter().filter(|(_, x)| now < x.lease_until).collect();
            let owners = live
                .iter()
                .filter(|(_, x)| matches!(x.state, LineState::M | LineState::E))
                .count();
            if owners > 1 || (owners == 1 && live.len() > 1) {
                return Err(format!("key {key:?}: holders {live:?}"));
            }
        }
        Ok(())
    }
}

/// Per-key serialization at the directory: one cache operation per key at
/// a time, in arrival order (tokio's lock is fair). `/v1/kv` writes share
/// the key among themselves: they only ever remove holders, so two of them
/// may invalidate and commit together, while a read miss or cache write
/// (which grant lines) waits until every one in progress has committed.
/// An entry lives only while its key is held or awaited.
#[derive(Default)]
pub struct KeyLocks {
    locks: Mutex<HashMap<String, Arc<RwLock<()>>>>,
}

enum Held {
    Exclusive(OwnedRwLockWriteGuard<()>),
    Shared(OwnedRwLockReadGuard<()>),
}

pub struct KeyGuard<'a> {
    owner: &'a KeyLocks,
    key: String,
    guard: Option<Held>,
}

impl KeyLocks {
    fn entry(&self, key: &str) -> Arc<RwLock<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key) {
            Some(l) => l.clone(),
            None => map.entry(key.to_string()).or_default().clone(),
        }
    }

    /// The key alone: a cache operation.
    pub async fn lock(&self, key: &str) -> KeyGuard<'_> {
        let held = Held::Exclusive(self.entry(key).write_owned().await);
        self.guard(key, held)
    }

    /// The key shared with other `/v1/kv` writes.
    pub async fn shared(&self, key: &str) -> KeyGuard<'_> {
        let held = Held::Shared(self.entry(key).read_owned().await);
        self.guard(key, held)
    }

    fn guard(&self, key: &str, held: Held) -> KeyGuard<'_> {
        KeyGuard {
            owner: self,
            key: key.to_string(),
            guard: Some(held),
        }
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        // Released before the entry's count is looked at below.
        match self.guard.take() {
            Some(Held::Exclusive(g)) => drop(g),
            Some(Held::Shared(g)) => drop(g),
            None => {}
        }
        let mut map = self.owner.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map holds it: nobody holds or waits, the entry can go.
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
#[path = "directory_tests.rs"]
mod tests;
