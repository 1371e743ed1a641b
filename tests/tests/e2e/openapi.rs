//! Issue 9, acceptance 3: Schemathesis fuzzes a live node from its own
//! `/openapi.json` and finds no 5xx and no response that differs from the
//! document, without auth and in token mode with an admin token.
//!
//! Left out of the run: `GET /v1/events` (a stream that never ends),
//! `POST /v1/cluster/members` (joining a made-up node blocks until that node
//! catches up, which it never does) and `GET /openapi.json` itself (checked
//! here directly). `/raft/*` is not in the document.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use dsync_tests::Cluster;

/// The Schemathesis release `scripts/ensure-tools.sh` installs; its CLI
/// changed between majors, so the flags below are for this one.
const SCHEMATHESIS: &str = "4.32.5";
/// Generated cases per operation: enough to reach every documented status,
/// small enough for a debug build on two cores.
const EXAMPLES: &str = "30";
/// The whole run gets this long before it is stopped and the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(240);
/// The checks of the acceptance, plus those that hold the documented status
/// codes and content types to what the server sends, and 405s (with
/// `Allow`) to the methods the document lists.
const CHECKS: &str = "not_a_server_error,response_schema_conformance,\
                      status_code_conformance,content_type_conformance,\
                      unsupported_method,allow_header_conformance";

fn hooks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis")
}

async fn fetch_document(addr: &str) -> serde_json::Value {
    let resp = reqwest::get(format!("http://{addr}/openapi.json"))
        .await
        .expect("GET /openapi.json");
    assert_eq!(
        resp.status(),
        200,
        "/openapi.json is readable without a token"
    );
    let doc: serde_json::Value = resp.json().await.expect("the document is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    for path in ["/v1/kv/{key}", "/v1/locks/{name}/acquire", "/v1/events"] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    doc
}

fn operations(doc: &serde_json::Value) -> usize {
    doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().expect("path item").len())
        .sum()
}

/// Runs Schemathesis against the node at `addr`; fails the test with its
/// report unless every check passed on every tested operation.
async fn schemathesis(addr: &str, work: &Path, checks: &str, extra: &[&str]) -> String {
    let version = tokio::process::Command::new("schemathesis")
        .arg("--version")
        .output()
        .await
        .expect("schemathesis is installed (scripts/ensure-tools.sh installs it)");
    let version = String::from_utf8_lossy(&version.stdout).to_string();
    assert!(
        version.contains(SCHEMATHESIS),
        "schemathesis {SCHEMATHESIS} is expected (scripts/ensure-tools.sh), found {version}"
    );
    let seed = std::env::var("DSYNC_FUZZ_SEED").unwrap_or_else(|_| "9".into());
    let log = work.join("schemathesis.log");
    let file = std::fs::File::create(&log).expect("log file");
    let mut cmd = tokio::process::Command::new("schemathesis");
    cmd.arg("run")
        .arg(format!("http://{addr}/openapi.json"))
        .args(["--checks", checks])
        .args(["--max-examples", EXAMPLES])
        .args(["--seed", &seed])
        .args(["--workers", "1"])
        .args(["--request-timeout", "20"])
        .args(["--exclude-path", "/v1/events"])
        // Schemathesis skips the document's own URL by itself; say so.
        .args(["--exclude-path", "/openapi.json"])
        .args(["--exclude-operation-id", "cluster_join"])
        .args(["--no-color", "--output-truncate", "false"])
        .args(extra)
        // Hypothesis keeps its example database in the working directory.
        .current_dir(work)
        .env("PYTHONPATH", hooks_dir())
        .env("SCHEMATHESIS_HOOKS", "dsync_hooks")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log file"))
        .stderr(file)
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("start schemathesis");
    let status = tokio::time::timeout(RUN_LIMIT, child.wait()).await;
    let report = std::fs::read_to_string(&log).unwrap_or_default();
    let status = match status {
        Ok(s) => s.expect("schemathesis exit status"),
        Err(_) => {
            let _ = child.kill().await;
            panic!("schemathesis ran past {RUN_LIMIT:?} (seed {seed}):\n{report}")
        }
    };
    assert!(
        status.success(),
        "schemathesis found problems (seed {seed}, {status}):\n{report}"
    );
    // Every documented operation but the three left out.
    let tested = format!("Tested: {}", operations(&fetch_document(addr).await) - 3);
    assert!(
        report.contains(&tested) && !report.contains("ERRORS"),
        "schemathesis did not test every operation (seed {seed}):\n{report}"
    );
    report
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_or_schema_drift() {
    let c = Cluster::up(1, &[]);
    let addr = c.endpoints()[0].clone();
    let work = tempfile::tempdir().expect("tempdir");
    let report = schemathesis(&addr, work.path(), CHECKS, &[]).await;
    println!("{report}");
}

#[tokio::test]
async fn schemathesis_with_an_admin_token_finds_no_drift_and_no_ignored_auth() {
    let c = Cluster::up_with(1, &[], &["--auth", "token"]);
    let addr = c.endpoints()[0].clone();
    let token =
        std::fs::read_to_string(c.cluster_dir().join("secrets/admin.token")).expect("admin token");
    let header = format!("Authorization: Bearer {}", token.trim());
    let work = tempfile::tempdir().expect("tempdir");
    // `ignored_auth` also sends each call without and with a wrong
    // credential: the 401s must come, and match the document.
    let checks = format!("{CHECKS},ignored_auth");
    let report = schemathesis(&addr, work.path(), &checks, &["--header", &header]).await;
    println!("{report}");
}
