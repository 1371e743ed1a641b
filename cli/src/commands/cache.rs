//! `dsync cache`: reads and writes through one node's coherent cache.

use anyhow::bail;
use clap::Subcommand;
use dsync_api::Client;

use crate::commands::EXIT_OK;
use crate::context::{GlobalArgs, RequestExt};
use crate::output::Table;

#[derive(Debug, clap::Args)]
pub struct NodeArg {
    /// Node whose cache serves the request: its id in the cluster file, or
    /// its 1-based position in --endpoints (default: the first endpoint).
    #[arg(long, value_name = "ID")]
    pub node: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Read a key through the node's cache (a valid local line costs no network hop).
    Get {
        /// The key.
        key: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Write a key: every other copy is invalidated, the write is committed, the node holds it in M.
    Put {
        /// The key.
        key: String,
        /// The value: JSON if it parses as JSON, else taken as a string; `-` reads stdin.
        value: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Delete a key from the store, invalidating every cached copy.
    Del {
        /// The key.
        key: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Show the MESI state of a key on every node.
    States {
        /// The key.
        key: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Show the node's cache counters and lines by state.
    Stats {
        #[command(flatten)]
        node: NodeArg,
    },
}

/// A client bound to the one node that should serve the request.
fn node_client(global: &GlobalArgs, node: &NodeArg) -> anyhow::Result<Client> {
    let targets = global.targets()?;
    let target = match node.node {
        None => targets.first().cloned(),
        Some(id) => targets
            .iter()
            .find(|t| t.id == Some(id))
            .or_else(|| {
                let from_file = targets.iter().any(|t| t.id.is_some());
                (!from_file && id >= 1)
                    .then(|| targets.get(id as usize - 1))
                    .flatten()
            })
            .cloned(),
    };
    let Some(target) = target else {
        bail!("no node {:?} among the endpoints", node.node);
    };
    let mut config = dsync_api::ClientConfig::new(vec![target.addr]);
    config.token = global.token.clone();
    Client::new(config).map_err(|e| crate::context::RequestError(e).into())
}

pub async fn run(global: &GlobalArgs, cmd: CacheCommand) -> anyhow::Result<i32> {
    let out = global.output;
    match cmd {
        CacheCommand::Get { key, node } => {
            let item = node_client(global, &node)?.cache_get(&key).await.api()?;
            out.print(&item, || {
                let value = serde_json::to_string_pretty(&item.value).unwrap_or_default();
                format!(
                    "{value}\nversion: {}\nstate: {} on node {} ({})\n",
                    item.version,
                    item.state.as_str(),
                    item.node,
                    if item.hit { "hit" } else { "miss" }
                )
            })?;
        }
        CacheCommand::Put { key, value, node } => {
            let value = super::kv::parse_value(&value, std::io::stdin())?;
            let resp = node_client(global, &node)?
                .cache_put(&key, value)
                .await
                .api()?;
            out.print(&resp, || match resp.version {
                Some(v) => format!(
                    "ok, version {v}; node {} holds it in {}\n",
                    resp.node,
                    resp.state.as_str()
                ),
                None => format!("ok, buffered in node {}'s M line (write-back)\n", resp.node),
            })?;
        }
        CacheCommand::Del { key, node } => {
            let resp = node_client(global, &node)?.cache_delete(&key).await.api()?;
            out.print(&resp, || super::kv::deleted_text(resp.deleted))?;
        }
        CacheCommand::States { key, node } => {
            let resp = node_client(global, &node)?.cache_states(&key).await.api()?;
            out.print(&resp, || {
                let mut t = Table::new(["NODE", "STATE", "VERSION", "LEASE_MS", "ERROR"]);
                for n in &resp.nodes {
                    let opt = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| v.to_string());
                    t.row([
                        n.node.to_string(),
                        n.state.as_str().to_string(),
                        opt(n.version),
                        opt(n.lease_remaining_ms),
                        n.error.clone().unwrap_or_default(),
                    ]);
                }
                t.render()
            })?;
        }
        CacheCommand::Stats { node } => {
            let s = node_client(global, &node)?.cache_stats().await.api()?;
            out.print(&s, || {
                let mut t = Table::new(["FIELD", "VALUE"]);
                for (k, v) in [
                    ("node", s.node.to_string()),
                    ("hits", s.hits.to_string()),
                    ("misses", s.misses.to_string()),
                    ("evictions", s.evictions.to_string()),
                    ("invalidations_sent", s.invalidations_sent.to_string()),
                    (
                        "invalidations_received",
                        s.invalidations_received.to_string(),
                    ),
                    ("remote_requests", s.remote_requests.to_string()),
                    (
                        "lines M/E/S",
                        format!("{}/{}/{}", s.lines.m, s.lines.e, s.lines.s),
                    ),
                    (
                        "entries",
                        format!("{} of {}", s.entries, s.capacity_entries),
                    ),
                    ("bytes", format!("{} of {}", s.bytes, s.capacity_bytes)),
                    ("write_policy", s.write_policy.clone()),
                    ("lease_ms", s.lease_ms.to_string()),
                ] {
                    t.row([k.to_string(), v]);
                }
                t.render()
            })?;
        }
    }
    Ok(EXIT_OK)
}
