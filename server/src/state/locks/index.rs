//! Table-wide indexes over every lock: due leases and queue deadlines in
//! time order, and which locks each owner holds or waits for. Derived from
//! the locks (rebuilt when a snapshot loads), never stored.

use std::collections::{BTreeSet, HashMap};

use super::{Holder, Waiter};

#[derive(Debug, Clone, Default)]
pub(super) struct Index {
    /// (lease end, lock, token) of every grant.
    pub leases: BTreeSet<(u64, String, u64)>,
    /// (deadline, lock, owner) of every queued request.
    pub deadlines: BTreeSet<(u64, String, String)>,
    /// owner → locks it holds.
    pub holds: HashMap<String, BTreeSet<String>>,
    /// owner → locks it has a request queued on (the search for cycles
    /// walks these; ordered, so every replica walks alike).
    pub waits: HashMap<String, BTreeSet<String>>,
    /// (lock, owner) of requests that left a queue (granted, withdrawn or
    /// expired) since the node last drained this: the waiters to wake.
    pub dequeued: Vec<(String, String)>,
}

fn add(map: &mut HashMap<String, BTreeSet<String>>, owner: &str, lock: &str) {
    map.entry(owner.to_string())
        .or_default()
        .insert(lock.to_string());
}

fn remove(map: &mut HashMap<String, BTreeSet<String>>, owner: &str, lock: &str) {
    if let Some(set) = map.get_mut(owner) {
        set.remove(lock);
        if set.is_empty() {
            map.remove(owner);
        }
    }
}

impl Index {
    pub fn held(&mut self, lock: &str, h: &Holder) {
        self.leases
            .insert((h.expires_at_ms, lock.to_string(), h.token));
        add(&mut self.holds, &h.owner, lock);
    }

    pub fn unheld(&mut self, lock: &str, h: &Holder) {
        self.leases
            .remove(&(h.expires_at_ms, lock.to_string(), h.token));
        remove(&mut self.holds, &h.owner, lock);
    }

    pub fn queued(&mut self, lock: &str, w: &Waiter) {
        self.deadlines
            .insert((w.deadline_ms, lock.to_string(), w.owner.clone()));
        add(&mut self.waits, &w.owner, lock);
    }

    pub fn unqueued(&mut self, lock: &str, w: &Waiter) {
        self.deadlines
            .remove(&(w.deadline_ms, lock.to_string(), w.owner.clone()));
        remove(&mut self.waits, &w.owner, lock);
    }

    /// Leases ending at or before `now`, earliest first.
    pub fn due_leases(&self, now: u64) -> Vec<(String, u64)> {
        self.leases
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .map(|(_, lock, token)| (lock.clone(), *token))
            .collect()
    }

    /// Queued requests whose deadline is at or before `now`.
    pub fn due_waits(&self, now: u64) -> Vec<(String, String)> {
        self.deadlines
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .map(|(_, lock, owner)| (lock.clone(), owner.clone()))
            .collect()
    }

    pub fn next_deadline(&self) -> Option<u64> {
        let lease = self.leases.first().map(|e| e.0);
        let wait = self.deadlines.first().map(|e| e.0);
        lease.into_iter().chain(wait).min()
    }
}
