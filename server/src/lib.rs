//! dsync node runtime.

pub mod config;
pub mod error;

pub use config::Config;
pub use error::{Error, Result};

/// Runs one node until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    config.validate()?;
    anyhow::bail!("node runtime is being written")
}
