//! `dsync node ready ID --timeout S`.

use std::time::{Duration, Instant};

use dsync_api::types::Health;
use dsync_api::{routes, Client, ClientConfig, ClientError};
use serde::Serialize;

use crate::context::{within, GlobalArgs};
use crate::progress::Progress;

#[derive(Debug, clap::Args)]
pub struct ReadyArgs {
    /// Id of the node to wait for.
    pub id: u64,

    /// Seconds to wait before giving up (0 = ask once).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,
}

#[derive(Debug, Serialize)]
struct Readiness {
    id: u64,
    addr: String,
    ready: bool,
    reason: Option<String>,
    waited_ms: u64,
}

pub async fn run(global: &GlobalArgs, args: ReadyArgs) -> anyhow::Result<i32> {
    let addr = super::address_of(global, args.id).await?;
    let mut config = ClientConfig::new(vec![addr.clone()]);
    config.token.clone_from(&global.token);
    config.request_timeout = Duration::from_secs(2);
    let client = Client::new(config)?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout);
    let mut progress = Progress::new();
    let (ready, reason) = loop {
        let (ready, reason) = match within(
            Duration::from_secs(2),
            client.call_node::<Health>(&addr, routes::READY),
        )
        .await
        {
            Ok(h) if h.id == args.id => (true, None),
            Ok(h) => (false, Some(format!("{addr} answers as node {}", h.id))),
            Err(ClientError::Api { error, .. }) => (false, Some(error.message)),
            Err(e) => (false, Some(format!("unreachable: {e}"))),
        };
        if ready || Instant::now() >= deadline {
            break (ready, reason);
        }
        progress.step(format!(
            "waiting for node {} to be ready: {}",
            args.id,
            reason.as_deref().unwrap_or("")
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    progress.finish();
    let report = Readiness {
        id: args.id,
        addr,
        ready,
        reason,
        waited_ms: started.elapsed().as_millis() as u64,
    };
    global.output.print(&report, || match &report.reason {
        None => format!("node {} is ready\n", report.id),
        Some(r) => format!("node {} is not ready: {r}\n", report.id),
    })?;
    Ok(if ready {
        crate::commands::EXIT_OK
    } else {
        crate::commands::EXIT_ERROR
    })
}
