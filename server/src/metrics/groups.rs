//! The `group`-labelled metrics of the queue groups, and the series one
//! Raft group writes as it logs, applies, proposes and snapshots. The control group keeps the unlabelled `dsync_raft_*`,
//! `dsync_log_fsync_seconds`, … series it always had; each queue group has
//! its own `dsync_group_*{group}` ones. Before, every group wrote the
//! control group's series, so a queue group's apply overwrote its applied
//! index and lock gauges, and its commits raised the control group's commit
//! index past anything the control group would apply (`/ready` then saw
//! an apply that never caught up).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::{latency_histogram, HistogramFamily, Metrics};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

/// The Raft gauges of every queue group this node hosts, labelled `group`,
/// and the replica moves this node drove.
#[derive(Default)]
pub struct GroupGauges {
    pub term: Family<GroupLabels, Gauge>,
    pub is_leader: Family<GroupLabels, Gauge>,
    pub last_log_index: Family<GroupLabels, Gauge>,
    pub applied_index: Family<GroupLabels, Gauge>,
    pub moves: Family<ResultLabels, Counter>,
    /// Entries the learner of the move in progress trails its leader by.
    pub move_lag: Gauge,
    /// Moves (replicas or topics) of the running shard job not done yet,
    /// on the control leader driving it.
    pub moves_left: Gauge,
    /// What each queue group's log, apply and proposer write.
    pub series: QueueGroupFamilies,
}

impl GroupGauges {
    pub fn count_move(&self, result: &str) {
        let labels = ResultLabels {
            result: result.into(),
        };
        self.moves.get_or_create(&labels).inc();
    }

    /// Stops exporting a group this node no longer hosts.
    pub fn forget(&self, group: u64) {
        let label = GroupLabels {
            group: group.to_string(),
        };
        self.term.remove(&label);
        self.is_leader.remove(&label);
        self.last_log_index.remove(&label);
        self.applied_index.remove(&label);
        self.series.forget(&label);
    }

    pub fn register(&self, registry: &mut Registry) {
        let r = registry;
        self.series.register(r);
        r.register(
            "shard_moves",
            "Replica and topic moves this node drove as control leader, by result (done, rolled_back, topic_moved)",
            self.moves.clone(),
        );
        r.register(
            "shard_job_moves_left",
            "Moves (replicas or topics) of the running shard job left to do, on the node driving it",
            self.moves_left.clone(),
        );
        r.register(
            "shard_move_lag",
            "Log entries the learner of the replica move in progress trails its group's leader by",
            self.move_lag.clone(),
        );
        r.register(
            "group_raft_term",
            "Current Raft term of each queue group hosted here",
            self.term.clone(),
        );
        r.register(
            "group_raft_is_leader",
            "1 if this node leads the queue group",
            self.is_leader.clone(),
        );
        r.register(
            "group_raft_last_log_index",
            "Last log index of each queue group hosted here",
            self.last_log_index.clone(),
        );
        r.register(
            "group_raft_applied_index",
            "Applied index of each queue group hosted here",
            self.applied_index.clone(),
        );
    }
}

#[derive(Clone)]
pub struct GroupSeries {
    pub commit_index: Gauge,
    pub applied_index: Gauge,
    pub apply_lag: Gauge,
    pub fsync_seconds: Histogram,
    pub batch_size: Histogram,
    pub snapshots_built: Counter,
    pub snapshots_installed: Counter,
    pub dedup_answers: Gauge,
    pub dedup_repeats: Gauge,
    /// Only the control group holds locks.
    pub locks: Option<LockSeries>,
}

#[derive(Clone)]
pub struct LockSeries {
    pub held: Gauge,
    pub waiting: Gauge,
    pub expired: Gauge,
    pub deadlocks: Gauge,
}

pub(super) fn batch_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1.0, 2.0, 14,
    ))
}

/// The labelled families behind the queue groups' series.
pub struct QueueGroupFamilies {
    commit_index: Family<GroupLabels, Gauge>,
    apply_lag: Family<GroupLabels, Gauge>,
    fsync_seconds: HistogramFamily<GroupLabels>,
    batch_size: HistogramFamily<GroupLabels>,
    snapshots_built: Family<GroupLabels, Counter>,
    snapshots_installed: Family<GroupLabels, Counter>,
    dedup_answers: Family<GroupLabels, Gauge>,
    dedup_repeats: Family<GroupLabels, Gauge>,
}

impl Default for QueueGroupFamilies {
    fn default() -> Self {
        QueueGroupFamilies {
            commit_index: Family::default(),
            apply_lag: Family::default(),
            fsync_seconds: Family::new_with_constructor(latency_histogram),
            batch_size: Family::new_with_constructor(batch_histogram),
            snapshots_built: Family::default(),
            snapshots_installed: Family::default(),
            dedup_answers: Family::default(),
            dedup_repeats: Family::default(),
        }
    }
}

impl QueueGroupFamilies {
    pub fn forget(&self, label: &GroupLabels) {
        self.commit_index.remove(label);
        self.apply_lag.remove(label);
        self.fsync_seconds.remove(label);
        self.batch_size.remove(label);
        self.snapshots_built.remove(label);
        self.snapshots_installed.remove(label);
        self.dedup_answers.remove(label);
        self.dedup_repeats.remove(label);
    }

