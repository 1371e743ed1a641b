//! The in-memory state machine behind openraft, with snapshots on disk.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder};

use super::snapshot::{self, SnapshotFile};
use super::wakeups::Wakeups;
use super::{io_err, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::error::Error;
use crate::events::EventBus;
use crate::metrics::groups::GroupSeries;
use crate::state::{Response, StateData};

/// State plus what Raft needs to know about how far it got.
#[derive(Debug, Default)]
pub struct Applied {
    pub data: StateData,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

/// Shared between the Raft core (which applies) and HTTP handlers (which read).
pub struct SmShared {
    state: RwLock<Applied>,
    /// The latest snapshot, encoded as it is on disk and on the wire.
    current: RwLock<Option<(SnapshotMeta, Arc<Vec<u8>>)>>,
    dir: PathBuf,
    metrics: GroupSeries,
    /// Last applied index, for handlers that wait on the state (lock waiters).
    applied_tx: tokio::sync::watch::Sender<u64>,
    /// Where the events of applied entries go (`/v1/events`).
    events: OnceLock<EventBus>,
    /// Handlers waiting for their lock request to be granted or dropped.
    pub lock_wakeups: Arc<Wakeups>,
}

impl SmShared {
    /// Opens the state from the snapshot in `dir`, if any.
    pub fn open(dir: PathBuf, metrics: GroupSeries) -> Result<Arc<SmShared>, Error> {
        let mut applied = Applied::default();
        let mut current = None;
        if let Some((file, bytes)) = snapshot::load(&dir)? {
            applied.data = file.data;
            applied.last_applied = file.meta.last_log_id;
            applied.membership = file.meta.last_membership.clone();
            current = Some((file.meta, Arc::new(bytes)));
        }
        Ok(Arc::new(SmShared {
            state: RwLock::new(applied),
            current: RwLock::new(current),
            dir,
            metrics,
            applied_tx: tokio::sync::watch::channel(0).0,
            events: OnceLock::new(),
            lock_wakeups: Arc::default(),
        }))
    }

    /// Sends the events of every entry applied from now on to `bus`.
    pub fn publish_to(&self, bus: EventBus) {
        let _ = self.events.set(bus);
    }

    /// Read access for handlers; never held across an await.
    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Applied> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes whenever entries are applied or a snapshot is installed.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    fn applied(&self, st: &Applied) {
        let index = st.last_applied.map_or(0, |l| l.index);
        self.metrics.applied_index.set(index as i64);
        let recent = &st.data.recent;
        self.metrics.dedup_answers.set(recent.kept() as i64);
        self.metrics.dedup_repeats.set(recent.repeats as i64);
        if let Some(locks) = &self.metrics.locks {
            let (held, waiting) = st.data.locks.counts();
            locks.held.set(held as i64);
            locks.waiting.set(waiting as i64);
            locks.expired.set(st.data.locks.stats.expired as i64);
            locks.deadlocks.set(st.data.locks.stats.deadlocks as i64);
        }
        self.applied_tx.send_replace(index);
    }

    fn store_snapshot(
        &self,
        meta: SnapshotMeta,
        bytes: Vec<u8>,
    ) -> Result<Arc<Vec<u8>>, StorageError> {
        snapshot::write_atomic(&self.dir, &bytes).map_err(|e| {
            io_err(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                e,
            )
        })?;
        let bytes = Arc::new(bytes);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some((meta, bytes.clone()));
        Ok(bytes)
    }
}

/// The openraft handle; clones share the state.
#[derive(Clone)]
pub struct StateMachine {
    pub shared: Arc<SmShared>,
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Copying, encoding and fsyncing the whole state takes long enough
        // (tens of ms per 10 MB) to stall a runtime thread, and with one
        // worker per node (`worker_threads`) that would stall heartbeats.
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || build(&shared))
            .await
            .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Read, e))?
    }
}

fn build(shared: &SmShared) -> Result<Snapshot<TypeConfig>, StorageError> {
    let (meta, bytes) = {
        let st = shared.read();
        let last = st.last_applied;
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: st.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                last.map_or(0, |l| l.leader_id.term),
                last.map_or(0, |l| l.index)
            ),
        };
        // Encoding under the read lock keeps it consistent; writers wait
        // only for the encode, not for the disk.
        let file = SnapshotFile {
            meta: meta.clone(),
            data: st.data.clone(),
        };
        let bytes = file
            .encode()
            .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Read, e))?;
        (meta, bytes)
    };
    let bytes = shared.store_snapshot(meta.clone(), bytes)?;
    shared.metrics.snapshots_built.inc();
    Ok(Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(bytes.as_ref().clone())),
    })
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let st = self.shared.read();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        let mut st = self.shared.write();
        for entry in entries {
            st.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => out.push(Response::default()),
                EntryPayload::Normal(req) => {
                    out.push(st.data.apply(std::sync::Arc::unwrap_or_clone(req)))
                }
                EntryPayload::Membership(m) => {
                    st.membership = StoredMembership::new(Some(entry.log_id), m);
                    out.push(Response::default());
                }
            }
        }
        self.shared.applied(&st);
        let events = std::mem::take(&mut st.data.outbox);
        let dequeued = st.data.locks.take_dequeued();
        drop(st);
        self.shared.lock_wakeups.wake(dequeued);
        if let Some(bus) = self.shared.events.get() {
            for e in events {
                bus.publish(e);
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let err = |e: Error| {
            io_err(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Read,
                e,
            )
        };
        let file =
            SnapshotFile::decode(&bytes, "snapshot received from the leader").map_err(err)?;
        // Persist first: if we crash after replacing memory but before the
        // file lands, restart would come back with an older state and a log
        // that no longer explains it.
        self.shared.store_snapshot(meta.clone(), bytes)?;
        let mut st = self.shared.write();
        st.data = file.data;
        st.last_applied = meta.last_log_id;
        st.membership = meta.last_membership.clone();
        self.shared.metrics.snapshots_installed.inc();
        self.shared.applied(&st);
        drop(st);
        self.shared.lock_wakeups.wake_all();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let cur = self
            .shared
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner());
        Ok(cur.as_ref().map(|(meta, bytes)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(bytes.as_ref().clone())),
        }))
    }
}
