//! `dsync tui`: the live admin dashboard.

use std::io::IsTerminal;

use anyhow::{bail, Context};
use dsync_api::ClientConfig;

use crate::commands::EXIT_OK;
use crate::context::GlobalArgs;

pub async fn run(global: &GlobalArgs) -> anyhow::Result<i32> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("dsync tui needs an interactive terminal (use `dsync cluster status` in scripts)");
    }
    let mut config = ClientConfig::new(global.endpoints()?);
    config.token = global.token.clone();
    dsync_tui::run(config)
        .await
        .context("the dashboard's terminal failed")?;
    Ok(EXIT_OK)
}
