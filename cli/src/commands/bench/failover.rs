//! `dsync bench failover`: kill -9 the leader of a local cluster under a
//! write load and time how long until a write invoked after the kill is
//! acknowledged; restart the node and repeat.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use dsync_api::types::Role;
use dsync_api::{Client, ClientConfig};
use nix::sys::signal::Signal;
use serde::Serialize;
use serde_json::json;

use crate::cluster_file::ClusterFile;
use crate::context::GlobalArgs;
use crate::node_process::owner;
use crate::output::Table;
use crate::progress::Progress;

#[derive(Debug, Clone, clap::Args)]
pub struct FailoverBenchArgs {
    /// How many times to kill the leader.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub trials: u32,

    /// Concurrent writers keeping the cluster busy (and sampling recovery).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub clients: u32,
}

#[derive(Debug, Serialize)]
struct FailoverReport {
    trials: usize,
    p50_ms: u64,
    p90_ms: u64,
    max_ms: u64,
    /// Each trial: (killed leader, new leader, milliseconds).
    runs: Vec<Trial>,
}

#[derive(Debug, Serialize)]
struct Trial {
    killed: u64,
    new_leader: Option<u64>,
    ms: u64,
}

pub async fn run(global: &GlobalArgs, args: FailoverBenchArgs) -> anyhow::Result<i32> {
    let dir = global.dir()?;
    let Some(file) = ClusterFile::load(&dir)? else {
        bail!(
            "bench failover needs a local cluster started with `dsync cluster up` (none in {})",
            dir.display()
        );
    };
    if file.runtime != "local" {
        bail!(
            "bench failover kills processes of the local runtime; this cluster runs on {}",
            file.runtime
        );
    }
    file.ensure_here(&dir)?;
    let mut progress = Progress::new();
    let mut runs = Vec::new();
    for trial in 1..=args.trials {
        let file = ClusterFile::load(&dir)?.context("cluster file disappeared")?;
        let client = writer_client(&file);
        let leader = wait_leader(&client, &file).await?;
        let node = file
            .nodes
            .iter()
            .find(|n| n.id == leader)
            .context("leader not in the cluster file")?;
        let leader_process = owner(&dir, node)
            .ours()
            .context("the leader's pid is unknown, or is not this folder's node")?;

        let stop = Arc::new(AtomicBool::new(false));
        let killed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
        let first_ok: Arc<Mutex<Option<Instant>>> = Arc::default();
        let mut writers = Vec::new();
        for w in 0..args.clients {
            let (client, stop, killed_at, first_ok) = (
                client.clone(),
                stop.clone(),
                killed_at.clone(),
                first_ok.clone(),
            );
            writers.push(tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let invoked = Instant::now();
                    i += 1;
                    let ok = client
                        .kv_put(&format!("bench/failover/{w}"), json!(i), None)
                        .await
                        .is_ok();
                    let after_kill = killed_at
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .is_some_and(|k| invoked >= k);
                    if ok && after_kill {
                        let mut f = first_ok.lock().unwrap_or_else(|p| p.into_inner());
                        f.get_or_insert_with(Instant::now);
                    }
                }
            }));
        }
        // Let the load settle before the kill.
        tokio::time::sleep(Duration::from_millis(500)).await;
        progress.step(format!(
            "trial {trial}/{}: killing leader node {leader}",
            args.trials
        ));
        *killed_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        leader_process.signal(Signal::SIGKILL)?;
        let t0 = killed_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(Instant::now);
        let deadline = t0 + Duration::from_secs(30);
        let recovered = loop {
            if let Some(t) = *first_ok.lock().unwrap_or_else(|p| p.into_inner()) {
                break t;
            }
            if Instant::now() > deadline {
                stop.store(true, Ordering::Relaxed);
                bail!("no write succeeded within 30 s of killing node {leader}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            let _ = w.await;
        }
        let new_leader = client.status().await.ok().and_then(|s| s.leader);
        runs.push(Trial {
            killed: leader,
            new_leader,
            ms: recovered.duration_since(t0).as_millis() as u64,
        });
        progress.step(format!(
            "trial {trial}/{}: restarting node {leader}",
            args.trials
        ));
        restart(global).await?;
    }
    progress.finish();
    let mut ms: Vec<u64> = runs.iter().map(|r| r.ms).collect();
    ms.sort_unstable();
    let pick = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    let report = FailoverReport {
        trials: runs.len(),
        p50_ms: pick(0.5),
        p90_ms: pick(0.9),
        max_ms: pick(1.0),
        runs,
    };
    global.output.print(&report, || {
        let mut t = Table::new(["TRIAL", "KILLED", "NEW LEADER", "FIRST WRITE AFTER KILL"]);
        for (i, r) in report.runs.iter().enumerate() {
            t.row([
                (i + 1).to_string(),
                r.killed.to_string(),
                r.new_leader.map_or("-".into(), |l| l.to_string()),
                format!("{} ms", r.ms),
            ]);
        }
        format!(
            "{}failover over {} trials: p50 {} ms, p90 {} ms, max {} ms\n",
            t.render(),
            report.trials,
            report.p50_ms,
            report.p90_ms,
            report.max_ms
        )
    })?;
    Ok(crate::commands::EXIT_OK)
}

fn writer_client(file: &ClusterFile) -> Client {
    let mut cfg = ClientConfig::new(file.endpoints());
    cfg.request_timeout = Duration::from_millis(500);
    cfg.retry_for = Duration::from_secs(30);
    Client::new(cfg).expect("client config is valid")
}

async fn wait_leader(client: &Client, file: &ClusterFile) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut leaders = Vec::new();
        for n in &file.nodes {
            if let Ok(s) = client.node_status(&n.addr).await {
                leaders.push((s.role == Role::Leader).then_some(s.id).or(s.leader));
            }
        }
        let first = leaders.first().copied().flatten();
        if leaders.len() == file.nodes.len()
            && first.is_some()
            && leaders.iter().all(|l| *l == first)
        {
            return first.context("leader");
        }
        if Instant::now() > deadline {
            bail!("the cluster did not agree on a leader within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `dsync cluster up` again: restarts the killed node from its data.
async fn restart(global: &GlobalArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot locate the dsync binary")?;
    let dir = global.dir()?;
    let out = tokio::process::Command::new(exe)
        .arg("--dir")
        .arg(&dir)
        .args(["cluster", "up", "--output", "json"])
        .output()
        .await
        .context("cannot run dsync cluster up")?;
    if !out.status.success() {
        bail!(
            "restarting the killed node failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
