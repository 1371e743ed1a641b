//! `dsync lock run`: hold a lock for as long as a command runs, and stop the
//! command when the lock is lost.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::Context;
use dsync_api::Client;
use nix::sys::signal::Signal;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::Instant;

use super::lease::{keep_alive, Lost, Schedule};
use super::{acquire_waiting, LockArgs};
use crate::context::{within, GlobalArgs, RequestError};
use crate::duration::parse_duration;
use crate::local::send_signal;

/// How long CMD gets to exit after SIGTERM once the lock is lost.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Longest the final release may take; past it the lease expires on its own.
const RELEASE_LIMIT: Duration = Duration::from_secs(5);
/// The same after the lease was given up for lost: then the cluster is
/// likely unreachable, and the failure report should not wait long on it.
const LOST_RELEASE_LIMIT: Duration = Duration::from_secs(1);

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub lock: LockArgs,

    /// Lease length; renewed every third of it while CMD runs, so a crashed
    /// dsync frees the lock after at most this (500ms, 30s, 2m, or
    /// milliseconds).
    #[arg(long, value_parser = parse_duration, default_value = "15s", value_name = "DURATION")]
    pub ttl: Duration,

    /// How long to wait for the lock before giving up with exit code 3; 0
    /// tries once (500ms, 30s, 2m, or milliseconds).
    #[arg(long, value_parser = parse_duration, default_value = "10m", value_name = "DURATION")]
    pub wait: Duration,

    /// The command to run and its arguments (after `--`, or after NAME).
    #[arg(
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD",
        value_parser = clap::value_parser!(OsString)
    )]
    pub command: Vec<OsString>,
}

pub async fn run(global: &GlobalArgs, args: RunArgs) -> anyhow::Result<i32> {
    let Some((program, program_args)) = args.command.split_first() else {
        anyhow::bail!("no command given");
    };
    let shown = program.to_string_lossy().into_owned();
    let owner = args.lock.owner();
    let client = global.client()?;
    let grant = acquire_waiting(&client, &args.lock.want(&owner, args.ttl, args.wait)).await?;
    let granted_at = Instant::now();
    let token = grant.token;
    let ttl = grant_ttl(grant.ttl_ms, args.ttl);

    // Registered only now: before the grant, the default action (exit) is
    // right, and the server drops the queued request with the connection.
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;

    let mut child = match Command::new(program)
        .args(program_args)
        .env("DSYNC_FENCING_TOKEN", token.to_string())
        .env("DSYNC_LOCK_NAME", &args.lock.name)
        .env("DSYNC_LOCK_OWNER", &owner)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            release(&client, &args.lock.name, &owner, token).await;
            eprintln!("error: cannot start {shown}: {e}");
            return Ok(spawn_failure_code(e.kind()));
        }
    };
    let pid = child.id();

    // Renewals use their own short timeouts: one slow call must not outlast
    // the lease it is meant to extend.
    let renew_every = Schedule::for_ttl(ttl).renew_every;
    let renewer = global.client_with(|c| {
        c.request_timeout = renew_every.max(Duration::from_millis(200));
        c.retry_for = renew_every;
    })?;
    let (name, lease_owner) = (args.lock.name.clone(), owner.clone());
    let mut lease = tokio::spawn(async move {
        keep_alive(&name, ttl, granted_at, || {
            renewer.lock_keepalive(&name, &lease_owner, token, None)
        })
        .await
    });

    let outcome = loop {
        tokio::select! {
            status = child.wait() => break Outcome::Exited(status),
            lost = &mut lease => break Outcome::Lost(lost.unwrap_or_else(|e| Lost {
                reason: format!("keepalive task failed: {e}"),
            })),
            _ = sigint.recv() => {
                if !terminal_signals_child() {
                    forward(pid, Signal::SIGINT);
                }
            }
            _ = sigterm.recv() => forward(pid, Signal::SIGTERM),
        }
    };
    lease.abort();
    match outcome {
        Outcome::Exited(status) => {
            release(&client, &args.lock.name, &owner, token).await;
            let status = status.with_context(|| format!("cannot wait for {shown}"))?;
            Ok(exit_code(status))
        }
        Outcome::Lost(lost) => {
            eprintln!("lock {}: {}", args.lock.name, lost.reason);
            stop(&mut child, pid).await;
            // Usually refused as stale; frees the lock early if the cluster
            // was only unreachable to us.
            let release = client.lock_release(&args.lock.name, &owner, token);
            let _ = within(LOST_RELEASE_LIMIT, release).await;
            anyhow::bail!("lock {} lost; stopped {shown}", args.lock.name);
        }
    }
}

