//! `dsync leader`: move Raft leadership on purpose (before maintenance).

use clap::Subcommand;

use crate::commands::EXIT_OK;
use crate::context::{GlobalArgs, RequestExt};

#[derive(Debug, Subcommand)]
pub enum LeaderCommand {
    /// Hand leadership to another voter and wait until it leads.
    ///
    /// The leader stops taking writes (clients get 503 and retry), waits for
    /// the target to hold the whole log and for the voters' leader lease
    /// (election_timeout_max) to run out, then has the target campaign.
    Transfer {
        /// The voter to hand off to; default: the most caught-up follower.
        #[arg(long, value_name = "ID")]
        to: Option<u64>,
    },
}

pub async fn run(global: &GlobalArgs, cmd: LeaderCommand) -> anyhow::Result<i32> {
    match cmd {
        LeaderCommand::Transfer { to } => {
            let client = global.client()?;
            let resp = client.leader_transfer(to).await.api()?;
            global.output.print(&resp, || {
                if resp.from == resp.leader {
                    format!("node {} already leads (term {})\n", resp.leader, resp.term)
                } else {
                    format!(
                        "leadership moved from node {} to node {} (term {}) in {} ms\n",
                        resp.from, resp.leader, resp.term, resp.elapsed_ms
                    )
                }
            })?;
        }
    }
    Ok(EXIT_OK)
}
