//! One fault run: lock, queue and KV workloads against a 3-node cluster
//! while the nemesis injects faults, then heal, drain, and check every
//! invariant. With partitions among the faults, the nodes run in network
//! namespaces.
//! The CI profile (tests/tests/e2e/faults.rs) and the long profile
//! (scripts/chaos.sh) both run this.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::checkers::{check_locks, check_queue};
use crate::history::{History, Outcome};
use crate::kv_workload::{check_kv, kv_worker};
use crate::nemesis::{Fault, Nemesis, Schedule};
use crate::workloads::{consumer, fenced_value, lock_worker, producer};
use crate::Cluster;

pub struct Report {
    pub faults: Vec<(Fault, usize)>,
    pub lock_ops: (usize, usize, usize),
    pub queue_ops: (usize, usize, usize),
    pub kv_ops: (usize, usize, usize),
    /// KV keys whose histories were checked for linearizability.
    pub kv_keys: usize,
    /// KV keys the checker could not decide within its search budget.
    pub kv_undecided: Vec<String>,
    pub grants: usize,
    pub acknowledged_enqueues: usize,
    pub delivered: usize,
    pub duplicates: usize,
    pub violations: Vec<String>,
    pub longest_unavailable: Duration,
    pub elections: u64,
    pub final_fenced: Option<serde_json::Value>,
    /// Where the fault timeline and the node logs of a run with violations
    /// were kept.
    pub evidence: Option<std::path::PathBuf>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (lo, lf, lu) = self.lock_ops;
        let (qo, qf, qu) = self.queue_ops;
        writeln!(f, "faults injected:        {:?}", self.faults)?;
        writeln!(
            f,
            "lock ops ok/fail/unknown: {lo}/{lf}/{lu} ({} grants)",
            self.grants
        )?;
        writeln!(f, "queue ops ok/fail/unknown: {qo}/{qf}/{qu}")?;
        let (ko, kf, ku) = self.kv_ops;
        writeln!(
            f,
            "kv ops ok/fail/unknown: {ko}/{kf}/{ku} ({} keys checked for linearizability)",
            self.kv_keys
        )?;
        if !self.kv_undecided.is_empty() {
            writeln!(
                f,
                "kv keys UNDECIDED (checker budget exhausted; not checked): {:?}",
                self.kv_undecided
            )?;
        }
        writeln!(
            f,
            "messages: {} acknowledged enqueues, {} delivered, {} duplicates",
            self.acknowledged_enqueues, self.delivered, self.duplicates
        )?;
        writeln!(f, "longest unavailability: {:?}", self.longest_unavailable)?;
        writeln!(f, "elections:              {}", self.elections)?;
        writeln!(f, "last fenced write:      {:?}", self.final_fenced)?;
        writeln!(f, "invariant violations:   {}", self.violations.len())?;
        for v in &self.violations {
            writeln!(f, "  - {v}")?;
        }
        if let Some(dir) = &self.evidence {
            writeln!(f, "fault timeline and node logs kept in {}", dir.display())?;
        }
        Ok(())
    }
}

