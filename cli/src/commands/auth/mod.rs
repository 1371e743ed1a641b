//! `dsync auth`: tokens for clients, and who the cluster takes you for.

pub mod token;
pub mod whoami;

use clap::Subcommand;

use crate::context::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Create, inspect or sign client tokens (JWT).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Show the principal, role, scopes and expiry the node sees for --token.
    ///
    /// With auth off every caller is the anonymous admin.
    Whoami(whoami::WhoamiArgs),
}

pub async fn run(global: &GlobalArgs, cmd: AuthCommand) -> anyhow::Result<i32> {
    match cmd {
        AuthCommand::Token(c) => token::run(global, c).await,
        AuthCommand::Whoami(a) => whoami::run(global, a).await,
    }
}
