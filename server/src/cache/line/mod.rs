//! One node's lines: an LRU bounded in entries and bytes, each line leased.
//!
//! Pure and clock-free (callers pass `now`), so the state machine is tested
//! without a cluster. A line exists only in M, E or S; a key without a line is
//! I. A read or write this node has in flight for a key is *pending*: an
//! invalidation, a downgrade or an overlapping write of the key voids it, and
//! the answer to a void request is returned to its client but never installed
//! (it may predate a write the directory has since completed).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use dsync_api::cache::{LineInfo, LineState, LinesByState};

#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// JSON text.
    pub value: String,
    /// KV version of the last committed value this line reflects.
    pub version: u64,
    pub state: LineState,
    /// Measured from when this node sent the request that granted or renewed
    /// the line, so it ends no later than the directory believes.
    pub lease_until: Instant,
    /// Directory grant id (renewals must name it).
    pub grant: u64,
    /// Write-back: a local write not yet committed; bumped on every write.
    pub dirty: Option<u64>,
}

struct Slot {
    line: Line,
    tick: u64,
}

/// Requests in flight for one key; `epoch` changes whenever their answers
/// may be stale.
#[derive(Default)]
struct Pending {
    count: u32,
    writes: u32,
    epoch: u64,
}

/// A token no epoch equals.
const VOID: u64 = u64::MAX;

/// Outcome of a local lookup.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Hit {
        value: String,
        version: u64,
        state: LineState,
        grant: u64,
        /// Less than half the lease is left: ask the directory to renew.
        renew: bool,
    },
    Miss,
}

/// A dirty line that left the cache and must still be committed.
#[derive(Debug, Clone, PartialEq)]
pub struct Dirty {
    pub key: String,
    pub value: String,
    pub seq: u64,
}

pub struct LineStore {
    cap_entries: usize,
    cap_bytes: usize,
    lease: Duration,
    slots: HashMap<String, Slot>,
    /// LRU order: last-use tick → key.
    order: BTreeMap<u64, String>,
    tick: u64,
    bytes: usize,
    by_state: [u64; 3],
    pending: HashMap<String, Pending>,
    next_dirty: u64,
    next_epoch: u64,
    /// Write-back lines evicted before their write was committed; the
    /// next flush commits them, and an invalidation or downgrade of the key
    /// commits them first.
    leaving: HashMap<String, Dirty>,
    pub evictions: u64,
}

fn idx(s: LineState) -> usize {
    match s {
        LineState::M => 0,
        LineState::E => 1,
        _ => 2,
    }
}

fn size(key: &str, line: &Line) -> usize {
    key.len() + line.value.len() + 64
}

