//! `dsync lock`: the replicated lock manager: take and give back leases,
//! inspect holders, waiters and the wait-for graph, and run a command under
//! a lock.

pub mod acquire;
pub mod graph;
pub mod keepalive;
mod lease;
pub mod list;
pub mod release;
pub mod run;

use std::time::{Duration, Instant};

use clap::Subcommand;
use dsync_api::client::ClientError;
use dsync_api::locks::{AcquireRequest, AcquireResponse, LockMode, MAX_WAIT_MS};
use dsync_api::{Client, ErrorCode};

use crate::context::{GlobalArgs, RequestError};
use crate::duration::millis;
use crate::progress::Progress;

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Take a lock (or a share of it) and print the grant with its fencing token.
    ///
    /// Without --wait the lock is tried once. With --wait the request joins
    /// the lock's FIFO queue for that long. The lease lasts --ttl unless kept
    /// alive with `dsync lock keepalive`; give it back with `dsync lock
    /// release`, using the owner and token printed here. Acquiring again
    /// with the same owner and mode returns the same grant and refreshes its
    /// lease. Exits 3 if the lock stays busy, 4 if waiting would deadlock.
    Acquire(acquire::AcquireArgs),
    /// Give back a lock held under OWNER with fencing token TOKEN.
    ///
    /// Fails with stale_token (exit 1) if TOKEN is not that owner's current
    /// grant, e.g. because the lease expired and the lock moved on. With
    /// --force (an operator's override) every holder is evicted instead.
    Release(release::ReleaseArgs),
    /// Extend the lease of a held lock.
    ///
    /// Fails with stale_token (exit 1) if the lease was already lost: whoever
    /// holds TOKEN must then stop acting on the lock's behalf.
    Keepalive(keepalive::KeepaliveArgs),
    /// List locks with their holders and waiters, or detail one lock.
    ///
    /// Only locks someone holds or waits for exist; a free lock shows no
    /// holders. Ages and expiries are by the leader's clock.
    List(list::ListArgs),
    /// Show who waits for whom, and the recent requests refused as deadlocks.
    ///
    /// An edge `WAITER -> HOLDER on LOCK` means WAITER queues on LOCK behind
    /// HOLDER (a holder, or a conflicting request ahead in the queue). A
    /// request that would close a cycle is refused instead of queued; the
    /// most recent such cycles are listed with their time.
    Graph(graph::GraphArgs),
    /// Hold a lock while a command runs, and stop the command if the lock is lost.
    ///
    /// Waits for the lock, then runs CMD with DSYNC_FENCING_TOKEN,
    /// DSYNC_LOCK_NAME and DSYNC_LOCK_OWNER in its environment, renewing the
    /// lease every third of --ttl. If the lease is lost (stale token, or no
    /// keepalive succeeded before it would expire), CMD gets SIGTERM, then
    /// SIGKILL 5 s later, and dsync exits 1. SIGINT and SIGTERM sent to dsync
    /// are passed on to CMD. When CMD exits, the lock is released and dsync
    /// exits with CMD's code (128+N if a signal N ended it; 127/126 if CMD
    /// could not be started). Exits 3 if the lock stays busy past --wait, 4
    /// if waiting would deadlock. Only CMD itself is signalled: a wrapper
    /// such as `sh -c` should `exec` the real program or pass signals on.
    ///
    /// Pass the fencing token along with every write the lock guards (e.g.
    /// `PUT /v1/kv/{key}` with `fence`), so a holder that lost its lease
    /// without noticing cannot overwrite a newer holder's work.
    Run(run::RunArgs),
}

pub async fn run(global: &GlobalArgs, cmd: LockCommand) -> anyhow::Result<i32> {
    match cmd {
        LockCommand::Acquire(args) => acquire::run(global, args).await,
        LockCommand::Release(args) => release::run(global, args).await,
        LockCommand::Keepalive(args) => keepalive::run(global, args).await,
        LockCommand::List(args) => list::run(global, args).await,
        LockCommand::Graph(args) => graph::run(global, args).await,
        LockCommand::Run(args) => run::run(global, args).await,
    }
}

/// `--mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// One holder at a time.
    #[default]
    Exclusive,
    /// Any number of shared holders together, never with an exclusive one.
    Shared,
}

impl From<ModeArg> for LockMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Exclusive => LockMode::Exclusive,
            ModeArg::Shared => LockMode::Shared,
        }
    }
}

/// `<hostname>-<pid>`: unique among live processes of a fleet, and tells an
/// operator reading `lock list` where a holder runs.
pub fn default_owner() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .or_else(|| std::env::var("HOSTNAME").ok());
    owner_from(host.as_deref(), std::process::id())
}

fn owner_from(host: Option<&str>, pid: u32) -> String {
    let host = host.map(str::trim).filter(|h| !h.is_empty());
    format!("{}-{pid}", host.unwrap_or("localhost"))
}

/// `deadlock: a -> b -> a`: the cycle closed back on its first owner, so the
/// line reads as the loop it is.
pub fn cycle_line(cycle: &[String]) -> String {
    let mut owners: Vec<&str> = cycle.iter().map(String::as_str).collect();
    if let Some(first) = owners.first().copied() {
        owners.push(first);
    }
    format!("deadlock: {}", owners.join(" -> "))
}

