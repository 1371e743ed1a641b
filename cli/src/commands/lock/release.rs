//! `dsync lock release`: give a lock back.

use crate::commands::EXIT_OK;
use crate::context::{GlobalArgs, RequestExt};

#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    /// Name of the lock.
    pub name: String,

    /// The owner the lock was acquired under.
    #[arg(long, value_name = "OWNER", required_unless_present = "force")]
    pub owner: Option<String>,

    /// The fencing token of the grant being released.
    ///
    /// (Not `--token`: that global flag is the API bearer token.)
    #[arg(long, value_name = "TOKEN", required_unless_present = "force")]
    pub fencing_token: Option<u64>,

    /// Admin override: evict every holder, whatever its owner and token.
    ///
    /// For a holder that is stuck but keeps renewing its lease. The evicted
    /// holders' tokens become stale (fenced writes with them are refused)
    /// and the next waiter gets the lock.
    #[arg(long, conflicts_with_all = ["owner", "fencing_token"])]
    pub force: bool,
}

pub async fn run(global: &GlobalArgs, args: ReleaseArgs) -> anyhow::Result<i32> {
    let client = global.client()?;
    let (Some(owner), Some(token)) = (&args.owner, args.fencing_token) else {
        let resp = client.lock_force_release(&args.name).await.api()?;
        global
            .output
            .print(&resp, || match resp.released.as_slice() {
                [] => format!("lock {} had no holder\n", args.name),
                owners => format!(
                    "force-released lock {} from {}\n",
                    args.name,
                    owners.join(", ")
                ),
            })?;
        return Ok(EXIT_OK);
    };
    let resp = client.lock_release(&args.name, owner, token).await.api()?;
    global.output.print(&resp, || {
        if resp.released {
            format!("released lock {} (token {token})\n", args.name)
        } else {
            format!("lock {} was not held by {owner}\n", args.name)
        }
    })?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use crate::Cli;
    use clap::Parser;

    #[test]
    fn owner_and_token_are_required() {
        let ok = [
            "dsync",
            "lock",
            "release",
            "x",
            "--owner",
            "o",
            "--fencing-token",
            "5",
        ];
        assert!(Cli::try_parse_from(ok).is_ok());
        assert!(Cli::try_parse_from(["dsync", "lock", "release", "x", "--owner", "o"]).is_err());
        assert!(
            Cli::try_parse_from(["dsync", "lock", "release", "x", "--fencing-token", "5"]).is_err()
        );
        let bad = [
            "dsync",
            "lock",
            "release",
            "x",
            "--owner",
            "o",
            "--fencing-token",
            "-1",
        ];
        assert!(Cli::try_parse_from(bad).is_err());
    }

    #[test]
    fn the_fencing_token_is_apart_from_the_bearer_token() {
        let cli = Cli::try_parse_from([
            "dsync",
            "lock",
            "release",
            "x",
            "--owner",
            "o",
            "--fencing-token",
            "5",
            "--token",
            "s",
        ])
        .unwrap();
        assert_eq!(cli.global.token.as_deref(), Some("s"));
        let crate::Command::Lock(super::super::LockCommand::Release(a)) = cli.cmd else {
            panic!("not a release");
        };
        assert_eq!(a.fencing_token, Some(5));
    }

    #[test]
    fn force_stands_alone() {
        let cli = Cli::try_parse_from(["dsync", "lock", "release", "x", "--force"]).unwrap();
        let crate::Command::Lock(super::super::LockCommand::Release(a)) = cli.cmd else {
            panic!("not a release");
        };
        assert!(a.force && a.owner.is_none());
        let both = ["dsync", "lock", "release", "x", "--force", "--owner", "o"];
        assert!(Cli::try_parse_from(both).is_err());
    }
}
