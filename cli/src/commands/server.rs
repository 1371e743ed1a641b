//! `dsync server`: runs one node. Settings come from `--config`, then flags
//! and `DSYNC_*` variables override the file field by field.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::builder::BoolishValueParser;
use dsync_server::Config;
use tracing_subscriber::EnvFilter;

use super::EXIT_OK;

const DEFAULT_LOG_FILTER: &str = "info,openraft=warn";

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// Node configuration file (YAML). Without it, built-in defaults apply.
    #[arg(long, env = "DSYNC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Node id, unique in the cluster, > 0.
    #[arg(long, env = "DSYNC_ID")]
    pub id: Option<u64>,

    /// Derive the id from a StatefulSet-style hostname `<name>-<ordinal>`:
    /// id = ordinal + 1, and ordinal 0 bootstraps (its --join is ignored).
    /// For Kubernetes, where the image has no shell to compute it.
    #[arg(
        long,
        env = "DSYNC_ID_FROM_HOSTNAME",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub id_from_hostname: Option<bool>,

    /// Address the HTTP server binds, e.g. 127.0.0.1:7401.
    #[arg(long, env = "DSYNC_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Address peers and clients use to reach this node (default: --listen).
    #[arg(long, env = "DSYNC_ADVERTISE", value_name = "HOST:PORT")]
    pub advertise: Option<String>,

    /// Directory of the Raft log, snapshots and metadata.
    #[arg(long, env = "DSYNC_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Start a new one-node cluster if this node's log is empty.
    #[arg(
        long,
        env = "DSYNC_BOOTSTRAP",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub bootstrap: Option<bool>,

    /// Addresses of existing members to join through (comma-separated).
    #[arg(
        long,
        env = "DSYNC_JOIN",
        value_delimiter = ',',
        value_name = "HOST:PORT,..."
    )]
    pub join: Option<Vec<String>>,

    /// Leader heartbeat interval in milliseconds.
    #[arg(long, env = "DSYNC_HEARTBEAT_MS", value_name = "MS")]
    pub heartbeat_ms: Option<u64>,

    /// Lower bound of the randomized election timeout in milliseconds.
    #[arg(long, env = "DSYNC_ELECTION_TIMEOUT_MIN_MS", value_name = "MS")]
    pub election_timeout_min_ms: Option<u64>,

    /// Upper bound of the randomized election timeout in milliseconds.
    #[arg(long, env = "DSYNC_ELECTION_TIMEOUT_MAX_MS", value_name = "MS")]
    pub election_timeout_max_ms: Option<u64>,

    /// How long calls to a peer stop after 3 failed in a row, before one
    /// probe (default: the election timeout maximum).
    #[arg(long, env = "DSYNC_PEER_BREAKER_COOLDOWN_MS", value_name = "MS")]
    pub peer_breaker_cooldown_ms: Option<u64>,

    /// Build a snapshot (and compact the log) every this many entries.
    #[arg(long, env = "DSYNC_SNAPSHOT_EVERY", value_name = "ENTRIES")]
    pub snapshot_every: Option<u64>,

    /// Log entries kept behind a snapshot so lagging followers catch up without one.
    #[arg(long, env = "DSYNC_KEEP_LOGS_AFTER_SNAPSHOT", value_name = "ENTRIES")]
    pub keep_logs_after_snapshot: Option<u64>,

    /// Largest accepted request body in bytes.
    #[arg(long, env = "DSYNC_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Most commands batched into one Raft entry.
    #[arg(long, env = "DSYNC_MAX_BATCH", value_name = "N")]
    pub max_batch: Option<usize>,

    /// Batches proposed to Raft concurrently.
    #[arg(long, env = "DSYNC_MAX_INFLIGHT_BATCHES", value_name = "N")]
    pub max_inflight_batches: Option<usize>,

    /// Threads of the async runtime (default: one per core).
    #[arg(long, env = "DSYNC_WORKER_THREADS", value_name = "N")]
    pub worker_threads: Option<usize>,

    /// Default bound of `consistency=stale` reads that give no max_staleness_ms.
    #[arg(long, env = "DSYNC_MAX_STALENESS_MS", value_name = "MS")]
    pub max_staleness_ms: Option<u64>,

    /// Most cache lines this node keeps.
    #[arg(long, env = "DSYNC_CACHE_CAPACITY_ENTRIES", value_name = "N")]
    pub cache_capacity_entries: Option<usize>,

    /// Most bytes of cached keys and values this node keeps.
    #[arg(long, env = "DSYNC_CACHE_CAPACITY_BYTES", value_name = "BYTES")]
    pub cache_capacity_bytes: Option<usize>,

    /// Lease of a cache line, renewed while it is used.
    #[arg(long, env = "DSYNC_CACHE_LEASE_MS", value_name = "MS")]
    pub cache_lease_ms: Option<u64>,

    /// Cache write policy: write-through (default) or write-back.
    #[arg(long, env = "DSYNC_CACHE_WRITE_POLICY", value_name = "POLICY")]
    pub cache_write_policy: Option<dsync_server::config::WritePolicy>,

    /// Write-back: how often modified lines are flushed to the KV.
    #[arg(long, env = "DSYNC_CACHE_WRITEBACK_DELAY_MS", value_name = "MS")]
    pub cache_writeback_delay_ms: Option<u64>,
}

