//! `dsync lock release`: give a lock back.

use crate::commands::EXIT_OK;
use crate::context::{GlobalArgs, RequestExt};

#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    /// Name of the lock.
    pub name: String,

    /// The owner the lock was acquired under.
    #[arg(long, value_name = "OWNER")]
    pub owner: String,

    /// The fencing token of the grant being released.
    ///
    /// (Not `--token`: that global flag is the API bearer token.)
    #[arg(long, value_name = "TOKEN")]
    pub fencing_token: u64,
}

pub async fn run(global: &GlobalArgs, args: ReleaseArgs) -> anyhow::Result<i32> {
    let client = global.client()?;
    let resp = client
        .lock_release(&args.name, &args.owner, args.fencing_token)
        .await
        .api()?;
    global.output.print(&resp, || {
        if resp.released {
            format!(
                "released lock {} (token {})\n",
                args.name, args.fencing_token
            )
        } else {
            format!("lock {} was not held by {}\n", args.name, args.owner)
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
        assert_eq!(a.fencing_token, 5);
    }
}
