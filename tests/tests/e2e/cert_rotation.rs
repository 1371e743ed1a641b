//! Issue 20, item 7: certificates expire, and `dsync cert rotate` renews
//! them under the same CA so a TLS cluster restarted node by node stays
//! one cluster.

use dsync_tests::{is_dsync_process, Cluster};
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("json output")
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_certificates_keep_a_tls_cluster_together_across_rolling_restarts() {
    let c = Cluster::up_with(3, &[], &["--tls"]);
    c.dsync_ok(&["kv", "put", "k", "before"]);
    let tls = c.cluster_dir().join("tls");

    // `cluster up --tls` issues finite certificates: a year, the CA ten.
    let shown = json(&c.dsync_ok(&["cert", "show", "-o", "json"]));
    let days = |v: &Value, file: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|s| s["file"].as_str().unwrap().ends_with(file))
            .unwrap_or_else(|| panic!("{file} in {v}"))["days_left"]
            .as_i64()
            .unwrap()
    };
    assert!(
        (364..=365).contains(&days(&shown, "/node-1.pem")),
        "{shown}"
    );
    assert!((3649..=3650).contains(&days(&shown, "/ca.pem")), "{shown}");

    let ca = std::fs::read(tls.join("ca.pem")).unwrap();
    let old = std::fs::read(tls.join("node-2.pem")).unwrap();
    let rotated = json(&c.dsync_ok(&["cert", "rotate", "--validity", "30d", "-o", "json"]));
    assert_eq!(rotated.as_array().unwrap().len(), 3, "{rotated}");
    assert_eq!(
        std::fs::read(tls.join("ca.pem")).unwrap(),
        ca,
        "the CA is kept"
    );
    assert_eq!(std::fs::read(tls.join("node-2.pem.old")).unwrap(), old);
    let shown = json(&c.dsync_ok(&["cert", "show", "-o", "json"]));
    for id in 1..=3 {
        let left = days(&shown, &format!("/node-{id}.pem"));
        assert!((29..=30).contains(&left), "{shown}");
    }

    // One node at a time: each restarted node presents its new certificate
    // to peers still on the old one, and the cluster keeps its quorum.
    for id in 1..=3u64 {
        let before = c.node(id).pid.unwrap();
        c.dsync_ok(&["node", "restart", &id.to_string()]);
        assert!(!is_dsync_process(before), "node {id} was not restarted");
        c.dsync_ok(&["kv", "put", &format!("after-{id}"), "1"]);
    }
    let status = json(&c.dsync_ok(&["cluster", "status", "-o", "json"]));
    assert_eq!(status["quorum"], true, "{status}");
    let out = c.dsync_ok(&["kv", "get", "k"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("before"));
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_without_the_ca_key_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tls");
    let out_arg = out.to_str().unwrap();
    let c = Cluster::adopt(tempfile::tempdir().unwrap(), &[]);
    c.dsync_ok(&[
        "cert",
        "init",
        "--out",
        out_arg,
        "--nodes",
        "1",
        "--validity",
        "10d",
    ]);
    std::fs::remove_file(out.join("ca.key")).unwrap();
    let before = std::fs::read(out.join("node-1.pem")).unwrap();
    let r = c.dsync(&["cert", "rotate", "--out", out_arg]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("ca.key is missing"), "{err}");
    assert_eq!(std::fs::read(out.join("node-1.pem")).unwrap(), before);
    assert!(!out.join("node-1.pem.old").exists());
}
