//! The stored form of the lock table (snapshots): each lock as the list of
//! its holders in grant order and its queue in order, the shape it had
//! before the indexes existed, so old snapshots load and new ones are the
//! same bytes. Loading rebuilds every index.

use std::collections::{BTreeMap, VecDeque};

use dsync_api::locks::DeadlockInfo;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use super::index::Index;
use super::{Holder, Lock, LockStats, LockTable, Waiter};

#[derive(Deserialize)]
pub(super) struct TableRepr {
    locks: BTreeMap<String, LockRepr>,
    deadlocks: VecDeque<DeadlockInfo>,
    stats: LockStats,
}

impl From<TableRepr> for LockTable {
    fn from(r: TableRepr) -> Self {
        let mut idx = Index::default();
        let locks = r
            .locks
            .into_iter()
            .map(|(name, l)| {
                let lock = Lock::load(&name, l, &mut idx);
                (name, lock)
            })
            .collect();
        LockTable {
            locks,
            deadlocks: r.deadlocks,
            stats: r.stats,
            idx,
        }
    }
}

impl PartialEq for LockTable {
    fn eq(&self, other: &Self) -> bool {
        self.locks == other.locks && self.deadlocks == other.deadlocks && self.stats == other.stats
    }
}

impl Lock {
    /// Rebuilds a lock from its stored form, adding its entries to `idx`.
    pub(super) fn load(name: &str, repr: LockRepr, idx: &mut Index) -> Lock {
        let mut lock = Lock::default();
        for h in repr.holders {
            lock.put_holder(name, h, idx);
        }
        // Stored order is queue order, upgrades first; each upgrade goes in
        // front of the ones before it, so they are queued back to front.
        let (mut upgrades, others): (Vec<Waiter>, Vec<Waiter>) =
            repr.waiters.into_iter().partition(|w| w.upgrade);
        upgrades.reverse();
        for w in upgrades.into_iter().chain(others) {
            lock.enqueue(name, w, idx);
        }
        lock
    }
}

/// The stored form of a lock (unchanged since before the indexes).
#[derive(Deserialize)]
pub(super) struct LockRepr {
    holders: Vec<Holder>,
    waiters: VecDeque<Waiter>,
}

impl Serialize for Lock {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Seq<I>(I);
        impl<I: Iterator + Clone> Serialize for Seq<I>
        where
            I::Item: Serialize,
        {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.clone())
            }
        }
        let mut st = s.serialize_struct("Lock", 2)?;
        st.serialize_field("holders", &Seq(self.holders()))?;
        st.serialize_field("waiters", &Seq(self.waiters()))?;
        st.end()
    }
}

impl PartialEq for Lock {
    fn eq(&self, other: &Self) -> bool {
        self.holders().eq(other.holders()) && self.waiters().eq(other.waiters())
    }
}
