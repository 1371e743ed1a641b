//! Issue 8 on the compose runtime: `cluster upgrade --image` under load
//! (acceptance 3), `cluster up --auth token` and `cluster scale`. Runs only
//! with DSYNC_DOCKER_TESTS=1, like tests/compose.rs.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dsync_api::auth::{Role, TokenRequest};
use dsync_api::locks::{AcquireRequest, LockMode};
use dsync_api::types::{Consistency, MemberKind};
use dsync_api::Client;
use dsync_tests::compose::{enabled, image, run, stdout, ComposeCluster};
use dsync_tests::wait_until;
use reqwest::StatusCode;
use serde_json::{json, Value};

const NEXT_VERSION: &str = "0.1.0-next";

/// A second image: the image under test reporting another version
/// (DSYNC_VERSION_OVERRIDE changes only the reported string, like a second
/// build of the same code), built offline on top of it. Untagged on drop.
struct NextImage {
    tag: String,
    id: String,
}

impl NextImage {
    fn build() -> NextImage {
        let tag = format!("{}-next{:06x}", image(), rand::random::<u32>() & 0xff_ffff);
        let dockerfile = format!(
            "FROM {}\nENV DSYNC_VERSION_OVERRIDE={NEXT_VERSION}\n",
            image()
        );
        let mut child = Command::new("docker")
            .args(["build", "-q", "-t", &tag, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker build");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(dockerfile.as_bytes())
            .expect("write Dockerfile");
        let out = child.wait_with_output().expect("docker build");
        assert!(
            out.status.success(),
            "docker build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = stdout(&run(
            Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", &tag])
        ));
        NextImage { tag, id }
    }
}

impl Drop for NextImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", &self.tag]).output();
    }
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// What one load worker did: acknowledged writes, failures, and the last
/// value it wrote under its lock.
struct Load {
    acked: Vec<(String, u64)>,
    failed: Vec<String>,
    last: Option<(String, u64)>,
}

