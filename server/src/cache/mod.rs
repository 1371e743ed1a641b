//! The coherent cache: per-node leased lines (`line.rs`), the leader's
//! directory (`directory.rs`), and the MESI protocol between them
//! (`directory_side.rs` on the leader, `holder.rs` on every node).
//!
//! The authoritative value is the replicated KV. Coherence messages travel
//! between peers on `/raft/cache/*` (bincode), never on `/v1`.

mod directory;
mod directory_side;
mod holder;
mod host;
mod line;
#[cfg(test)]
mod model_tests;
mod states;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dsync_api::cache::{LineInfo, LineState};
use serde::{Deserialize, Serialize};

use crate::config::{CacheConfig, WritePolicy};

pub use directory::{Directory, KeyGuard, KeyLocks};
pub use directory_side::{handle_directory, invalidate_for_kv};
pub use holder::{
    flush_all, get, handle_holder, observe_leader_term, update_line_gauges, write, CacheRead,
    PutOutcome,
};
pub use host::Host;
pub use line::{Dirty, Line, LineStore, Lookup};
pub use states::{lines, states};

/// A holder's request to the directory (`/raft/cache/directory`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DirRequest {
    Read {
        key: String,
        from: u64,
    },
    /// `value: None` deletes.
    Write {
        key: String,
        from: u64,
        value: Option<String>,
    },
    Renew {
        key: String,
        from: u64,
        grant: u64,
    },
}

/// A line the directory granted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Granted {
    pub term: u64,
    pub grant: u64,
    pub state: LineState,
    pub value: String,
    pub version: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DirReply {
    /// `None`: the key does not exist (no line is granted).
    Read(Option<Granted>),
    Written {
        version: Option<u64>,
        deleted: bool,
        granted: Option<Granted>,
    },
    Renewed(bool),
}

/// The directory's request to a holder (`/raft/cache/holder`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HolderRequest {
    Invalidate {
        key: String,
    },
    Downgrade {
        key: String,
    },
    /// For `GET /v1/cache/{key}/states`; not a coherence message.
    State {
        key: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HolderReply {
    /// Whether this node held a line (after a flush of its write, if dirty).
    Held(bool),
    State(Option<LineInfo>),
}

struct DirState {
    dir: Directory,
    term: u64,
    /// No write completes before this: lines granted by an earlier leader
    /// have all expired by then.
    ready_at: Instant,
}

pub struct Cache {
    pub config: CacheConfig,
    pub lease: Duration,
    lines: Mutex<LineStore>,
    dir: Mutex<DirState>,
    keys: KeyLocks,
    /// Serializes write-back flushes, so two flushes of one key never
    /// commit out of order.
    flush: tokio::sync::Mutex<()>,
    renewing: Mutex<HashSet<String>>,
    /// The highest leader term whose first message dropped every line here.
    cleared_term: AtomicU64,
}

impl Cache {
    pub fn new(config: &CacheConfig) -> Cache {
        let lease = Duration::from_millis(config.lease_ms);
        Cache {
            config: config.clone(),
            lease,
            lines: Mutex::new(LineStore::new(
                config.capacity_entries,
                config.capacity_bytes,
                lease,
            )),
            dir: Mutex::new(DirState {
                dir: Directory::default(),
                term: 0,
                ready_at: Instant::now(),
            }),
            keys: KeyLocks::default(),
            flush: tokio::sync::Mutex::new(()),
            renewing: Mutex::new(HashSet::new()),
            cleared_term: AtomicU64::new(0),
        }
    }

    pub fn write_back(&self) -> bool {
        self.config.write_policy == WritePolicy::WriteBack
    }

    pub fn lines(&self) -> MutexGuard<'_, LineStore> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dir(&self) -> MutexGuard<'_, DirState> {
        self.dir.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A leader of `term` reached this node: lines granted in earlier terms
    /// are dropped before the message is answered, so once a member has
    /// accepted a new leader's entries it serves no older line (the new
    /// directory counts on it, see `dir_ready`). Returns unflushed writes,
    /// `None` if `term` was seen before.
    pub fn observe_term(&self, term: u64) -> Option<Vec<Dirty>> {
        if self.cleared_term.fetch_max(term, Ordering::SeqCst) >= term {
            return None;
        }
        Some(self.lines().clear())
    }

    /// The directory of `term`: a new term starts empty, and completes no
    /// operation until one lease has passed. Returns when it is ready.
    fn enter_term(&self, term: u64) -> Instant {
        let mut st = self.dir();
        if st.term != term {
            st.dir.clear();
            st.term = term;
            st.ready_at = Instant::now() + self.lease;
            tracing::info!(term, "cache directory reset for a new term");
        }
        st.ready_at
    }
}

/// Background work of every node: drop all lines when the leader term
/// changes, and flush write-back lines every `writeback_delay_ms`.
pub async fn run<H: Host>(node: Arc<H>) {
    let cache = node.cache();
    let mut rx = node.control().raft.metrics();
    let mut term = rx.borrow().current_term;
    let mut tick = tokio::time::interval(Duration::from_millis(cache.config.writeback_delay_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let write_back = cache.write_back();
    loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                let (t, leader) = {
                    let m = rx.borrow_and_update();
                    (m.current_term, m.current_leader)
                };
                if leader == Some(node.id()) {
                    // Start the new directory's one-lease wait as early as possible.
                    cache.enter_term(t);
                    observe_leader_term(&node, t);
                }
                if t != term {
                    term = t;
                    let dirty = cache.lines().clear();
                    update_line_gauges(&*node);
                    if !dirty.is_empty() {
                        let n = node.clone();
                        node.tasks()
                            .spawn_to_end("write-back flush", async move { flush_all(&*n, dirty).await });
                    }
                }
            }
            _ = tick.tick(), if write_back => {
                let _g = cache.flush.lock().await;
                let dirty = {
                    let mut lines = cache.lines();
                    let mut d = lines.take_leaving();
                    d.extend(lines.dirty());
                    d
                };
                for d in dirty {
                    holder::flush_locked(&*node, d).await;
                }
            }
        }
    }
}
