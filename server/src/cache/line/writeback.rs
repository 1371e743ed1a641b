//! Write-back on top of the line store: local writes to M/E lines, and the
//! bookkeeping of writes not yet committed.

use std::time::Instant;

use dsync_api::cache::LineState;

use super::{idx, size, Dirty, LineStore};

impl LineStore {
    /// Write-back: a write to a valid M or E line with at least half its
    /// lease left is kept locally (M, dirty). Returns false if not possible.
    pub fn write_local(&mut self, key: &str, value: &str, now: Instant) -> bool {
        let lease = self.lease;
        let Some(slot) = self.slots.get_mut(key) else {
            return false;
        };
        let l = &mut slot.line;
        let ok = matches!(l.state, LineState::M | LineState::E)
            && l.lease_until.saturating_duration_since(now) >= lease / 2;
        if !ok {
            return false;
        }
        self.next_dirty += 1;
        let old_size = size(key, l);
        self.by_state[idx(l.state)] -= 1;
        l.state = LineState::M;
        l.value = value.to_string();
        l.dirty = Some(self.next_dirty);
        self.by_state[0] += 1;
        self.bytes = self.bytes - old_size + size(key, l);
        self.touch(key);
        // A read of this key still in flight carries the value this write
        // replaces: it must not install over it.
        self.bump(key);
        true
    }

    /// The evicted, uncommitted write of `key`, handed over for committing.
    pub fn take_leaving_key(&mut self, key: &str) -> Option<Dirty> {
        self.leaving.remove(key)
    }

    /// Evicted writes not yet committed, handed over for committing.
    pub fn take_leaving(&mut self) -> Vec<Dirty> {
        self.leaving.drain().map(|(_, d)| d).collect()
    }

    /// Every dirty line, for the periodic write-back flush.
    pub fn dirty(&self) -> Vec<Dirty> {
        self.slots
            .iter()
            .filter_map(|(k, s)| {
                s.line.dirty.map(|seq| Dirty {
                    key: k.clone(),
                    value: s.line.value.clone(),
                    seq,
                })
            })
            .collect()
    }

    /// A flush of write `seq` committed at `version`: the line is clean
    /// unless it was written again meanwhile.
    pub fn flushed(&mut self, key: &str, seq: u64, version: u64) {
        if let Some(slot) = self.slots.get_mut(key) {
            if slot.line.dirty == Some(seq) {
                slot.line.dirty = None;
                slot.line.version = version;
            }
        }
    }
}
