//! `dsync lock acquire`: take a lock and print the grant.

use std::time::Duration;

use dsync_api::locks::AcquireResponse;

use super::{acquire_waiting, LockArgs};
use crate::commands::EXIT_OK;
use crate::context::GlobalArgs;
use crate::duration::{format_ms, parse_duration};
use crate::output::Table;

#[derive(Debug, clap::Args)]
pub struct AcquireArgs {
    #[command(flatten)]
    pub lock: LockArgs,

    /// Lease length: the lock is released unless kept alive within it
    /// (500ms, 30s, 2m, or milliseconds).
    #[arg(long, value_parser = parse_duration, default_value = "30s", value_name = "DURATION")]
    pub ttl: Duration,

    /// How long to wait in the lock's queue if it is busy; 0 tries once
    /// (500ms, 30s, 2m, or milliseconds).
    #[arg(long, value_parser = parse_duration, default_value = "0", value_name = "DURATION")]
    pub wait: Duration,
}

pub async fn run(global: &GlobalArgs, args: AcquireArgs) -> anyhow::Result<i32> {
    let owner = args.lock.owner();
    let client = global.client()?;
    let grant = acquire_waiting(&client, &args.lock.want(&owner, args.ttl, args.wait)).await?;
    global.output.print(&grant, || grant_table(&grant))?;
    Ok(EXIT_OK)
}

pub fn grant_table(grant: &AcquireResponse) -> String {
    let mut t = Table::new(["NAME", "OWNER", "MODE", "TOKEN", "TTL"]);
    t.row([
        grant.name.clone(),
        grant.owner.clone(),
        grant.mode.as_str().to_string(),
        grant.token.to_string(),
        format_ms(grant.ttl_ms),
    ]);
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::lock::ModeArg;
    use crate::Cli;
    use clap::Parser;
    use dsync_api::locks::LockMode;

    fn parse(args: &[&str]) -> AcquireArgs {
        let cli = Cli::try_parse_from(["dsync", "lock", "acquire"].iter().chain(args)).unwrap();
        match cli.cmd {
            crate::Command::Lock(super::super::LockCommand::Acquire(a)) => a,
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn defaults_try_once_with_the_server_default_lease() {
        let a = parse(&["jobs/nightly"]);
        assert_eq!(a.lock.name, "jobs/nightly");
        assert_eq!(a.lock.owner, None);
        assert_eq!(a.lock.mode, ModeArg::Exclusive);
        assert_eq!(a.ttl, Duration::from_secs(30));
        assert_eq!(a.wait, Duration::ZERO);
    }

    #[test]
    fn flags_take_durations_with_units() {
        let a = parse(&[
            "x", "--owner", "o", "--mode", "shared", "--ttl", "500ms", "--wait", "2m",
        ]);
        assert_eq!(a.lock.owner.as_deref(), Some("o"));
        assert_eq!(a.lock.mode, ModeArg::Shared);
        assert_eq!(a.ttl, Duration::from_millis(500));
        assert_eq!(a.wait, Duration::from_secs(120));
        assert!(Cli::try_parse_from(["dsync", "lock", "acquire", "x", "--ttl", "3x"]).is_err());
    }

    #[test]
    fn grant_table_shows_the_token() {
        let grant = AcquireResponse {
            name: "x".into(),
            owner: "web-1-42".into(),
            mode: LockMode::Exclusive,
            token: 17,
            ttl_ms: 30_000,
            holders: vec![],
        };
        assert_eq!(
            grant_table(&grant),
            "NAME  OWNER     MODE       TOKEN  TTL\nx     web-1-42  exclusive  17     30s\n"
        );
    }
}
