//! Issue 21: the alerting rules (compose/prometheus/alerts.yml) and the
//! Grafana dashboard (compose/grafana/dsync.json) only use metric names a
//! real cluster exports, so renaming a metric in the code fails here rather
//! than silently blinding an alert or a panel.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dsync_api::locks::{AcquireRequest, LockMode};
use dsync_api::queue::{ConsumeRequest, NewMessage, ReceiptsRequest};
use dsync_tests::{fetch_metrics, Cluster};
use serde_json::{json, Value};

/// Names that come from other exporters, not from dsync: node_exporter's
/// filesystem metrics for the disk alert.
const FOREIGN: &[&str] = &["node_filesystem_avail_bytes", "node_filesystem_size_bytes"];

fn compose_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../compose")
        .join(rel)
}

/// Every PromQL text of the rules: expressions, and annotations (runbooks
/// name metrics to look at too).
fn alert_texts() -> Vec<String> {
    let text = std::fs::read_to_string(compose_file("prometheus/alerts.yml")).expect("alerts.yml");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("alerts.yml is YAML");
    let mut out = vec![];
    for group in doc["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            out.push(rule["expr"].as_str().expect("expr").to_string());
            if let Some(ann) = rule["annotations"].as_mapping() {
                out.extend(ann.values().filter_map(|v| v.as_str()).map(str::to_string));
            }
        }
    }
    out
}

/// Every query of the dashboard: panel targets and template variables.
fn dashboard_queries() -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr" | "query" | "definition", Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(compose_file("grafana/dsync.json")).expect("dsync.json");
    let doc: Value = serde_json::from_str(&text).expect("dsync.json is JSON");
    let mut out = vec![];
    walk(&doc, &mut out);
    out
}

/// Identifiers starting with `prefix` (`dsync_`, `node_`) in `text`.
fn identifiers(text: &str, prefix: &str, into: &mut BTreeSet<String>) {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let end = tail.find(|c: char| !ident(c)).unwrap_or(tail.len());
        if !before.is_some_and(ident) && end > prefix.len() {
            into.insert(tail[..end].to_string());
        }
        rest = &tail[end.max(1)..];
    }
}

/// The sample names of a Prometheus/OpenMetrics exposition (histograms
/// and counters appear with their `_bucket`/`_sum`/`_count`/`_total`
/// suffixes, exactly as queries must name them).
fn sample_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

fn used_names(texts: &[String]) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut ours, mut foreign) = (BTreeSet::new(), BTreeSet::new());
    for t in texts {
        identifiers(t, "dsync_", &mut ours);
        identifiers(t, "node_", &mut foreign);
    }
    (ours, foreign)
}

/// Locks, queue, KV and cache traffic through every node, so that the
/// labelled families (routes, topics, line states) have samples.
async fn exercise(c: &Cluster) {
    let client = c.client();
    for i in 0..3 {
        client
            .kv_put(&format!("drift/{i}"), json!(i), None)
            .await
            .expect("kv put");
    }
    let acquire = |owner: &str| AcquireRequest {
        owner: owner.to_string(),
        mode: LockMode::Exclusive,
        ttl_ms: 10_000,
        wait_ms: 5_000,
    };
    let grant = client
        .lock_acquire("drift", &acquire("a"))
        .await
        .expect("acquire");
    client
        .lock_release("drift", "a", grant.token)
        .await
        .expect("release");

    let msg = NewMessage {
        payload: json!("work"),
        delay_ms: None,
        dedup_id: None,
    };
    client
        .queue_push("drift", vec![msg.clone(), msg])
        .await
        .expect("push");
    let take = ConsumeRequest {
        consumer: "drift".into(),
        max: 1,
        visibility_ms: None,
        wait_ms: 1_000,
    };
    let got = client.queue_consume("drift", &take).await.expect("consume");
    let ack = ReceiptsRequest {
        receipts: got.messages.iter().map(|m| m.receipt.clone()).collect(),
        delay_ms: None,
        visibility_ms: None,
    };
    client
        .queue_receipts("drift", "ack", &ack)
        .await
        .expect("ack");

    for n in c.nodes() {
        let node = c.client_for(n.id);
        let key = format!("drift-{}", n.id);
        node.cache_put(&key, json!(n.id)).await.expect("cache put");
        node.cache_get(&key).await.expect("cache get (hit)");
        node.cache_get("drift-1").await.expect("cache get");
        node.kv_get("drift/0", dsync_api::types::Consistency::Linearizable)
            .await
            .expect("kv get");
    }
}

