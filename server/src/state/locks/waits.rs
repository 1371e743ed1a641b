//! The wait-for graph: its edges for `GET /v1/locks/graph`, and the search
//! for a cycle that a new wait would close.
//!
//! Edges are the reduced ones of [`Lock::blockers`]: with FIFO queues most
//! waits are implied by the wait on the request just ahead, so a lock with
//! n queued requests contributes O(n) edges, not O(n²), and the graph has
//! the same cycles as the full one.

use std::collections::HashSet;

use dsync_api::locks::WaitEdge;

use super::LockTable;

impl LockTable {
    /// Every current wait as (reduced) edges.
    pub fn edges(&self) -> Vec<WaitEdge> {
        let mut out = Vec::new();
        let mut blockers = Vec::new();
        for (name, lock) in &self.locks {
            for w in lock.waiters() {
                blockers.clear();
                lock.blockers_of(&w.owner, &mut blockers);
                out.extend(blockers.iter().map(|b| WaitEdge {
                    waiter: w.owner.clone(),
                    holder: b.to_string(),
                    lock: name.clone(),
                }));
            }
        }
        out
    }

    /// Whether anyone waits, or could be waiting, for `owner`: it holds a
    /// lock with a queue, or has a request with others queued behind it.
    /// A newcomer's wait cannot close a cycle without that.
    fn may_be_waited_on(&self, owner: &str) -> bool {
        let holds = self.idx.holds.get(owner).into_iter().flatten();
        let waits = self.idx.waits.get(owner).into_iter().flatten();
        holds
            .filter_map(|l| self.locks.get(l))
            .any(|l| l.waiter_count() > 0)
            || waits
                .filter_map(|l| self.locks.get(l))
                .any(|l| l.has_waiters_behind(owner))
    }

    /// Owners `owner` waits for, over all its queued requests.
    fn waits_of<'a>(&'a self, owner: &str) -> Vec<&'a str> {
        let mut out = Vec::new();
        for name in self.idx.waits.get(owner).into_iter().flatten() {
            if let Some(lock) = self.locks.get(name) {
                lock.blockers_of(owner, &mut out);
            }
        }
        out
    }

    /// Whether `from` waiting for `targets` would close a cycle; if so the
    /// cycle as `[from, t, …]`, each waiting for the next, the last for
    /// `from`. Depth-first in a fixed order, iteratively (queues can be
    /// long chains), visiting each owner once.
    pub(super) fn closing_cycle(&self, from: &str, targets: &[&str]) -> Option<Vec<String>> {
        if !self.may_be_waited_on(from) {
            return None;
        }
        let mut seen: HashSet<&str> = HashSet::new();
        for &t in targets {
            if t == from {
                return Some(vec![from.to_string()]);
            }
            if !seen.insert(t) {
                continue;
            }
            // Each frame: an owner on the current path, its blockers, and
            // how many of them were tried.
            let mut stack: Vec<(&str, Vec<&str>, usize)> = vec![(t, self.waits_of(t), 0)];
            while let Some((_, next, tried)) = stack.last_mut() {
                let Some(&n) = next.get(*tried) else {
                    stack.pop();
                    continue;
                };
                *tried += 1;
                if n == from {
                    let mut cycle = vec![from.to_string()];
                    cycle.extend(stack.iter().map(|(o, _, _)| o.to_string()));
                    return Some(cycle);
                }
                if seen.insert(n) {
                    stack.push((n, self.waits_of(n), 0));
                }
            }
        }
        None
    }

    /// The reduced graph as a map.
    #[cfg(test)]
    pub fn graph(&self) -> super::graph::Graph {
        let mut g = super::graph::Graph::new();
        for e in self.edges() {
            g.entry(e.waiter).or_default().insert(e.holder);
        }
        g
    }

    /// Every wait spelled out, as the rules say (a request waits for each
    /// conflicting holder and each conflicting request ahead of it):
    /// quadratic, the reference the reduced edges are tested against.
    #[cfg(test)]
    pub fn full_graph(&self) -> super::graph::Graph {
        use dsync_api::locks::LockMode::Exclusive;
        let conflicts = |a, b| a == Exclusive || b == Exclusive;
        let mut g = super::graph::Graph::new();
        for lock in self.locks.values() {
            let queue: Vec<_> = lock.waiters().collect();
            for (i, w) in queue.iter().enumerate() {
                let ahead = if w.upgrade { 0 } else { i };
                let holders = lock
                    .holders()
                    .filter(|h| h.owner != w.owner && (w.upgrade || conflicts(w.mode, h.mode)))
                    .map(|h| &h.owner);
                let queued = queue[..ahead]
                    .iter()
                    .filter(|x| x.owner != w.owner && conflicts(w.mode, x.mode))
                    .map(|x| &x.owner);
                for b in holders.chain(queued) {
                    g.entry(w.owner.clone()).or_default().insert(b.clone());
                }
            }
        }
        g
    }
}
