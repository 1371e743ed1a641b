//! `dsync bench lock`: acquire+release cycles, on distinct names (parallel
//! grants) or all on one name (serialized handoffs).

use std::sync::Arc;

use dsync_api::locks::{AcquireRequest, LockMode};

use super::via::{bench_timeouts, Targets, ViaArgs};
use super::{closed_loop, print_report, LoadArgs};
use crate::context::GlobalArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LockPattern {
    /// Each cycle takes a fresh lock name: measures grant throughput.
    Distinct,
    /// Every client contends for one lock: each cycle is one handoff.
    Contended,
}

#[derive(Debug, clap::Args)]
pub struct LockBenchArgs {
    #[command(flatten)]
    pub load: LoadArgs,

    #[command(flatten)]
    pub via: ViaArgs,

    /// Which lock names the cycles use.
    #[arg(long, value_enum, default_value_t = LockPattern::Distinct)]
    pub names: LockPattern,

    /// Lease length of each grant, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    pub ttl_ms: u64,
}

pub async fn run(global: &GlobalArgs, args: LockBenchArgs) -> anyhow::Result<i32> {
    let targets = Targets::new(global, args.via.via, args.load.clients, bench_timeouts).await?;
    let pattern = args.names;
    let ttl_ms = args.ttl_ms;
    // A contended acquire queues behind every other client.
    let wait_ms = match pattern {
        LockPattern::Distinct => 0,
        LockPattern::Contended => 60_000,
    };
    eprintln!(
        "bench lock: {} clients for {} s, {} names, {}",
        args.load.clients,
        args.load.duration,
        match pattern {
            LockPattern::Distinct => "distinct",
            LockPattern::Contended => "one contended",
        },
        targets.described
    );
    let name = format!("lock-{:?}", pattern).to_lowercase();
    let via = targets.via;
    let targets = Arc::new(targets);
    let mut report = closed_loop(&name, &args.load, move |c, n| {
        let client = targets.client(c).clone();
        async move {
            let lock = lock_name(pattern, c, n);
            let req = AcquireRequest {
                owner: format!("bench-{c}"),
                mode: LockMode::Exclusive,
                ttl_ms,
                wait_ms,
            };
            let err = |e| crate::context::RequestError(e).to_string();
            let grant = client.lock_acquire(&lock, &req).await.map_err(err)?;
            client
                .lock_release(&lock, &req.owner, grant.token)
                .await
                .map(|_| ())
                .map_err(err)
        }
    })
    .await?;
    report.via = Some(via.name().to_string());
    print_report(global.output, &report)
}

fn lock_name(pattern: LockPattern, client: u32, n: u64) -> String {
    match pattern {
        LockPattern::Distinct => format!("bench/{client}/{n}"),
        LockPattern::Contended => "bench/contended".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_pattern() {
        assert_eq!(lock_name(LockPattern::Distinct, 2, 5), "bench/2/5");
        assert_ne!(
            lock_name(LockPattern::Distinct, 2, 5),
            lock_name(LockPattern::Distinct, 5, 2)
        );
        assert_eq!(
            lock_name(LockPattern::Contended, 1, 1),
            lock_name(LockPattern::Contended, 9, 9)
        );
    }
}
