//! Dispatch of parsed commands and the one place errors become exit codes.

pub mod auth;
pub mod backup;
pub mod bench;
pub mod cache;
pub mod cert;
pub mod cluster;
pub mod completions;
pub mod kv;
pub mod leader;
pub mod lock;
pub mod man;
pub mod node;
pub mod probe;
pub mod queue;
pub mod server;
pub mod shard;
pub mod tui;
pub mod version;

use dsync_api::ErrorCode;

use crate::context::{GlobalArgs, RequestError};
use crate::{Cli, Command};

pub const EXIT_OK: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
/// Bad command line (clap exits with this itself).
pub const EXIT_USAGE: i32 = 2;
/// A lock was held by someone else, or waiting for it timed out.
pub const EXIT_LOCK_BUSY: i32 = 3;
/// Waiting for a lock would have closed a cycle of waiters.
pub const EXIT_DEADLOCK: i32 = 4;

/// Runs the command and returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let Cli { mut global, cmd } = cli;
    // A local secured cluster (`cluster up --auth token`) left an admin token
    // in its folder: use it unless a token was given.
    if global.token.is_none() {
        global.token = global
            .dir()
            .ok()
            .and_then(|d| crate::secrets::Secrets::admin_token(&d));
    }
    // Likewise its CA (`cluster up --tls` is about to create it): clients
    // read DSYNC_CA_CERT. Set before any thread exists.
    let creating_tls = matches!(&cmd, Command::Cluster(cluster::ClusterCommand::Up(a)) if a.tls);
    if std::env::var_os("DSYNC_CA_CERT").is_none() {
        if let Some(ca) = global
            .dir()
            .ok()
            .map(|d| d.join("tls").join("ca.pem"))
            .filter(|p| creating_tls || p.exists())
        {
            std::env::set_var("DSYNC_CA_CERT", ca);
        }
    }
    // The server owns its runtime and logging; everything else shares one
    // runtime built here.
    let result = match cmd {
        Command::Server(args) => server::run(*args),
        cmd => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(dispatch(global, cmd)),
            Err(e) => Err(anyhow::Error::new(e).context("cannot start the async runtime")),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit_code_of(&e)
        }
    }
}

async fn dispatch(global: GlobalArgs, cmd: Command) -> anyhow::Result<i32> {
    match cmd {
        Command::Server(_) => unreachable_server(),
        Command::Auth(c) => auth::run(&global, c).await,
        Command::Cert(c) => cert::run(&global, c).await,
        Command::Cluster(c) => cluster::run(&global, c).await,
        Command::Kv(c) => kv::run(&global, c).await,
        Command::Leader(c) => leader::run(&global, c).await,
        Command::Shard(c) => shard::run(&global, c).await,
        Command::Tui => tui::run(&global).await,
        Command::Node(c) => node::run(&global, c).await,
        Command::Version => version::run(&global),
        Command::Completions(a) => completions::run(a),
        Command::Man(a) => man::run(a),
        Command::Lock(c) => lock::run(&global, c).await,
        Command::Queue(c) => queue::run(&global, c).await,
        Command::Probe(c) => probe::run(&global, c).await,
        Command::Bench(c) => bench::run(&global, c).await,
        Command::Cache(c) => cache::run(&global, c).await,
        Command::Backup(c) => backup::run(&global, c).await,
    }
}

fn unreachable_server() -> anyhow::Result<i32> {
    anyhow::bail!("`dsync server` must not run inside another runtime")
}

/// Lock outcomes get their own codes so scripts can branch without parsing.
fn exit_code_of(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<RequestError>().and_then(|r| r.0.code()) {
        Some(ErrorCode::LockBusy) => EXIT_LOCK_BUSY,
        Some(ErrorCode::Deadlock) => EXIT_DEADLOCK,
        _ => EXIT_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsync_api::client::ClientError;
    use dsync_api::ApiError;

    fn api(code: ErrorCode) -> anyhow::Error {
        anyhow::Error::new(RequestError(ClientError::Api {
            status: code.http_status(),
            error: ApiError::new(code, "x"),
        }))
    }

    #[test]
    fn lock_outcomes_map_to_their_exit_codes() {
        assert_eq!(exit_code_of(&api(ErrorCode::LockBusy)), EXIT_LOCK_BUSY);
        assert_eq!(
            exit_code_of(&api(ErrorCode::Deadlock).context("acquiring a")),
            EXIT_DEADLOCK
        );
        assert_eq!(exit_code_of(&api(ErrorCode::Conflict)), EXIT_ERROR);
        assert_eq!(exit_code_of(&anyhow::anyhow!("plain")), EXIT_ERROR);
    }
}