/// Runs the workloads for `duration` under faults of `kinds`.
pub async fn run(kinds: Vec<Fault>, duration: Duration, schedule: Schedule) -> Report {
    let cluster = Arc::new(if kinds.contains(&Fault::Partition) {
        Cluster::up_in_netns(3)
    } else {
        Cluster::up(3, &[])
    });
    cluster.wait_leader(3).await;
    let term_before = max_term(&cluster).await;

    let stop = Arc::new(AtomicBool::new(false));
    let locks = Arc::new(History::new());
    let queue = Arc::new(History::new());
    let kv = Arc::new(History::new());
    let mut tasks = Vec::new();
    for p in 0..3 {
        tasks.push(tokio::spawn(kv_worker(
            cluster.clone(),
            20 + p,
            kv.clone(),
            stop.clone(),
        )));
    }
    for p in 0..4 {
        tasks.push(tokio::spawn(lock_worker(
            cluster.clone(),
            p,
            locks.clone(),
            stop.clone(),
        )));
    }
    for p in 0..2 {
        tasks.push(tokio::spawn(producer(
            cluster.clone(),
            p,
            queue.clone(),
            stop.clone(),
        )));
        tasks.push(tokio::spawn(consumer(
            cluster.clone(),
            10 + p,
            queue.clone(),
            stop.clone(),
            false,
        )));
    }
    // The histories began within microseconds of each other; the nemesis
    // clock starts here, this far into them.
    let nemesis_offset_us = locks.now_us();
    let nemesis = Nemesis::new();
    let faults = tokio::spawn(nemesis.clone().run(cluster.clone(), kinds, schedule));

    tokio::time::sleep(duration).await;
    nemesis.stop();
    faults.await.expect("nemesis");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.expect("workload task");
    }
    // Every fault is healed: collect whatever is still queued.
    cluster.wait_leader(3).await;
    consumer(cluster.clone(), 99, queue.clone(), stop.clone(), true).await;

    let lock_ops = locks.ops();
    let queue_ops = queue.ops();
    let mut violations = check_locks(&lock_ops);
    let q = check_queue(&queue_ops);
    violations.extend(q.violations.iter().cloned());
    let (kv_keys, kv_violations, kv_undecided) = check_kv(&kv.ops());
    violations.extend(kv_violations);
    let grants = lock_ops
        .iter()
        .filter(|o| {
            o.outcome == Outcome::Ok
                && matches!(
                    o.op,
                    crate::checkers::LockOp::Acquire { token: Some(_), .. }
                )
        })
        .count();
    let mut ok_times: Vec<u64> = lock_ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .map(|o| o.complete_us)
        .chain(
            queue_ops
                .iter()
                .filter(|o| o.outcome == Outcome::Ok)
                .map(|o| o.complete_us),
        )
        .collect();
    ok_times.sort_unstable();
    let longest = ok_times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    let evidence = (!violations.is_empty())
        .then(|| keep_evidence(&cluster, &nemesis, nemesis_offset_us))
        .flatten();
    Report {
        evidence,
        faults: nemesis.summary(),
        lock_ops: locks.outcomes(),
        queue_ops: queue.outcomes(),
        kv_ops: kv.outcomes(),
        kv_keys,
        kv_undecided,
        grants,
        acknowledged_enqueues: q.acknowledged_enqueues,
        delivered: q.delivered,
        duplicates: q.duplicates,
        violations,
        longest_unavailable: Duration::from_micros(longest),
        elections: max_term(&cluster).await.saturating_sub(term_before),
        final_fenced: fenced_value(&cluster).await,
    }
}

/// Copies each node's log and writes the fault timeline (in the histories'
/// microseconds, the unit of the violation reports) to a fresh temp folder
/// that outlives the cluster; `None` if nothing could be written.
fn keep_evidence(
    cluster: &Cluster,
    nemesis: &Nemesis,
    offset_us: u64,
) -> Option<std::path::PathBuf> {
    let dir = tempfile::Builder::new()
        .prefix("dsync-chaos-evidence-")
        .tempdir()
        .ok()?
        .keep();
    let mut timeline = String::from("# fault nodes injected_us healed_us\n");
    let injected = nemesis.injected.lock().unwrap_or_else(|p| p.into_inner());
    for i in injected.iter() {
        timeline.push_str(&format!(
            "{:?} {:?} {} {}\n",
            i.fault,
            i.nodes,
            offset_us + i.at_ms * 1000,
            offset_us + i.healed_ms * 1000
        ));
    }
    std::fs::write(dir.join("faults.txt"), timeline).ok()?;
    for entry in std::fs::read_dir(cluster.cluster_dir()).ok()?.flatten() {
        let log = entry.path().join("server.log");
        if log.is_file() {
            let name = format!("{}.log", entry.file_name().to_string_lossy());
            let _ = std::fs::copy(&log, dir.join(name));
        }
    }
    Some(dir)
}

async fn max_term(cluster: &Cluster) -> u64 {
    cluster
        .statuses()
        .await
        .iter()
        .map(|s| s.term)
        .max()
        .unwrap_or(0)
}
