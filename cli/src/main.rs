//! `dsync`: the server, the CLI and the dashboard in one binary.

mod cluster_file;
mod commands;
mod compose;
mod context;
mod duration;
mod local;
mod node_process;
mod output;
mod process_handle;
mod progress;
mod secrets;

use clap::{Parser, Subcommand};

// The server allocates per request and per entry; mimalloc is measurably
// cheaper than glibc's malloc under that churn (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use commands::auth::AuthCommand;
use commands::backup::BackupCommand;
use commands::bench::BenchCommand;
use commands::cache::CacheCommand;
use commands::cert::CertCommand;
use commands::cluster::ClusterCommand;
use commands::kv::KvCommand;
use commands::leader::LeaderCommand;
use commands::lock::LockCommand;
use commands::node::NodeCommand;
use commands::probe::ProbeCommand;
use commands::queue::QueueCommand;
use commands::server::ServerArgs;
use commands::shard::ShardCommand;
use context::GlobalArgs;

/// Distributed locks, queue and coherent cache: run nodes, manage local
/// clusters and talk to the API.
#[derive(Debug, Parser)]
#[command(name = "dsync", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub cmd: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one node (the bundled server) in the foreground until SIGTERM/SIGINT.
    ///
    /// Settings are read from --config (YAML, the fields below in snake_case),
    /// then each flag or DSYNC_* variable given overrides its field. Logs go to
    /// stderr; filter them with DSYNC_LOG or RUST_LOG (default:
    /// info,openraft=warn).
    Server(Box<ServerArgs>),
    /// Start, inspect, scale, upgrade and stop a cluster of local nodes.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Read and write the replicated key-value store.
    #[command(subcommand)]
    Kv(KvCommand),
    /// Move Raft leadership to a chosen node.
    #[command(subcommand)]
    Leader(LeaderCommand),
    /// Which Raft group holds which queue topics (the shard map).
    #[command(subcommand)]
    Shard(ShardCommand),
    /// Live dashboard: nodes, locks and the wait-for graph, cache, queues, events, shards.
    #[command(long_about = dsync_tui::about())]
    Tui,
    /// Drain a node or wait until it is ready (rolling maintenance).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Print the version nodes of this binary report and their wire protocol.
    Version,
    /// Take, renew, release and inspect distributed locks, or run a command under one.
    #[command(subcommand)]
    Lock(LockCommand),
    /// Push, receive and settle messages of the replicated queue; inspect topics.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Check one node's liveness or readiness (for health checks; exit 0 or 1).
    #[command(subcommand)]
    Probe(ProbeCommand),
    /// Measure throughput and latency against a running cluster.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Create client tokens and check which principal a token is.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Create, renew and inspect the CA and node certificates of a TLS cluster.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Read and write through a node's coherent (MESI) cache; inspect line states.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Take, verify and restore backups of a cluster's state.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Print a shell completion script for dsync to stdout.
    ///
    /// It covers every command, subcommand and flag of this binary. Load it
    /// into the current shell or install it:
    ///
    /// bash: `source <(dsync completions bash)`, or save it as
    /// /etc/bash_completion.d/dsync
    ///
    /// zsh: `dsync completions zsh > ~/.zfunc/_dsync` with ~/.zfunc on $fpath
    ///
    /// fish: `dsync completions fish > ~/.config/fish/completions/dsync.fish`
    ///
    /// elvish: `eval (dsync completions elvish | slurp)`
    ///
    /// PowerShell: `dsync completions powershell | Out-String | Invoke-Expression`
    Completions(commands::completions::CompletionsArgs),
    /// Write a man page for dsync and one for every subcommand.
    ///
    /// Pages are roff, section 1, named by the command path (dsync.1,
    /// dsync-cluster.1, dsync-cluster-status.1, ...) and generated from the
    /// same definitions as --help. Read one with `man -l DIR/dsync-lock.1`,
    /// or install them with `dsync man --out-dir /usr/local/share/man/man1`.
    Man(commands::man::ManArgs),
}

fn main() {
    // mimalloc asks for transparent huge pages on its arenas, and with THP a
    // page fault after each purge zeroes 2 MiB: that was a third of the
    // leader's CPU under the queue bench (docs/benchmarks.md, "Allocator").
    // Best effort: a kernel without the flag just keeps its default.
    let _ = nix::sys::prctl::set_thp_disable(true);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version also arrive here, on stdout and with success.
            let _ = e.print();
            let code = if e.use_stderr() {
                commands::EXIT_USAGE
            } else {
                commands::EXIT_OK
            };
            std::process::exit(code);
        }
    };
    std::process::exit(commands::run(cli));
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "dsync",
            "kv",
            "get",
            "k",
            "--output",
            "json",
            "--endpoints",
            "a:1,b:2",
        ])
        .unwrap();
        assert_eq!(cli.global.endpoints, vec!["a:1", "b:2"]);
        assert_eq!(cli.global.output, output::Output::Json);
    }

    #[test]
    fn every_command_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str) {
            for sub in cmd.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                assert!(sub.get_about().is_some(), "`{name}` has no help text");
                for arg in sub.get_arguments() {
                    if arg.get_id() != "help" && arg.get_id() != "version" {
                        assert!(
                            arg.get_help().is_some(),
                            "`{name}` argument {} has no help",
                            arg.get_id()
                        );
                    }
                }
                walk(sub, &name);
            }
        }
        walk(&Cli::command(), "dsync");
    }
}
