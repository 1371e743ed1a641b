//! `dsync probe`: one node's liveness or readiness, for container health
//! checks and orchestrators (the image has no shell or curl).

use std::time::Duration;

use clap::Subcommand;
use dsync_api::client::{Client, ClientConfig};
use dsync_api::routes;
use dsync_api::types::Health;

use crate::commands::{EXIT_ERROR, EXIT_OK};
use crate::context::GlobalArgs;
use crate::duration::parse_duration;

#[derive(Debug, Clone, clap::Args)]
pub struct ProbeTarget {
    /// The node to ask (only this one; no leader following, no retries).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7000")]
    endpoint: String,
    /// Give up after this long (e.g. 2s).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum ProbeCommand {
    /// Exit 0 if the node's process answers HTTP (GET /health), else 1.
    Health(ProbeTarget),
    /// Exit 0 if the node knows a leader and has applied what it knows is
    /// committed (GET /ready), else 1 with the reason.
    Ready(ProbeTarget),
}

pub async fn run(global: &GlobalArgs, cmd: ProbeCommand) -> anyhow::Result<i32> {
    let (target, path) = match cmd {
        ProbeCommand::Health(t) => (t, routes::HEALTH),
        ProbeCommand::Ready(t) => (t, routes::READY),
    };
    let mut config = ClientConfig::new(vec![target.endpoint.clone()]);
    config.token = global.token.clone();
    config.request_timeout = target.timeout;
    config.retry_for = Duration::ZERO;
    let client = Client::new(config)?;
    let answer = tokio::time::timeout(
        target.timeout,
        client.call_node::<Health>(&target.endpoint, path),
    )
    .await;
    let health = match answer {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            eprintln!("{} {path}: {e}", target.endpoint);
            return Ok(EXIT_ERROR);
        }
        Err(_) => {
            eprintln!(
                "{} {path}: no answer within {:?}",
                target.endpoint, target.timeout
            );
            return Ok(EXIT_ERROR);
        }
    };
    global.output.print(&health, || {
        format!("node {} at {}: ok\n", health.id, target.endpoint)
    })?;
    Ok(EXIT_OK)
}