impl LineStore {
    pub fn new(cap_entries: usize, cap_bytes: usize, lease: Duration) -> LineStore {
        LineStore {
            cap_entries,
            cap_bytes,
            lease,
            slots: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            bytes: 0,
            by_state: [0; 3],
            pending: HashMap::new(),
            next_dirty: 0,
            next_epoch: 0,
            leaving: HashMap::new(),
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn by_state(&self) -> LinesByState {
        LinesByState {
            m: self.by_state[0],
            e: self.by_state[1],
            s: self.by_state[2],
        }
    }

    fn remove(&mut self, key: &str) -> Option<Line> {
        let slot = self.slots.remove(key)?;
        self.order.remove(&slot.tick);
        self.bytes -= size(key, &slot.line);
        self.by_state[idx(slot.line.state)] -= 1;
        Some(slot.line)
    }

    fn touch(&mut self, key: &str) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(slot) = self.slots.get_mut(key) {
            self.order.remove(&slot.tick);
            slot.tick = tick;
            self.order.insert(tick, key.to_string());
        }
    }

    /// A valid line is served and becomes most recently used; an expired one
    /// is dropped (never served past its lease).
    pub fn get(&mut self, key: &str, now: Instant) -> Lookup {
        let Some(slot) = self.slots.get(key) else {
            return Lookup::Miss;
        };
        if now >= slot.line.lease_until {
            if let Some(d) = self.remove(key).and_then(|l| dirty_of(key, l)) {
                self.leaving.insert(d.key.clone(), d);
            }
            return Lookup::Miss;
        }
        let l = &slot.line;
        let hit = Lookup::Hit {
            value: l.value.clone(),
            version: l.version,
            state: l.state,
            grant: l.grant,
            renew: l.lease_until.saturating_duration_since(now) < self.lease / 2,
        };
        self.touch(key);
        hit
    }

    /// Marks a request for `key` in flight and returns its token. A write
    /// (`is_write`) first drops this node's own line and voids answers
    /// still in flight for the key, which may carry the value it replaces;
    /// it returns the uncommitted writes of the key, oldest first.
    pub fn begin(&mut self, key: &str, is_write: bool) -> (u64, Vec<Dirty>) {
        let mut dirty = Vec::new();
        if is_write {
            self.bump(key);
            dirty.extend(self.leaving.remove(key));
            dirty.extend(self.remove(key).and_then(|l| dirty_of(key, l)));
        }
        let p = self.pending.entry(key.to_string()).or_default();
        p.count += 1;
        p.writes += u32::from(is_write);
        if p.writes > u32::from(is_write) {
            // The directory may serve this request before or after the
            // write in flight: its answer is returned but never installed.
            return (VOID, dirty);
        }
        (p.epoch, dirty)
    }

    /// Ends a request begun with [`begin`](Self::begin) and installs its line
    /// unless an invalidation, downgrade or write of this key happened
    /// meanwhile. A write's end voids reads still in flight (they may have
    /// been answered before it). Returns whether the line was installed.
    pub fn finish(
        &mut self,
        key: &str,
        token: u64,
        line: Option<Line>,
        is_write: bool,
        now: Instant,
    ) -> bool {
        let fresh = match self.pending.get_mut(key) {
            Some(p) => {
                let fresh = p.epoch == token;
                p.count = p.count.saturating_sub(1);
                if is_write {
                    p.writes = p.writes.saturating_sub(1);
                }
                if p.count == 0 {
                    self.pending.remove(key);
                }
                fresh
            }
            None => false,
        };
        let out = match line {
            Some(line) if fresh && now < line.lease_until => self.install(key, line),
            _ => false,
        };
        if is_write {
            self.bump(key);
        }
        out
    }

    /// Voids the answers in flight for `key`.
    fn bump(&mut self, key: &str) {
        if let Some(p) = self.pending.get_mut(key) {
            self.next_epoch += 1;
            p.epoch = self.next_epoch;
        }
    }

    fn install(&mut self, key: &str, line: Line) -> bool {
        if let Some(d) = self.remove(key).and_then(|old| dirty_of(key, old)) {
            self.leaving.insert(d.key.clone(), d);
        }
        let need = size(key, &line);
        if need > self.cap_bytes {
            return false;
        }
        while !self.slots.is_empty()
            && (self.slots.len() + 1 > self.cap_entries || self.bytes + need > self.cap_bytes)
        {
            let Some((_, victim)) = self.order.pop_first() else {
                break;
            };
            if let Some(old) = self.remove(&victim) {
                self.evictions += 1;
                if let Some(d) = dirty_of(&victim, old) {
                    self.leaving.insert(victim, d);
                }
            }
        }
        self.tick += 1;
        self.bytes += need;
        self.by_state[idx(line.state)] += 1;
        self.order.insert(self.tick, key.to_string());
        self.slots.insert(
            key.to_string(),
            Slot {
                line,
                tick: self.tick,
            },
        );
        true
    }

    /// The directory invalidates this copy: the key becomes I. Returns
    /// whether a line was held, and its unflushed write if any.
    pub fn invalidate(&mut self, key: &str) -> (bool, Vec<Dirty>) {
        self.bump(key);
        // An evicted write of the key is older than the line's own.
        let mut dirty: Vec<Dirty> = self.leaving.remove(key).into_iter().collect();
        let held = match self.remove(key) {
            Some(l) => {
                dirty.extend(dirty_of(key, l));
                true
            }
            None => false,
        };
        (held, dirty)
    }

    /// Another node reads: an M or E line becomes S (its write, if any,
    /// handed back for flushing). Returns whether a line was held.
    pub fn downgrade(&mut self, key: &str) -> (bool, Vec<Dirty>) {
        self.bump(key);
        let mut dirty: Vec<Dirty> = self.leaving.remove(key).into_iter().collect();
        let Some(slot) = self.slots.get_mut(key) else {
            return (false, dirty);
        };
        let old = slot.line.state;
        slot.line.state = LineState::S;
        dirty.extend(slot.line.dirty.take().map(|seq| Dirty {
            key: key.to_string(),
            value: slot.line.value.clone(),
            seq,
        }));
        self.by_state[idx(old)] -= 1;
        self.by_state[idx(LineState::S)] += 1;
        (true, dirty)
    }

    /// The directory renewed grant `grant`: extend the lease (never shorten).
    pub fn renew(&mut self, key: &str, grant: u64, until: Instant) {
        if let Some(slot) = self.slots.get_mut(key) {
            if slot.line.grant == grant && until > slot.line.lease_until {
                slot.line.lease_until = until;
            }
        }
    }

    /// Drops every line (new leader term); returns unflushed writes.
    pub fn clear(&mut self) -> Vec<Dirty> {
        let keys: Vec<String> = self.slots.keys().cloned().collect();
        for p in self.pending.values_mut() {
            self.next_epoch += 1;
            p.epoch = self.next_epoch;
        }
        let mut out = self.take_leaving();
        out.extend(
            keys.into_iter()
                .filter_map(|k| self.remove(&k).and_then(|l| dirty_of(&k, l))),
        );
        out
    }

    pub fn info(&self, key: &str, now: Instant) -> Option<LineInfo> {
        let s = self.slots.get(key)?;
        (now < s.line.lease_until).then(|| line_info(key, &s.line, now))
    }

    /// Valid lines, most recently used first, at most `limit`.
    pub fn list(&self, now: Instant, limit: usize) -> (Vec<LineInfo>, bool) {
        let mut out = Vec::new();
        let mut more = false;
        for key in self.order.values().rev() {
            let Some(s) = self.slots.get(key) else {
                continue;
            };
            if now >= s.line.lease_until {
                continue;
            }
            if out.len() == limit {
                more = true;
                break;
            }
            out.push(line_info(key, &s.line, now));
        }
        (out, more)
    }

    /// Keys from least to most recently used (tests).
    #[cfg(test)]
    pub fn lru_order(&self) -> Vec<String> {
        self.order.values().cloned().collect()
    }
}

fn dirty_of(key: &str, l: Line) -> Option<Dirty> {
    l.dirty.map(|seq| Dirty {
        key: key.to_string(),
        value: l.value,
        seq,
    })
}

fn line_info(key: &str, l: &Line, now: Instant) -> LineInfo {
    LineInfo {
        key: key.to_string(),
        state: l.state,
        version: l.version,
        lease_remaining_ms: l.lease_until.saturating_duration_since(now).as_millis() as u64,
        dirty: l.dirty.is_some(),
    }
}

mod writeback;

#[cfg(test)]
mod tests;
