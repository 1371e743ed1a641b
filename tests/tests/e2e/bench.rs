//! Issue 19, item 1: `dsync bench --via any` spreads its clients over every
//! node (followers forward the writes), `--via leader` keeps them on the
//! leader, and the output names which ran.

use dsync_tests::{fetch_metrics, metric, Cluster};

/// KV puts a node answered, from its request-latency histogram.
fn kv_puts(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("dsync_http_request_duration_seconds_count{"))
        .filter(|l| l.contains(r#"method="PUT""#) && l.contains(r#"route="/v1/kv/{*key}""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Per node: (id, KV puts answered, writes forwarded to the leader).
async fn counts(cluster: &Cluster) -> Vec<(u64, f64, f64)> {
    let mut out = Vec::new();
    for n in cluster.nodes() {
        let text = fetch_metrics(&n.addr).await;
        let forwarded = metric(&text, "dsync_forwarded_requests_total").expect("forwarded metric");
        out.push((n.id, kv_puts(&text), forwarded));
    }
    out
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_kv_via_any_reaches_every_node_and_via_leader_only_the_leader() {
    let cluster = Cluster::up(3, &[]);
    let leader = cluster.wait_leader(3).await;
    let bench = |via: &str, output: &str| {
        cluster.dsync_ok(&[
            "bench",
            "kv",
            "--via",
            via,
            "--clients",
            "6",
            "--duration",
            "1",
            "--output",
            output,
        ])
    };

    let before = counts(&cluster).await;
    let out = bench("any", "table");
    let table = stdout(&out);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header.get(1), Some(&"VIA"), "{table}");
    assert_eq!(row.get(..2), Some(&["kv", "any"][..]), "{table}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("via any: 2 on "), "{stderr}");
    let after = counts(&cluster).await;
    for ((id, puts_before, fwd_before), (_, puts, fwd)) in before.iter().zip(&after) {
        assert!(
            puts > puts_before,
            "node {id} answered no puts: {before:?} → {after:?}"
        );
        if *id != leader {
            assert!(
                fwd > fwd_before,
                "node {id} forwarded nothing: {before:?} → {after:?}"
            );
        }
    }

    let before = after;
    let out = bench("leader", "json");
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json report");
    assert_eq!(report["via"], "leader", "{report}");
    assert!(report["ops"].as_u64() > Some(0), "{report}");
    let after = counts(&cluster).await;
    for ((id, puts_before, _), (_, puts, _)) in before.iter().zip(&after) {
        if *id == leader {
            assert!(
                puts > puts_before,
                "the leader answered no puts: {before:?} → {after:?}"
            );
        } else {
            assert_eq!(puts, puts_before, "node {id} got puts with --via leader");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_kv_reads_every_key_it_wrote_at_each_consistency() {
    let cluster = Cluster::up(3, &[]);
    cluster.wait_leader(3).await;
    for at in ["linearizable", "leader", "stale"] {
        let out = cluster.dsync_ok(&[
            "bench",
            "kv",
            "--read",
            at,
            "--clients",
            "6",
            "--duration",
            "1",
            "--output",
            "json",
        ]);
        let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json report");
        assert_eq!(report["bench"], "kv-reads", "{report}");
        assert!(report["ops"].as_u64() > Some(0), "{at}: {report}");
        // A read of a key the bench wrote that failed or missed is an error.
        assert_eq!(report["errors"], 0, "{at}: {report}");
    }
    let out = cluster.dsync(&["bench", "kv", "--read", "sometimes"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad consistency is a usage error"
    );
}