impl ServerArgs {
    /// The file's config (or defaults) with every given flag applied.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_yaml_file(path)?,
            None => Config::default(),
        };
        fn set<T: Clone>(field: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *field = v.clone();
            }
        }
        set(&mut c.id, &self.id);
        set(&mut c.listen, &self.listen);
        if self.advertise.is_some() {
            c.advertise.clone_from(&self.advertise);
        }
        set(&mut c.data_dir, &self.data_dir);
        set(&mut c.bootstrap, &self.bootstrap);
        if let Some(join) = &self.join {
            c.join = join
                .iter()
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect();
        }
        set(&mut c.heartbeat_ms, &self.heartbeat_ms);
        set(
            &mut c.election_timeout_min_ms,
            &self.election_timeout_min_ms,
        );
        set(
            &mut c.election_timeout_max_ms,
            &self.election_timeout_max_ms,
        );
        if self.peer_breaker_cooldown_ms.is_some() {
            c.peer_breaker_cooldown_ms = self.peer_breaker_cooldown_ms;
        }
        set(&mut c.snapshot_every, &self.snapshot_every);
        set(
            &mut c.keep_logs_after_snapshot,
            &self.keep_logs_after_snapshot,
        );
        set(&mut c.max_body_bytes, &self.max_body_bytes);
        set(&mut c.max_batch, &self.max_batch);
        set(&mut c.max_inflight_batches, &self.max_inflight_batches);
        if self.worker_threads.is_some() {
            c.worker_threads = self.worker_threads;
        }
        set(&mut c.max_staleness_ms, &self.max_staleness_ms);
        set(&mut c.cache.capacity_entries, &self.cache_capacity_entries);
        set(&mut c.cache.capacity_bytes, &self.cache_capacity_bytes);
        set(&mut c.cache.lease_ms, &self.cache_lease_ms);
        set(&mut c.cache.write_policy, &self.cache_write_policy);
        set(
            &mut c.cache.writeback_delay_ms,
            &self.cache_writeback_delay_ms,
        );
        if self.id_from_hostname == Some(true) && self.id.is_none() {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .context("cannot read the hostname")?;
            let ordinal = ordinal_of(host.trim())?;
            c.id = ordinal + 1;
            if ordinal == 0 {
                c.bootstrap = true;
                c.join.clear();
            }
        }
        Ok(c)
    }
}

/// The `<ordinal>` of a StatefulSet pod name `<name>-<ordinal>`.
fn ordinal_of(host: &str) -> anyhow::Result<u64> {
    host.rsplit_once('-')
        .and_then(|(_, n)| n.parse::<u64>().ok())
        .filter(|n| *n < u64::MAX)
        .with_context(|| format!("hostname {host:?} does not end in -<ordinal>"))
}

pub fn run(args: ServerArgs) -> anyhow::Result<i32> {
    init_logging()?;
    let config = args.config()?;
    config.validate()?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.worker_threads {
        builder.worker_threads(n);
    }
    let runtime = builder
        .enable_all()
        .thread_name("dsync-server")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(dsync_server::run(config))?;
    Ok(EXIT_OK)
}

fn init_logging() -> anyhow::Result<()> {
    let (var, spec) = ["DSYNC_LOG", "RUST_LOG"]
        .iter()
        .find_map(|v| {
            std::env::var(v)
                .ok()
                .filter(|s| !s.trim().is_empty())
                .map(|s| (*v, s))
        })
        .unwrap_or(("default", DEFAULT_LOG_FILTER.to_string()));
    let filter = EnvFilter::try_new(&spec)
        .with_context(|| format!("invalid log filter in {var}: {spec:?}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Node logs usually land in a file (cluster up), where colour codes are noise.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: ServerArgs,
    }

    #[test]
    fn statefulset_ordinals_come_from_the_hostname() {
        assert_eq!(ordinal_of("dsync-0").unwrap(), 0);
        assert_eq!(ordinal_of("my-dsync-12").unwrap(), 12);
        assert!(ordinal_of("dsync").is_err());
        assert!(ordinal_of("dsync-a").is_err());
    }

    fn parse(argv: &[&str]) -> ServerArgs {
        Wrap::try_parse_from(std::iter::once("server").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn flags_override_the_file_field_by_field() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("node.yaml");
        std::fs::write(&file, "id: 4\nlisten: 127.0.0.1:9000\nsnapshot_every: 50\n").unwrap();
        let args = parse(&[
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:9100",
            "--join",
            "a:1,b:2",
            "--peer-breaker-cooldown-ms",
            "200",
        ]);
        let c = args.config().unwrap();
        assert_eq!(c.id, 4);
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.snapshot_every, 50);
        assert_eq!(c.join, vec!["a:1", "b:2"]);
        assert_eq!(c.peer_breaker_cooldown_ms, Some(200));
        assert_eq!(c.heartbeat_ms, Config::default().heartbeat_ms);
    }

    #[test]
    fn bootstrap_is_a_flag_that_also_takes_a_value() {
        assert_eq!(parse(&["--bootstrap"]).bootstrap, Some(true));
        assert_eq!(parse(&["--bootstrap=false"]).bootstrap, Some(false));
        assert_eq!(parse(&[]).bootstrap, None);
    }

    #[test]
    fn a_missing_config_file_is_a_clear_error() {
        let args = parse(&["--config", "/nonexistent/node.yaml"]);
        let err = format!("{:#}", args.config().unwrap_err());
        assert!(err.contains("/nonexistent/node.yaml"), "{err}");
    }
}
