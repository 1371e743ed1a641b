//! `dsync lock keepalive`: extend a held lock's lease.

use std::time::Duration;

use crate::commands::EXIT_OK;
use crate::context::{GlobalArgs, RequestExt};
use crate::duration::{format_ms, millis, parse_duration};

#[derive(Debug, clap::Args)]
pub struct KeepaliveArgs {
    /// Name of the lock.
    pub name: String,

    /// The owner the lock was acquired under.
    #[arg(long, value_name = "OWNER")]
    pub owner: String,

    /// The fencing token of the grant to keep alive.
    ///
    /// (Not `--token`: that global flag is the API bearer token.)
    #[arg(long, value_name = "TOKEN")]
    pub fencing_token: u64,

    /// New lease length from now (default: the grant's own; 500ms, 30s, 2m,
    /// or milliseconds).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub ttl: Option<Duration>,
}

pub async fn run(global: &GlobalArgs, args: KeepaliveArgs) -> anyhow::Result<i32> {
    let client = global.client()?;
    let resp = client
        .lock_keepalive(
            &args.name,
            &args.owner,
            args.fencing_token,
            args.ttl.map(millis),
        )
        .await
        .api()?;
    global.output.print(&resp, || {
        format!(
            "lock {} kept alive: token {}, lease {}\n",
            args.name,
            resp.token,
            format_ms(resp.ttl_ms)
        )
    })?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::Parser;

    #[test]
    fn ttl_is_optional_and_takes_units() {
        let cli = Cli::try_parse_from([
            "dsync",
            "lock",
            "keepalive",
            "x",
            "--owner",
            "o",
            "--fencing-token",
            "3",
            "--ttl",
            "1m",
        ])
        .unwrap();
        let crate::Command::Lock(super::super::LockCommand::Keepalive(a)) = cli.cmd else {
            panic!("not a keepalive");
        };
        assert_eq!(a.ttl, Some(Duration::from_secs(60)));
        let base = [
            "dsync",
            "lock",
            "keepalive",
            "x",
            "--owner",
            "o",
            "--fencing-token",
            "3",
        ];
        assert!(Cli::try_parse_from(base).is_ok());
    }
}