    pub fn register(&self, r: &mut Registry) {
        r.register(
            "group_raft_commit_index",
            "Highest log index known committed, per queue group hosted here",
            self.commit_index.clone(),
        );
        r.register(
            "group_raft_apply_lag",
            "Committed entries not yet applied, per queue group hosted here",
            self.apply_lag.clone(),
        );
        r.register(
            "group_log_fsync_seconds",
            "Duration of one durable log write group, per queue group hosted here",
            self.fsync_seconds.clone(),
        );
        r.register(
            "group_proposal_batch_commands",
            "Commands per proposed Raft entry, per queue group led here",
            self.batch_size.clone(),
        );
        r.register(
            "group_snapshots_built",
            "Snapshots built, per queue group hosted here",
            self.snapshots_built.clone(),
        );
        r.register(
            "group_snapshots_installed",
            "Snapshots received from a leader and installed, per queue group",
            self.snapshots_installed.clone(),
        );
        r.register(
            "group_dedup_answers",
            "Answers of deduplicated writes kept for resends, per queue group",
            self.dedup_answers.clone(),
        );
        r.register(
            "group_dedup_repeats",
            "Resent writes answered instead of applied again, per queue group",
            self.dedup_repeats.clone(),
        );
    }
}

impl GroupSeries {
    /// The series group `id` writes on this node.
    pub fn of(m: &Metrics, id: u64) -> GroupSeries {
        if id == dsync_api::shards::CONTROL_GROUP {
            return GroupSeries {
                commit_index: m.commit_index.clone(),
                applied_index: m.applied_index.clone(),
                apply_lag: m.apply_lag.clone(),
                fsync_seconds: m.fsync_seconds.clone(),
                batch_size: m.batch_size.clone(),
                snapshots_built: m.snapshots_built.clone(),
                snapshots_installed: m.snapshots_installed.clone(),
                dedup_answers: m.dedup_answers.clone(),
                dedup_repeats: m.dedup_repeats.clone(),
                locks: Some(LockSeries {
                    held: m.locks_held.clone(),
                    waiting: m.locks_waiting.clone(),
                    expired: m.locks_expired.clone(),
                    deadlocks: m.locks_deadlocks.clone(),
                }),
            };
        }
        let l = GroupLabels {
            group: id.to_string(),
        };
        let f = &m.groups.series;
        GroupSeries {
            commit_index: f.commit_index.get_or_create(&l).clone(),
            applied_index: m.groups.applied_index.get_or_create(&l).clone(),
            apply_lag: f.apply_lag.get_or_create(&l).clone(),
            fsync_seconds: f.fsync_seconds.get_or_create(&l).clone(),
            batch_size: f.batch_size.get_or_create(&l).clone(),
            snapshots_built: f.snapshots_built.get_or_create(&l).clone(),
            snapshots_installed: f.snapshots_installed.get_or_create(&l).clone(),
            dedup_answers: f.dedup_answers.get_or_create(&l).clone(),
            dedup_repeats: f.dedup_repeats.get_or_create(&l).clone(),
            locks: None,
        }
    }

    /// Series nothing exports, for offline work on a data folder (salvage)
    /// and tests.
    pub fn standalone() -> GroupSeries {
        GroupSeries::of(&Metrics::new(), dsync_api::shards::CONTROL_GROUP)
    }

    /// Raises the commit index to `commit` (it never goes back) and
    /// recomputes the apply lag against `applied`. Called when openraft
    /// saves a commit index and when the apply moves, so a stuck apply
    /// shows a growing lag, and an installed snapshot (which moves the
    /// apply past a commit index the log store was never told of) none.
    pub fn raise_commit(&self, commit: u64, applied: u64) {
        let before = self
            .commit_index
            .inner()
            .fetch_max(commit as i64, std::sync::atomic::Ordering::Relaxed);
        let commit = before.max(commit as i64);
        self.apply_lag.set((commit - applied as i64).max(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_group_writes_its_own_series_and_never_the_control_groups() {
        let m = Metrics::new();
        let control = GroupSeries::of(&m, 0);
        let queue = GroupSeries::of(&m, 3);
        control.raise_commit(10, 10);
        queue.raise_commit(50_000, 49_000);
        queue.applied_index.set(49_000);
        assert_eq!(m.commit_index.get(), 10);
        assert_eq!(m.apply_lag.get(), 0);
        assert_eq!(m.applied_index.get(), 0);
        let text = m.render();
        assert!(
            text.contains("dsync_group_raft_commit_index{group=\"3\"} 50000"),
            "{text}"
        );
        assert!(text.contains("dsync_group_raft_apply_lag{group=\"3\"} 1000"));
        assert!(text.contains("dsync_raft_commit_index 10"));
        // The same series again, not a second one.
        GroupSeries::of(&m, 3).raise_commit(50_001, 50_001);
        assert_eq!(queue.commit_index.get(), 50_001);
        assert!(queue.locks.is_none() && control.locks.is_some());
    }

    #[test]
    fn a_group_moved_away_stops_being_exported() {
        let m = Metrics::new();
        GroupSeries::of(&m, 2).fsync_seconds.observe(0.001);
        assert!(m
            .render()
            .contains("dsync_group_log_fsync_seconds_count{group=\"2\"} 1"));
        m.groups.forget(2);
        assert!(!m.render().contains("group=\"2\""), "{}", m.render());
    }
}