/// How holding the lock for CMD ended.
enum Outcome {
    Exited(std::io::Result<ExitStatus>),
    Lost(Lost),
}

/// Gives the lock back; a failure only warns, since CMD's outcome is what
/// the caller asked for and the lease expires on its own anyway.
async fn release(client: &Client, name: &str, owner: &str, token: u64) {
    if let Err(e) = within(RELEASE_LIMIT, client.lock_release(name, owner, token)).await {
        eprintln!(
            "warning: could not release lock {name}: {}",
            RequestError(e)
        );
    }
}

/// The lease the server granted, or what was asked if it did not say.
fn grant_ttl(granted_ms: u64, asked: Duration) -> Duration {
    if granted_ms == 0 {
        asked
    } else {
        Duration::from_millis(granted_ms)
    }
}

/// SIGTERM, then SIGKILL after the grace period; returns once CMD is reaped.
async fn stop(child: &mut Child, pid: Option<u32>) {
    forward(pid, Signal::SIGTERM);
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

fn forward(pid: Option<u32>, sig: Signal) {
    if let Some(pid) = pid {
        if let Err(e) = send_signal(pid, sig) {
            eprintln!("warning: {e:#}");
        }
    }
}

/// Whether a SIGINT we got most likely reached CMD too: Ctrl-C signals the
/// whole foreground process group, which CMD shares with us. Forwarding it
/// again would deliver it twice, and many programs take a second Ctrl-C as
/// "give up cleaning up".
fn terminal_signals_child() -> bool {
    let ours = nix::unistd::getpgrp();
    let fg_in = nix::unistd::tcgetpgrp(std::io::stdin());
    let fg_out = nix::unistd::tcgetpgrp(std::io::stderr());
    [fg_in, fg_out].into_iter().flatten().any(|fg| fg == ours)
}

/// CMD's exit code, or 128+N if signal N ended it (the shell convention).
fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => crate::commands::EXIT_ERROR,
    }
}

/// `env`'s and the shells' codes for a command that could not be run.
fn spawn_failure_code(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::NotFound => 127,
        _ => 126,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::lock::ModeArg;
    use crate::Cli;
    use clap::Parser;

    fn parse(args: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from(["dsync", "lock", "run"].iter().chain(args)).unwrap();
        match cli.cmd {
            crate::Command::Lock(super::super::LockCommand::Run(a)) => a,
            other => panic!("parsed {other:?}"),
        }
    }

    fn strings(v: &[OsString]) -> Vec<&str> {
        v.iter().map(|s| s.to_str().unwrap()).collect()
    }

    #[test]
    fn flags_before_the_dashes_are_ours_and_after_are_cmds() {
        let a = parse(&[
            "x", "--mode", "shared", "--wait", "5s", "--", "sh", "-c", "echo $A", "--ttl", "1s",
        ]);
        assert_eq!(a.lock.mode, ModeArg::Shared);
        assert_eq!(a.wait, Duration::from_secs(5));
        assert_eq!(a.ttl, Duration::from_secs(15));
        assert_eq!(strings(&a.command), ["sh", "-c", "echo $A", "--ttl", "1s"]);
    }

    #[test]
    fn the_command_may_follow_the_name_without_dashes() {
        let a = parse(&["x", "make", "-j4"]);
        assert_eq!(strings(&a.command), ["make", "-j4"]);
        assert_eq!(a.wait, Duration::from_secs(600));
    }

    #[test]
    fn a_command_is_required() {
        assert!(Cli::try_parse_from(["dsync", "lock", "run", "x"]).is_err());
        assert!(Cli::try_parse_from(["dsync", "lock", "run", "x", "--"]).is_err());
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        // Raw wait statuses: exit code in the high byte, signal in the low.
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(spawn_failure_code(ErrorKind::NotFound), 127);
        assert_eq!(spawn_failure_code(ErrorKind::PermissionDenied), 126);
    }

    #[test]
    fn the_granted_lease_wins_over_the_asked_one() {
        assert_eq!(
            grant_ttl(2_000, Duration::from_secs(15)),
            Duration::from_secs(2)
        );
        assert_eq!(
            grant_ttl(0, Duration::from_secs(15)),
            Duration::from_secs(15)
        );
    }
}
