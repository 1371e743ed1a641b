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
    /// Move each queue group's leadership to its preferred leader, so no
    /// node leads more than ⌈G/N⌉ groups.
    ///
    /// Each move is a hand-off like `transfer` (the group's writes pause
    /// for about one election timeout); a group whose preferred replica has
    /// not caught up stays where it is. The control group's leader also
    /// does this by itself every 10 s, so a cluster regains its spread
    /// after a restart; this command does it now and reports each group.
    Balance,
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
        LeaderCommand::Balance => {
            let client = global.client()?;
            let moves = client.balance_leaders().await.api()?;
            let failed = moves.iter().filter(|m| m.error.is_some()).count();
            global.output.print(&moves, || balance_table(&moves))?;
            if failed > 0 {
                eprintln!(
                    "{failed} group(s) kept their leader; run it again once they have caught up"
                );
                return Ok(crate::commands::EXIT_ERROR);
            }
        }
    }
    Ok(EXIT_OK)
}

fn balance_table(moves: &[dsync_api::shards::GroupMove]) -> String {
    if moves.is_empty() {
        return "the cluster has no queue groups\n".into();
    }
    let mut t = crate::output::Table::new(["GROUP", "FROM", "TO", "RESULT"]);
    for m in moves {
        let result = match (&m.error, m.moved) {
            (Some(e), _) => format!("kept: {e}"),
            (None, true) => "moved".into(),
            (None, false) => "already there".into(),
        };
        let from = m.from.map_or("-".into(), |f| f.to_string());
        t.row([m.group.to_string(), from, m.to.to_string(), result]);
    }
    t.render()
}
