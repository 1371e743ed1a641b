//! Cluster folders written by an older release (tests/fixtures/), unpacked
//! into a temp dir to start under the binary under test.
//!
//! Such a folder pins two things the harness otherwise picks fresh:
//!
//! - **Ports.** Every node's address is in its node.yaml and, above all, in
//!   the Raft membership inside the data, which no start flag can rewrite.
//!   So the fixture's nodes keep the loopback ports they were created on.
//!   Runs of one fixture on a machine take turns through a lock file, and a
//!   port that something else holds fails the test at once, naming it.
//! - **Time.** Lock leases, visibility timeouts, retention and the dedup
//!   window are deadlines on the leader's wall clock, written into the
//!   state. Started days later, the fixture's leases would have lapsed and
//!   its messages been dropped. The nodes therefore run under libfaketime,
//!   their wall clock set back so that it resumes a few seconds after the
//!   fixture's nodes were stopped (monotonic time is left alone, so Raft
//!   timers are untouched). Like an upgrade right after a clean stop.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use dsync_api::locks::LockList;
use dsync_api::queue::TopicList;
use dsync_api::types::KvListResponse;
use serde::Deserialize;

use crate::{dsync_bin, Cluster};

/// `fixture.json` of an archive made by tests/fixtures/make-*.sh.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// The commit whose binary wrote the data.
    pub commit: String,
    /// The cluster folder the archive was made from (cluster.yaml and each
    /// node.yaml name it).
    pub dir: PathBuf,
    /// Wall clock (ms) right after `cluster down`.
    pub stopped_at_ms: u64,
    /// Raft indexes: the first entry only in the log, the last entry, and
    /// the lowest and highest snapshot index over the nodes.
    pub first_log_only_index: u64,
    pub last_index: u64,
    pub snapshot_index_min: u64,
    pub snapshot_index_max: u64,
    /// Receipts of the five `orders` deliveries (the first two were acked).
    pub orders_receipts: Vec<String>,
    /// Id of the `audit` message pushed with dedup id `evt-1`.
    pub audit_id: u64,
    /// What the old leader answered last.
    pub api: Answers,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Answers {
    pub kv: KvListResponse,
    pub locks: LockList,
    pub queues: TopicList,
}

/// An unpacked fixture; stop it (drop) before another run takes its ports.
pub struct OldCluster {
    // Fields drop in order: the nodes stop before the ports are let go.
    pub cluster: Cluster,
    pub manifest: Manifest,
    _turn: File,
}

/// How far after the fixture's stop the nodes' wall clock resumes.
const RESUME_AFTER_MS: u64 = 5_000;

impl OldCluster {
    /// Unpacks `tests/fixtures/<archive>`, points its files at the new
    /// folder and at the binary under test; nothing is started. `env` goes
    /// to the CLI and the nodes, with the clock settings added.
    pub fn unpack(archive: &str, env: &[(&str, &str)]) -> OldCluster {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(archive);
        let turn = take_turn(archive);
        let dir = tempfile::Builder::new()
            .prefix("dsync-e2e-fixture-")
            .tempdir()
            .expect("tempdir");
        let out = Command::new("tar")
            .arg("-xzf")
            .arg(&path)
            .arg("-C")
            .arg(dir.path())
            .output()
            .expect("run tar");
        assert!(
            out.status.success(),
            "cannot unpack {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let manifest: Manifest = serde_json::from_slice(
            &std::fs::read(dir.path().join("fixture.json")).expect("fixture.json"),
        )
        .expect("fixture.json of the expected shape");
        let here = dir.path().join("cluster");
        relocate(&here, &manifest.dir);

        let clock = clock_env(manifest.stopped_at_ms + RESUME_AFTER_MS);
        let mut all: Vec<(&str, &str)> = clock.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(env);
        let cluster = Cluster::adopt(dir, &all);
        ports_free(&cluster, &path);
        OldCluster {
            cluster,
            manifest,
            _turn: turn,
        }
    }
}

/// Rewrites the old folder's path to `here` in cluster.yaml and every
/// node.yaml, and the binary to the one under test.
fn relocate(here: &Path, old: &Path) {
    let (old, new) = (old.to_str().expect("utf-8"), here.to_str().expect("utf-8"));
    let file = here.join("cluster.yaml");
    let text = std::fs::read_to_string(&file).expect("cluster.yaml");
    let mut yaml: serde_yaml::Value =
        serde_yaml::from_str(&text.replace(old, new)).expect("cluster.yaml is YAML");
    yaml["binary"] = serde_yaml::Value::String(dsync_bin().display().to_string());
    std::fs::write(&file, serde_yaml::to_string(&yaml).unwrap()).expect("write cluster.yaml");
    let nodes = yaml["nodes"].as_sequence().expect("nodes").clone();
    for n in nodes {
        let config = PathBuf::from(n["config"].as_str().expect("config path"));
        let text = std::fs::read_to_string(&config).expect("node.yaml");
        std::fs::write(&config, text.replace(old, new)).expect("write node.yaml");
    }
}

/// Waits (up to 10 minutes) for other runs of this fixture on the machine
/// to end: they would need the same ports.
fn take_turn(archive: &str) -> File {
    let path = std::env::temp_dir().join(format!("dsync-fixture-{archive}.lock"));
    let file = File::create(&path).expect("fixture lock file");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        match file.try_lock() {
            Ok(()) => return file,
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => panic!("lock {}: {e}", path.display()),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "another run of the {archive} fixture held {} for 10 minutes",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn ports_free(cluster: &Cluster, archive: &Path) {
    for n in cluster.nodes() {
        if let Err(e) = TcpListener::bind(&n.addr) {
            panic!(
                "node {}'s address {} is taken ({e}): the nodes of {} must keep the ports recorded \
                 in their Raft membership; stop whatever listens there and run again",
                n.id,
                n.addr,
                archive.display()
            );
        }
    }
}

/// libfaketime settings that make the wall clock read `resume_at_ms` now
/// (and run on from there).
fn clock_env(resume_at_ms: u64) -> Vec<(&'static str, String)> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    let offset_s = (resume_at_ms as i64 - now) as f64 / 1000.0;
    vec![
        ("LD_PRELOAD", libfaketime().display().to_string()),
        ("FAKETIME", format!("{offset_s:+.3}")),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
    ]
}

/// The thread-safe libfaketime (the nodes are multi-threaded), where
/// Debian and others put it (`/usr/lib/<triplet>/faketime/` on Debian).
fn libfaketime() -> PathBuf {
    let triplets = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime"));
    let fixed = [
        "/usr/lib64/faketime",
        "/usr/lib/faketime",
        "/usr/local/lib/faketime",
    ];
    triplets
        .chain(fixed.iter().map(PathBuf::from))
        .map(|d| d.join("libfaketimeMT.so.1"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "libfaketime is missing (no libfaketimeMT.so.1 in /usr/lib/*/faketime or {fixed:?}): \
                 the fixture's leases and messages are wall-clock deadlines; install it with \
                 `apt-get install faketime` (scripts/ensure-tools.sh does)"
            )
        })
}

/// The format number of a snapshot file (bytes 8..12 after the magic).
pub fn snapshot_format(path: &Path) -> Option<u32> {
    let bytes = std::fs::read(path).ok()?;
    Some(u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?))
}
