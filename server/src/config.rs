//! Node configuration: a YAML file (serde_yaml), overridden by flags and
//! `DSYNC_*` environment variables in the CLI.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::auth::{AuthConfig, LimitsConfig};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Node id, unique in the cluster, > 0.
    pub id: u64,
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Address peers and clients use to reach this node (default: `listen`).
    pub advertise: Option<String>,
    /// Directory of the Raft log, snapshots and metadata.
    pub data_dir: PathBuf,
    /// Initialize a new single-node cluster if this node's log is empty.
    pub bootstrap: bool,
    /// Addresses of existing members to join through (as a learner, then voter).
    pub join: Vec<String>,
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// How long this node stops calling a peer after 3 calls to it failed
    /// in a row, before one probe call (default: `election_timeout_max_ms`,
    /// so a restarted peer is heard from again within about an election
    /// timeout).
    pub peer_breaker_cooldown_ms: Option<u64>,
    /// Build a snapshot (and compact the log) every this many entries.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot so lagging followers can catch up
    /// without a snapshot install.
    pub keep_logs_after_snapshot: u64,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Most commands batched into one Raft entry.
    pub max_batch: usize,
    /// Batches proposed concurrently; more batches overlap rounds, fewer make
    /// each batch (and each fsync) carry more commands.
    pub max_inflight_batches: usize,
    /// Threads of the async runtime; unset, one per core. Nodes sharing a
    /// machine do better with a share each: `cluster up` gives each local
    /// node cores / nodes (docs/benchmarks.md, "Worker threads").
    pub worker_threads: Option<usize>,
    /// Default bound for `consistency=stale` reads without `max_staleness_ms`.
    pub max_staleness_ms: u64,
    /// Authentication of clients and peers (see docs/operations.md, Security).
    pub auth: AuthConfig,
    /// Connection, waiter, long-poll and rate limits.
    pub limits: LimitsConfig,
    /// JSON-lines audit log of mutating, admin and refused calls.
    pub audit_log: Option<PathBuf>,
    /// TLS for clients, mutual TLS for peers.
    pub tls: Option<crate::tls::TlsConfig>,
    /// The coherent cache (`/v1/cache`).
    pub cache: CacheConfig,
}

/// How a cache write reaches the replicated KV.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum WritePolicy {
    /// Every write is committed through Raft before it is acknowledged.
    WriteThrough,
    /// A node holding the line in M or E acknowledges at once and commits
    /// later; unflushed writes are lost if that node crashes.
    WriteBack,
}

impl std::str::FromStr for WritePolicy {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "write-through" => Ok(WritePolicy::WriteThrough),
            "write-back" => Ok(WritePolicy::WriteBack),
            _ => Err(format!(
                "unknown write policy {s:?} (write-through or write-back)"
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Most lines one node keeps.
    pub capacity_entries: usize,
    /// Most bytes of keys and values one node keeps.
    pub capacity_bytes: usize,
    /// Lease of a line; renewed while the line is used.
    pub lease_ms: u64,
    pub write_policy: WritePolicy,
    /// Write-back: how often M lines are flushed to the KV.
    pub writeback_delay_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity_entries: 100_000,
            capacity_bytes: 256 * 1024 * 1024,
            lease_ms: 2_000,
            write_policy: WritePolicy::WriteThrough,
            writeback_delay_ms: 10,
        }
    }
}

impl CacheConfig {
    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(format!("cache: {m}")));
        if self.capacity_entries == 0 || self.capacity_entries > 100_000_000 {
            return bad("capacity_entries must be between 1 and 100000000");
        }
        if !(4096..=1 << 40).contains(&self.capacity_bytes) {
            return bad("capacity_bytes must be between 4 KiB and 1 TiB");
        }
        if !(50..=600_000).contains(&self.lease_ms) {
            return bad("lease_ms must be between 50 and 600000");
        }
        if self.writeback_delay_ms == 0 || self.writeback_delay_ms * 4 > self.lease_ms {
            return bad("writeback_delay_ms must be > 0 and at most a quarter of lease_ms");
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: 1,
            listen: "127.0.0.1:7401".parse().expect("static address"),
            advertise: None,
            data_dir: PathBuf::from("dsync-data"),
            bootstrap: false,
            join: Vec::new(),
            // A follower campaigns after max + a random [min, max) of silence
            // (openraft 0.9 adds the leader lease, = max, to the timeout):
            // 600–700 ms here, for sub-second failover; a failed campaign
            // costs 2 × max more. See docs/architecture.md.
            heartbeat_ms: 50,
            election_timeout_min_ms: 250,
            election_timeout_max_ms: 350,
            peer_breaker_cooldown_ms: None,
            snapshot_every: 10_000,
            keep_logs_after_snapshot: 1_000,
            max_body_bytes: 2 * 1024 * 1024,
            max_batch: 1024,
            max_inflight_batches: 2,
            worker_threads: None,
            max_staleness_ms: 5_000,
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            audit_log: None,
            tls: None,
            cache: CacheConfig::default(),
        }
    }
}

