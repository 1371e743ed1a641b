//! Format 5 snapshots: the state before queue groups took part in
//! resharding (`StateData::handoff`), with shard jobs that had no topic
//! moves. Bincode has no field names, so the old layout is spelled out.

use std::collections::VecDeque;

use dsync_api::shards::{JobState, ReplicaMove, ShardJob, ShardMap};
use serde::Deserialize;

use super::snapshot::{FirstFields, SnapshotFile};
use super::SnapshotMeta;
use crate::state::dedup::Recent;
use crate::state::jobs::ShardJobs;
use crate::state::StateData;

#[derive(Deserialize)]
pub(super) struct SnapshotV5 {
    meta: SnapshotMeta,
    first: FirstFields,
    cluster_id: Option<String>,
    recent: Recent,
    shards: ShardMap,
    jobs: JobsV5,
}

#[derive(Deserialize)]
struct JobsV5 {
    next_id: u64,
    running: Option<JobV5>,
    finished: VecDeque<JobV5>,
}

#[derive(Deserialize)]
struct JobV5 {
    id: u64,
    kind: String,
    state: JobState,
    moves: Vec<ReplicaMove>,
    started_ms: u64,
    finished_ms: Option<u64>,
    error: Option<String>,
}

impl JobV5 {
    fn upgrade(self) -> ShardJob {
        ShardJob {
            id: self.id,
            kind: self.kind,
            state: self.state,
            moves: self.moves,
            topics: Vec::new(),
            target: None,
            listed: false,
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            error: self.error,
        }
    }
}

impl SnapshotV5 {
    pub(super) fn upgrade(self) -> SnapshotFile {
        let last_group = self.shards.groups.iter().map(|g| g.id).max().unwrap_or(0);
        let jobs = ShardJobs {
            last_group,
            next_id: self.jobs.next_id,
            running: self.jobs.running.map(JobV5::upgrade),
            finished: self.jobs.finished.into_iter().map(JobV5::upgrade).collect(),
        };
        let data = StateData {
            cluster_id: self.cluster_id,
            recent: self.recent,
            shards: self.shards,
            jobs,
            ..self.first.into_state()
        };
        SnapshotFile {
            meta: self.meta,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use dsync_api::shards::{plan_moves, MovePhase};
    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    struct OldJob<'a> {
        id: u64,
        kind: &'a str,
        state: JobState,
        moves: &'a [ReplicaMove],
        started_ms: u64,
        finished_ms: Option<u64>,
        error: Option<String>,
    }

    #[test]
    fn format_5_snapshots_keep_their_jobs() {
        let shards = ShardMap::initial(&[1, 2, 3], 3, 3).unwrap();
        let mut moves = plan_moves(&shards, &[1, 2, 3, 4], 3);
        moves.iter_mut().for_each(|m| m.phase = MovePhase::Done);
        let job = OldJob {
            id: 4,
            kind: "rebalance",
            state: JobState::Done,
            moves: &moves,
            started_ms: 10,
            finished_ms: Some(20),
            error: None,
        };
        let data = StateData {
            revision: 7,
            shards: shards.clone(),
            ..Default::default()
        };
        // Format 5: every field of the state up to `jobs`, jobs without
        // topic moves.
        let payload = bincode::serialize(&(
            SnapshotMeta::default(),
            data.revision,
            data.now_ms,
            &data.kv,
            &data.locks,
            &data.queues,
            &data.cluster_id,
            &data.recent,
            &data.shards,
            (4u64, None::<OldJob>, vec![job]),
        ))
        .unwrap();
        let mut bytes = b"DSYNCSNP".to_vec();
        bytes.extend_from_slice(&5u32.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        let back = SnapshotFile::decode(&bytes, "v5").unwrap();
        assert_eq!(back.data.revision, 7);
        assert_eq!(back.data.shards, shards);
        let done = back.data.jobs.finished.back().unwrap();
        assert_eq!((done.id, done.moves.len()), (4, moves.len()));
        assert!(done.topics.is_empty() && !done.listed);
        assert_eq!(back.data.jobs.last_group, 3, "the ids the map has used");
        assert_eq!(back.data.handoff, Default::default());
        // And this release's own format round-trips.
        let again = SnapshotFile::decode(&back.encode().unwrap(), "v6").unwrap();
        assert_eq!(again.data, back.data);
    }
}