/// The owners named in an API error's `key` detail (`cycle`, `holders`).
fn owners_in(e: &ClientError, key: &str) -> Vec<String> {
    let ClientError::Api { error, .. } = e else {
        return Vec::new();
    };
    error
        .details
        .get(key)
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Wraps an acquire failure for the exit-code mapping; a deadlock also
/// prints its cycle, which is what the operator has to break.
fn acquire_error(e: ClientError) -> anyhow::Error {
    if e.code() == Some(ErrorCode::Deadlock) {
        let cycle = owners_in(&e, "cycle");
        if !cycle.is_empty() {
            eprintln!("{}", cycle_line(&cycle));
        }
    }
    RequestError(e).into()
}

/// The lock `acquire` and `run` take, and as whom.
#[derive(Debug, clap::Args)]
pub struct LockArgs {
    /// Name of the lock (any text, `/` included).
    pub name: String,

    /// Who holds the lock; release and keepalive must name the same owner.
    /// Default: <hostname>-<pid> of this dsync process.
    #[arg(long, value_name = "OWNER")]
    pub owner: Option<String>,

    /// Exclusive (one holder) or shared (many readers).
    #[arg(long, value_enum, default_value_t = ModeArg::Exclusive)]
    pub mode: ModeArg,
}

impl LockArgs {
    /// The owner given, or this process's default one.
    pub fn owner(&self) -> String {
        self.owner.clone().unwrap_or_else(default_owner)
    }

    pub fn want<'a>(&'a self, owner: &'a str, ttl: Duration, wait: Duration) -> Want<'a> {
        Want {
            name: &self.name,
            owner,
            mode: self.mode.into(),
            ttl,
            wait,
        }
    }
}

/// What one acquire asks for; `wait` may exceed what one request may wait.
pub struct Want<'a> {
    pub name: &'a str,
    pub owner: &'a str,
    pub mode: LockMode,
    pub ttl: Duration,
    pub wait: Duration,
}

/// Acquires `want.name`, waiting up to `want.wait`. Tries once first so a
/// free lock costs one round and a busy one can say who holds it before the
/// (possibly long) wait. Waits longer than the server's per-request maximum
/// are made of several requests; each rejoins the queue at its tail.
pub async fn acquire_waiting(client: &Client, want: &Want<'_>) -> anyhow::Result<AcquireResponse> {
    let request = |wait_ms: u64| AcquireRequest {
        owner: want.owner.to_string(),
        mode: want.mode,
        ttl_ms: millis(want.ttl),
        wait_ms,
    };
    let deadline = Instant::now() + want.wait;
    let busy = match client.lock_acquire(want.name, &request(0)).await {
        Ok(grant) => return Ok(grant),
        Err(e) if e.code() == Some(ErrorCode::LockBusy) && !want.wait.is_zero() => e,
        Err(e) => return Err(acquire_error(e)),
    };
    let mut progress = Progress::new();
    progress.step(waiting_message(want.name, &owners_in(&busy, "holders")));
    loop {
        let left = millis(deadline.saturating_duration_since(Instant::now()));
        if left == 0 {
            return Err(acquire_error(busy));
        }
        match client
            .lock_acquire(want.name, &request(left.min(MAX_WAIT_MS)))
            .await
        {
            Ok(grant) => return Ok(grant),
            Err(e) if e.code() == Some(ErrorCode::LockBusy) && left > MAX_WAIT_MS => continue,
            Err(e) => return Err(acquire_error(e)),
        }
    }
}

fn waiting_message(name: &str, holders: &[String]) -> String {
    if holders.is_empty() {
        format!("waiting for lock {name}")
    } else {
        format!("waiting for lock {name} (held by {})", holders.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsync_api::ApiError;
    use serde_json::json;

    #[test]
    fn default_owner_is_host_and_pid() {
        assert_eq!(owner_from(Some("web-1\n"), 42), "web-1-42");
        assert_eq!(owner_from(Some("  "), 7), "localhost-7");
        assert_eq!(owner_from(None, 7), "localhost-7");
        let own = default_owner();
        assert!(own.ends_with(&format!("-{}", std::process::id())), "{own}");
    }

    #[test]
    fn cycles_read_as_closed_loops() {
        let cycle = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(cycle_line(&cycle(&["b", "a"])), "deadlock: b -> a -> b");
        assert_eq!(
            cycle_line(&cycle(&["z", "x", "y"])),
            "deadlock: z -> x -> y -> z"
        );
        assert_eq!(cycle_line(&[]), "deadlock: ");
    }

    #[test]
    fn owners_come_from_error_details() {
        let e = ClientError::Api {
            status: 409,
            error: ApiError::new(ErrorCode::Deadlock, "would deadlock")
                .with_detail("cycle", json!(["b", "a"])),
        };
        assert_eq!(owners_in(&e, "cycle"), vec!["b", "a"]);
        assert!(owners_in(&e, "holders").is_empty());
        assert!(owners_in(&ClientError::NoEndpoints, "cycle").is_empty());
    }

    #[test]
    fn acquire_failures_keep_their_exit_codes() {
        let e = acquire_error(ClientError::Api {
            status: 409,
            error: ApiError::new(ErrorCode::LockBusy, "held"),
        });
        let code = e.downcast_ref::<RequestError>().and_then(|r| r.0.code());
        assert_eq!(code, Some(ErrorCode::LockBusy));
    }

    #[test]
    fn waiting_names_the_holders_when_known() {
        assert_eq!(waiting_message("x", &[]), "waiting for lock x");
        assert_eq!(
            waiting_message("x", &["a".into(), "b".into()]),
            "waiting for lock x (held by a, b)"
        );
    }

    #[test]
    fn modes_map_to_the_wire() {
        assert_eq!(LockMode::from(ModeArg::default()), LockMode::Exclusive);
        assert_eq!(LockMode::from(ModeArg::Shared), LockMode::Shared);
    }
}