/// Lock + fenced write + plain write per round, until `stop`.
fn spawn_load(client: &Client, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<Load>> {
    (0..4u64)
        .map(|w| {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let mut load = Load {
                    acked: Vec::new(),
                    failed: Vec::new(),
                    last: None,
                };
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let lock = format!("job-{w}");
                    let req = AcquireRequest {
                        owner: format!("worker-{w}"),
                        mode: LockMode::Exclusive,
                        ttl_ms: 10_000,
                        wait_ms: 0,
                    };
                    let key = format!("acked/{w}/{i}");
                    let step = async {
                        let g = client
                            .lock_acquire(&lock, &req)
                            .await
                            .map_err(|e| format!("acquire: {e}"))?;
                        client
                            .kv_put_fenced(&format!("data/{w}"), json!(i), None, &lock, g.token)
                            .await
                            .map_err(|e| format!("fenced put: {e}"))?;
                        client
                            .lock_release(&lock, &req.owner, g.token)
                            .await
                            .map_err(|e| format!("release: {e}"))?;
                        client
                            .kv_put(&key, json!(i), None)
                            .await
                            .map_err(|e| format!("put: {e}"))?;
                        Ok::<_, String>(())
                    };
                    match step.await {
                        Ok(()) => {
                            load.last = Some((format!("data/{w}"), i));
                            load.acked.push((key, i));
                        }
                        Err(e) => load.failed.push(e),
                    }
                    i += 1;
                }
                load
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_image_upgrade_under_load_fails_no_request_and_moves_every_container() {
    if !enabled() {
        return;
    }
    // Built first so it is dropped (untagged) after the cluster's containers
    // that use it are gone.
    let next = NextImage::build();
    let mut c = ComposeCluster::up(&[]);
    let ids = c.ids();
    c.leader(&ids).await;
    let old_id = c.container_image(1);
    assert_ne!(old_id, next.id);

    let plan = json_of(&c.dsync_ok(&[
        "cluster",
        "upgrade",
        "--image",
        &next.tag,
        "--dry-run",
        "--output",
        "json",
    ]));
    assert_eq!(plan["ok"], json!(true), "{plan}");
    assert_eq!(plan["target"]["version"], json!(NEXT_VERSION));
    let steps = plan["plan"].as_array().expect("plan");
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[2]["role"], json!("leader"), "leader last: {plan}");
    assert!(
        ids.iter().all(|id| c.container_image(*id) == old_id),
        "the dry run changed nothing"
    );

    let client = c.client();
    let stop = Arc::new(AtomicBool::new(false));
    let load = spawn_load(&client, stop.clone());
    let out = tokio::task::block_in_place(|| {
        c.dsync_ok(&[
            "cluster", "upgrade", "--image", &next.tag, "--output", "json",
        ])
    });
    stop.store(true, Ordering::Relaxed);
    let report = json_of(&out);
    assert_eq!(report["ok"], json!(true), "{report}");
    let results: Vec<&str> = report["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["result"].as_str())
        .collect();
    assert_eq!(results, vec!["upgraded"; 3], "{report}");
    let (mut acked, mut lasts) = (Vec::new(), Vec::new());
    for t in load {
        let l = t.await.expect("load worker");
        assert!(
            l.failed.is_empty(),
            "failed requests during the upgrade: {:?}",
            l.failed
        );
        acked.extend(l.acked);
        lasts.extend(l.last);
    }
    assert!(acked.len() > 20, "too little load: {} rounds", acked.len());
    println!(
        "image upgrade: {} rounds of lock/fenced put/release/put, none failed",
        acked.len()
    );

    // Every container was recreated from the new image and reports it.
    c.reload();
    assert_eq!(c.file["compose"]["image"], json!(next.tag));
    for id in &ids {
        assert_eq!(c.container_image(*id), next.id, "node {id}'s container");
        let s = c
            .client_for(*id)
            .node_status(&c.addr(*id))
            .await
            .expect("status");
        assert_eq!(s.version, NEXT_VERSION, "node {id}");
    }
    // No acknowledged write was lost.
    for (key, i) in acked.iter().chain(lasts.iter()) {
        let item = client
            .kv_get(key, Consistency::Linearizable)
            .await
            .unwrap_or_else(|e| panic!("{key} lost: {e}"));
        assert_eq!(item.value, json!(i), "{key}");
    }
    // Re-running is a no-op.
    let again = json_of(&c.dsync_ok(&[
        "cluster", "upgrade", "--image", &next.tag, "--output", "json",
    ]));
    assert!(
        again["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .all(|n| n["result"] == json!("skipped")),
        "{again}"
    );
    // The other runtime's flag is refused with a hint.
    let out = c.dsync(&["cluster", "upgrade", "--binary", "/bin/true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--image"), "{err}");
}

async fn call(addr: &str, method: reqwest::Method, path: &str, token: Option<&str>) -> StatusCode {
    let mut req = reqwest::Client::new()
        .request(method, format!("http://{addr}{path}"))
        .json(&json!({"value": 1}));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request").status()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secured_compose_cluster_refuses_strangers_and_scales_with_its_secrets() {
    if !enabled() {
        return;
    }
    let mut c = ComposeCluster::up(&["--auth", "token"]);
    let ids = c.ids();
    let leader = c.leader(&ids).await;
    let addr = c.addr(leader);
    let admin = c.admin_token().expect("admin token saved in <dir>/secrets");
    let secret = std::fs::read_to_string(c.dir.join("secrets/jwt.secret")).expect("jwt secret");
    let (app, _) = dsync_server::auth::mint_hs256(
        secret.trim().as_bytes(),
        &TokenRequest {
            subject: "app".into(),
            role: Role::Write,
            scopes: vec![],
            ttl_secs: 600,
        },
    )
    .expect("client token");

    use reqwest::Method;
    assert_eq!(
        call(&addr, Method::PUT, "/v1/kv/x", None).await,
        StatusCode::UNAUTHORIZED
    );
    for path in ["/raft/append", "/raft/vote"] {
        assert_eq!(
            call(&addr, Method::POST, path, Some(&app)).await,
            StatusCode::FORBIDDEN,
            "{path} with a client token"
        );
    }
    assert_eq!(
        call(&addr, Method::PUT, "/v1/kv/x", Some(&app)).await,
        StatusCode::OK
    );
    assert_eq!(
        call(&addr, Method::PUT, "/v1/kv/x", Some(&admin)).await,
        StatusCode::OK
    );
    // The CLI finds the admin token in the cluster folder by itself.
    c.dsync_ok(&["kv", "put", "before-scale", "7"]);

    // A new node gets the same secrets: it joins (peer secret) and refuses
    // anonymous clients like the others.
    let out = c.dsync_ok(&["cluster", "scale", "--nodes", "4", "--output", "json"]);
    assert_eq!(json_of(&out)["added"], json!([4]));
    c.reload();
    let voters = c
        .client()
        .status()
        .await
        .expect("status")
        .members
        .iter()
        .filter(|m| m.kind == MemberKind::Voter)
        .count();
    assert_eq!(voters, 4);
    assert_eq!(
        call(&c.addr(4), Method::PUT, "/v1/kv/y", None).await,
        StatusCode::UNAUTHORIZED
    );
    let fourth = c.client_for(4);
    wait_until(
        Duration::from_secs(30),
        "node 4 to hold the data",
        || async {
            let item = fourth
                .kv_get("before-scale", Consistency::Stale)
                .await
                .ok()?;
            (item.value == json!(7)).then_some(())
        },
    )
    .await;

    let report = json_of(&c.dsync_ok(&["cluster", "scale", "--nodes", "3", "--output", "json"]));
    let removed = report["removed"][0].as_u64().expect("one node removed");
    let project = c.project();
    c.reload();
    assert_eq!(c.ids().len(), 3);
    assert!(c.find_container(removed).is_none(), "container left behind");
    let volume = format!("{project}_dsync-{removed}-data");
    let gone = Command::new("docker")
        .args(["volume", "inspect", &volume])
        .output()
        .expect("docker");
    assert!(!gone.status.success(), "volume {volume} left behind");
    let compose = std::fs::read_to_string(c.dir.join("docker-compose.yml")).expect("compose");
    assert!(
        !compose.contains(&format!("dsync-{removed}-data")),
        "{compose}"
    );
    let item = c
        .client()
        .kv_get("before-scale", Consistency::Linearizable)
        .await
        .expect("data after scaling down");
    assert_eq!(item.value, json!(7));
}
