//! `dsync bench kv`: replicated writes, one Raft commit each, or reads at
//! a chosen consistency (`--read`).

use std::future::Future;
use std::sync::Arc;

use dsync_api::types::Consistency;
use dsync_api::{Client, ClientError};
use serde_json::Value;

use super::via::{bench_timeouts, Targets, ViaArgs};
use super::{closed_loop, print_report, LoadArgs};
use crate::commands::kv::ConsistencyArg;
use crate::context::{GlobalArgs, RequestError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyPattern {
    /// Every write goes to a new key, bench/<client>/<n>.
    Distinct,
    /// Writes overwrite a fixed set of keys, bench/<client>/<n mod 1000>,
    /// so the stored data stays bounded however long the run (for
    /// sustained runs such as scripts/saturation.sh).
    Overwrite,
}

/// Keys per client with `--keys overwrite`.
const OVERWRITTEN_KEYS: u64 = 1000;

/// Keys written before a `--read` run, all of them read by every client.
const READ_KEYS: u64 = 100;

#[derive(Debug, clap::Args)]
pub struct KvBenchArgs {
    #[command(flatten)]
    pub load: LoadArgs,

    #[command(flatten)]
    pub via: ViaArgs,

    /// Size of each written value, in bytes.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(0..=16 * 1024 * 1024), value_name = "BYTES")]
    pub value_size: u32,

    /// Which keys the writes go to.
    #[arg(long, value_enum, default_value_t = KeyPattern::Distinct)]
    pub keys: KeyPattern,

    /// Read instead of writing, at this consistency: 100 keys are written
    /// first, then every client reads them in turn (`linearizable` costs a
    /// ReadIndex round, which concurrent reads share).
    #[arg(long, value_enum, value_name = "CONSISTENCY")]
    pub read: Option<ConsistencyArg>,
}

pub async fn run(global: &GlobalArgs, args: KvBenchArgs) -> anyhow::Result<i32> {
    let targets = Targets::new(global, args.via.via, args.load.clients, bench_timeouts).await?;
    let value = Value::String("x".repeat(args.value_size as usize));
    if let Some(at) = args.read {
        return reads(global, &args, targets, value, at).await;
    }
    let key_of = match args.keys {
        KeyPattern::Distinct => key,
        KeyPattern::Overwrite => overwritten_key,
    };
    eprintln!(
        "bench kv: {} clients for {} s, {}-byte values, {}",
        args.load.clients, args.load.duration, args.value_size, targets.described
    );
    measure(global, "kv", &args.load, targets, move |client, c, n| {
        let value = value.clone();
        async move { client.kv_put(&key_of(c, n), value, None).await.map(|_| ()) }
    })
    .await
}

/// Runs `op` (by client `c`, its `n`-th) in the closed loop and prints the report.
async fn measure<F, Fut>(
    global: &GlobalArgs,
    name: &str,
    load: &LoadArgs,
    targets: Targets,
    op: F,
) -> anyhow::Result<i32>
where
    F: Fn(Client, u32, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ClientError>> + Send + 'static,
{
    let via = targets.via;
    let targets = Arc::new(targets);
    let mut report = closed_loop(name, load, move |c, n| {
        let op = op(targets.client(c).clone(), c, n);
        async move { op.await.map_err(|e| RequestError(e).to_string()) }
    })
    .await?;
    report.via = Some(via.name().to_string());
    print_report(global.output, &report)
}

async fn reads(
    global: &GlobalArgs,
    args: &KvBenchArgs,
    targets: Targets,
    value: Value,
    at: ConsistencyArg,
) -> anyhow::Result<i32> {
    for k in 0..READ_KEYS {
        targets.all()[0]
            .kv_put(&read_key(k), value.clone(), None)
            .await
            .map_err(RequestError)?;
    }
    eprintln!(
        "bench kv reads ({}): {} clients for {} s over {READ_KEYS} keys, {}",
        Consistency::from(at).as_str(),
        args.load.clients,
        args.load.duration,
        targets.described
    );
    measure(
        global,
        "kv-reads",
        &args.load,
        targets,
        move |client, c, n| async move {
            let key = read_key((u64::from(c) * 7919 + n) % READ_KEYS);
            client.kv_get(&key, at.into()).await.map(|_| ())
        },
    )
    .await
}

fn read_key(k: u64) -> String {
    format!("bench/read/{k}")
}

fn key(client: u32, n: u64) -> String {
    format!("bench/{client}/{n}")
}

fn overwritten_key(client: u32, n: u64) -> String {
    key(client, n % OVERWRITTEN_KEYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_per_client_and_operation() {
        assert_eq!(key(3, 17), "bench/3/17");
        assert_ne!(key(1, 11), key(11, 1));
    }

    #[test]
    fn overwritten_keys_cycle_over_a_fixed_set() {
        assert_eq!(overwritten_key(3, 17), "bench/3/17");
        assert_eq!(overwritten_key(3, 1017), "bench/3/17");
        assert_ne!(overwritten_key(1, 5), overwritten_key(2, 5));
    }
}
