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
            heartbeat_ms: 100,
            election_timeout_min_ms: 800,
            election_timeout_max_ms: 1600,
            snapshot_every: 10_000,
            keep_logs_after_snapshot: 1_000,
            max_body_bytes: 2 * 1024 * 1024,
            max_batch: 1024,
            max_inflight_batches: 2,
            max_staleness_ms: 5_000,
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            audit_log: None,
            tls: None,
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
        self.auth.validate().map_err(Error::Config)?;
        self.limits.validate().map_err(Error::Config)?;
        if self.bootstrap && !self.join.is_empty() {
            return bad(
                "bootstrap and join are exclusive: a node either starts a cluster or joins one"
                    .into(),
            );
        }
        Ok(())
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
        assert_eq!(c.heartbeat_ms, 100);
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
        let c = Config {
            bootstrap: true,
            join: vec!["x:1".into()],
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }
}