impl Config {
    pub fn from_yaml_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!("cannot read config file {}: {e}", path.display()))
        })?;
        serde_yaml::from_str(&text)
            .map_err(|e| Error::Config(format!("config file {}: {e}", path.display())))
    }

    /// The address others use to reach this node.
    pub fn advertised(&self) -> String {
        self.advertise.clone().unwrap_or_else(|| match self.tls {
            // Peers and clients take the scheme from the address.
            Some(_) => format!("https://{}", self.listen),
            None => self.listen.to_string(),
        })
    }

    /// The cooldown of the breakers of this node's calls to its peers.
    pub fn peer_breaker_cooldown(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.peer_breaker_cooldown_ms
                .unwrap_or(self.election_timeout_max_ms),
        )
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.id == 0 {
            return bad("id must be > 0".into());
        }
        if self.heartbeat_ms == 0 || self.election_timeout_min_ms <= self.heartbeat_ms {
            return bad(format!(
                "election_timeout_min_ms ({}) must exceed heartbeat_ms ({}) which must be > 0",
                self.election_timeout_min_ms, self.heartbeat_ms
            ));
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return bad("election_timeout_max_ms must exceed election_timeout_min_ms".into());
        }
        if self
            .peer_breaker_cooldown_ms
            .is_some_and(|ms| !(10..=60_000).contains(&ms))
        {
            return bad("peer_breaker_cooldown_ms must be between 10 and 60000".into());
        }
        if self.snapshot_every == 0 {
            return bad("snapshot_every must be > 0".into());
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_body_bytes) {
            return bad("max_body_bytes must be between 1 KiB and 64 MiB".into());
        }
        if self.max_batch == 0 || self.max_batch > 65_536 {
            return bad("max_batch must be between 1 and 65536".into());
        }
        if self.max_inflight_batches == 0 || self.max_inflight_batches > 256 {
            return bad("max_inflight_batches must be between 1 and 256".into());
        }
        if self.worker_threads.is_some_and(|n| n == 0 || n > 1024) {
            return bad("worker_threads must be between 1 and 1024".into());
        }
        self.auth.validate().map_err(Error::Config)?;
        self.limits.validate().map_err(Error::Config)?;
        if self.bootstrap && !self.join.is_empty() {
            return bad(
                "bootstrap and join are exclusive: a node either starts a cluster or joins one"
                    .into(),
            );
        }
        self.cache.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_overrides_defaults_and_rejects_typos() {
        let c: Config =
            serde_yaml::from_str("id: 3\nlisten: 127.0.0.1:9000\njoin: [\"127.0.0.1:9001\"]\n")
                .unwrap();
        assert_eq!(c.id, 3);
        assert_eq!(c.heartbeat_ms, 50);
        assert_eq!(
            c.peer_breaker_cooldown(),
            std::time::Duration::from_millis(c.election_timeout_max_ms)
        );
        assert_eq!(c.advertised(), "127.0.0.1:9000");
        c.validate().unwrap();
        assert!(serde_yaml::from_str::<Config>("idd: 3\n").is_err());
    }

    #[test]
    fn validation_catches_bad_timing() {
        let c = Config {
            election_timeout_min_ms: 50,
            ..Config::default()
        };
        assert!(c.validate().is_err());
        for ms in [0, 60_001] {
            let c = Config {
                peer_breaker_cooldown_ms: Some(ms),
                ..Config::default()
            };
            assert!(c.validate().is_err(), "cooldown {ms} accepted");
        }
        let c = Config {
            bootstrap: true,
            join: vec!["x:1".into()],
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn cache_section_parses_and_validates() {
        let c: Config =
            serde_yaml::from_str("cache:\n  lease_ms: 500\n  write_policy: write-back\n").unwrap();
        assert_eq!(c.cache.write_policy, WritePolicy::WriteBack);
        assert_eq!(c.cache.writeback_delay_ms, 10);
        c.validate().unwrap();
        let mut bad = c.clone();
        bad.cache.writeback_delay_ms = 400;
        assert!(bad.validate().is_err());
        bad.cache = CacheConfig {
            capacity_entries: 0,
            ..CacheConfig::default()
        };
        assert!(bad.validate().is_err());
        assert!(serde_yaml::from_str::<Config>("cache:\n  write_policy: sometimes\n").is_err());
    }

    #[test]
    fn worker_threads_parse_and_are_bounded() {
        let c: Config = serde_yaml::from_str("worker_threads: 1\n").unwrap();
        assert_eq!(c.worker_threads, Some(1));
        c.validate().unwrap();
        assert_eq!(Config::default().worker_threads, None);
        for bad in [0, 1025] {
            let c = Config {
                worker_threads: Some(bad),
                ..Config::default()
            };
            assert!(c.validate().is_err(), "{bad} accepted");
        }
    }
}
