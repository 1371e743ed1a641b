//! `dsync node drain ID`.

use std::time::Duration;

use dsync_api::{Client, ClientConfig};

use crate::context::{GlobalArgs, RequestExt};

#[derive(Debug, clap::Args)]
pub struct DrainArgs {
    /// Id of the node to drain.
    pub id: u64,
}

pub async fn run(global: &GlobalArgs, args: DrainArgs) -> anyhow::Result<i32> {
    let addr = super::address_of(global, args.id).await?;
    let mut config = ClientConfig::new(vec![addr]);
    config.token.clone_from(&global.token);
    // A leader's hand-off waits out the voters' lease: allow for it.
    config.request_timeout = Duration::from_secs(30);
    let resp = Client::new(config).api()?.drain().await.api()?;
    global.output.print(&resp, || {
        let mut out = format!("node {} is draining: client requests get 503\n", resp.id);
        if resp.was_leader {
            out.push_str(&format!(
                "it led; leadership moved to node {}\n",
                resp.leader.map_or("?".into(), |l| l.to_string())
            ));
        }
        out
    })?;
    Ok(crate::commands::EXIT_OK)
}
