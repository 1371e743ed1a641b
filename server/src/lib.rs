//! dsync node runtime: configuration, Raft (openraft) over a segment-file log, the
//! replicated state machine, and the HTTP API (axum).

pub mod auth;
pub mod backup;
pub mod cache;
pub mod config;
pub mod error;
pub mod events;
pub mod failpoint;
pub mod groups;
pub mod http;
pub mod metrics;
pub mod node;
pub mod proposer;
pub mod raft;
pub mod serve;
pub mod state;
pub mod tasks;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dsync_api::{Client, ClientConfig};

pub use config::Config;
pub use error::{Error, Result};
pub use node::Node;

/// The release this node reports; builds can override it (rolling-upgrade tests
/// use two builds of the same code that report different versions).
pub const VERSION: &str = match option_env!("DSYNC_BUILD_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// The version this process reports (status, backups, logs): [`VERSION`],
/// unless `DSYNC_VERSION_OVERRIDE` is set. That variable is a testing aid
/// for rolling upgrades: it changes only the reported string, never the
/// code, the wire protocol or the data formats, so a wrapper script that
/// sets it stands in for "a second build of the same code".
pub fn version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        std::env::var("DSYNC_VERSION_OVERRIDE")
            .ok()
            .filter(|v| !v.trim().is_empty() && v.len() <= 64)
            .unwrap_or_else(|| VERSION.to_string())
    })
}

/// Runs one node until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    warn_if_open(&config);
    let node = Node::start(config.clone()).await?;
    tracing::info!(
        id = node.id,
        addr = %node.addr,
        data_dir = %config.data_dir.display(),
        version = version(),
        "dsync node started"
    );
    if config.bootstrap {
        node.bootstrap_if_new().await?;
        node.tasks
            .spawn("name cluster", node.clone().name_new_cluster());
    }
    if !config.join.is_empty() && !node.is_voter() {
        node.tasks.spawn("join", join_until_member(node.clone()));
    }
    let app = http::router(node.clone());
    let tls = node.security.tls.as_ref().map(|t| t.acceptor.clone());
    let stopping = node.clone();
    let stop = async move {
        shutdown_signal().await;
        stopping.begin_shutdown().await;
    };
    // Returns once no connection is open (or the drain bound passed).
    serve::serve(listener, app, config.limits.serve_limits(), tls, stop).await;
    tracing::info!("shutting down");
    node.shutdown().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Without auth, anyone who reaches the node may do anything: say so loudly
/// unless it only listens on loopback.
fn warn_if_open(config: &Config) {
    if config.auth.mode == auth::AuthMode::None && !config.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %config.listen,
            "AUTH IS OFF on a non-loopback address: anyone who can reach this node can read, \
             write and administer the cluster. Set auth.mode: token (see docs/operations.md, Security)."
        );
        if config.auth.cluster_secret_file.is_none() {
            tracing::warn!(
                "no auth.cluster_secret_file: anyone can also send Raft RPCs to this node"
            );
        }
    }
}

/// Asks the cluster to add this node until it is a voter; the leader adds it
/// as a learner first and promotes it once it has caught up.
async fn join_until_member(node: Arc<Node>) {
    let client = match Client::new(ClientConfig {
        retry_for: Duration::from_secs(5),
        cluster_secret: node.security.auth.cluster_secret().map(str::to_string),
        ca_cert: node.config.tls.as_ref().map(|t| t.ca_file.clone()),
        identity_pem: node.security.tls.as_ref().map(|t| t.identity_pem.clone()),
        ..ClientConfig::new(node.config.join.clone())
    }) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot join: {e}");
            return;
        }
    };
    let mut delay = Duration::from_millis(100);
    loop {
        match client.join(node.id, &node.addr).await {
            Ok(_) => {
                tracing::info!(id = node.id, "joined the cluster as a voter");
                return;
            }
            Err(e) => {
                tracing::warn!(id = node.id, "join not done yet: {e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
        if node.is_voter() {
            return;
        }
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

#[cfg(test)]
mod layering_tests;
