//! Offline recovery: a backup from a stopped node's data folder.

use std::path::Path;

use openraft::StoredMembership;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::raft::snapshot::SnapshotFile;
use crate::raft::SnapshotMeta;

/// What an offline salvage found in a stopped node's data folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Salvaged {
    /// Index of the snapshot the state started from (0 = none).
    pub snapshot_index: u64,
    /// Last index this node recorded as committed. It is persisted lazily,
    /// so it may trail the real commit point a little.
    pub committed_index: u64,
    /// Last index in the log: everything up to here is in the state.
    pub last_index: u64,
}

/// Rebuilds the replicated state from a stopped node's data folder: its
/// snapshot plus every entry of its log after it — for disaster recovery
/// when no quorum is left to serve a backup. Entries past the commit point
/// (`last_index > committed_index`) may never have been acknowledged to a
/// client; no acknowledged write this node holds is left out.
pub async fn salvage(data_dir: &Path) -> Result<(SnapshotFile, Salvaged), Error> {
    use openraft::storage::RaftLogStorage;
    use openraft::{EntryPayload, RaftLogReader};

    let (mut snap, snapshot_index) = match crate::raft::snapshot::load(data_dir)? {
        Some((file, _)) => {
            let index = file.meta.last_log_id.map_or(0, |l| l.index);
            (file, index)
        }
        None => (
            SnapshotFile {
                meta: SnapshotMeta::default(),
                data: crate::state::StateData::default(),
            },
            0,
        ),
    };
    let log_path = crate::raft::log_store::log_dir(data_dir);
    let old_log = log_path.with_extension("redb");
    let has_old_log = old_log.exists() && !crate::raft::migrate::is_tombstone(&old_log);
    if !log_path.exists() && !has_old_log {
        return Err(Error::Storage(format!(
            "{} has no Raft log: is it a dsync data folder?",
            data_dir.display()
        )));
    }
    let series = crate::metrics::groups::GroupSeries::standalone();
    let mut log = crate::raft::log_store::LogStore::open(&log_path, series).map_err(|e| {
        Error::Storage(format!("{e} (a running node holds its log: stop it first)"))
    })?;
    let storage = |e: crate::raft::StorageError| Error::Storage(e.to_string());
    let committed = log.read_committed().await.map_err(storage)?;
    let start = snap.meta.last_log_id.map_or(0, |l| l.index + 1);
    let entries = log.try_get_log_entries(start..).await.map_err(storage)?;
    let mut membership = snap.meta.last_membership.clone();
    let mut last = snap.meta.last_log_id;
    for entry in entries {
        match entry.payload {
            EntryPayload::Blank => {}
            EntryPayload::Normal(req) => {
                snap.data.apply(std::sync::Arc::unwrap_or_clone(req));
            }
            EntryPayload::Membership(m) => {
                membership = StoredMembership::new(Some(entry.log_id), m);
            }
        }
        last = Some(entry.log_id);
    }
    let last_index = last.map_or(0, |l| l.index);
    snap.meta = SnapshotMeta {
        last_log_id: last,
        last_membership: membership,
        snapshot_id: format!("salvaged-{last_index}"),
    };
    let found = Salvaged {
        snapshot_index,
        committed_index: committed.map_or(0, |l| l.index),
        last_index,
    };
    Ok((snap, found))
}