/// The names `dsync backup schedule --metrics-file` writes, after one
/// backup of the cluster; promtool must accept the file as well.
fn backup_metric_names(c: &Cluster) -> BTreeSet<String> {
    let out_dir = c.dir.path().join("backups");
    let file = c.dir.path().join("dsync-backup.prom");
    let (out_s, file_s) = (out_dir.display().to_string(), file.display().to_string());
    c.dsync_ok(&[
        "backup",
        "schedule",
        "--every",
        "1h",
        "--count",
        "1",
        "--out-dir",
        &out_s,
        "--metrics-file",
        &file_s,
    ]);
    let text = std::fs::read_to_string(&file).expect("metrics file");
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).expect("metrics file"))
        .output()
        .expect("promtool is installed (scripts/ensure-tools.sh installs it)");
    assert!(
        check.status.success(),
        "promtool check metrics on\n{text}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    sample_names(&text)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_alerts_and_the_dashboard_use_is_exported() {
    let mut texts = alert_texts();
    texts.extend(dashboard_queries());
    let (used, foreign) = used_names(&texts);
    assert!(
        used.len() >= 30,
        "the rules and the dashboard name too few metrics: {used:?}"
    );
    let unknown: Vec<&String> = foreign
        .iter()
        .filter(|n| !FOREIGN.contains(&n.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "node_* names outside the node_exporter allowlist: {unknown:?}"
    );

    // Queue groups, so their dsync_group_* series exist on every node.
    let c = Cluster::up_with(3, &[], &["--shards", "2"]);
    c.wait_leader(3).await;
    exercise(&c).await;
    let backup = backup_metric_names(&c);

    // Gauges of labelled families appear as the work reaches each node;
    // poll briefly before naming what is missing.
    for n in c.nodes() {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let exported = sample_names(&fetch_metrics(&n.addr).await);
            let missing: Vec<&String> = used
                .iter()
                .filter(|m| !exported.contains(*m) && !backup.contains(*m))
                .collect();
            if missing.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {} does not export {missing:?} (used in compose/prometheus/alerts.yml \
                 or compose/grafana/dsync.json)",
                n.id
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The PromQL inside Grafana's `label_values(SERIES, label)` variable
/// query (a Grafana function, not PromQL); any other query as it is.
fn grafana_series(q: &str) -> &str {
    q.strip_prefix("label_values(")
        .and_then(|inner| inner.rsplit_once(','))
        .map_or(q, |(series, _label)| series.trim())
}

/// Grafana takes any string; promtool parses each dashboard query (with its
/// variables filled in) as a recording rule, so a typo fails here.
#[test]
fn every_dashboard_query_is_valid_promql() {
    let rules: Vec<Value> = dashboard_queries()
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let expr = grafana_series(q)
                .replace("$__rate_interval", "5m")
                .replace("$job", ".*")
                .replace("$instance", ".*");
            json!({"record": format!("dashboard:query{i}"), "expr": expr})
        })
        .collect();
    assert!(rules.len() >= 30, "too few dashboard queries: {rules:?}");
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("dashboard_rules.yml");
    let doc = json!({"groups": [{"name": "dashboard", "rules": rules}]});
    std::fs::write(&file, doc.to_string()).expect("write rules");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .stdout(Stdio::piped())
        .output()
        .expect("promtool is installed (scripts/ensure-tools.sh installs it)");
    assert!(
        out.status.success(),
        "promtool rejects a dashboard query:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn identifiers_and_sample_names_are_parsed_as_prometheus_spells_them() {
    let mut found = BTreeSet::new();
    identifiers(
        r#"rate(dsync_a_total{x="dsync_b"}[5m]) / my_dsync_c + dsync_ + dsync_d:e"#,
        "dsync_",
        &mut found,
    );
    let want: BTreeSet<String> = ["dsync_a_total", "dsync_b", "dsync_d:e"]
        .map(String::from)
        .into();
    assert_eq!(found, want);
    let names = sample_names(
        "# TYPE dsync_x histogram\ndsync_x_bucket{le=\"1\"} 1\ndsync_x_count 1\ndsync_y 2\n# EOF\n",
    );
    let want: BTreeSet<String> = ["dsync_x_bucket", "dsync_x_count", "dsync_y"]
        .map(String::from)
        .into();
    assert_eq!(names, want);
}
