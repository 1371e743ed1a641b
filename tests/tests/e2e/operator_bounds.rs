//! Issue 20, item 6: operator commands never touch what is not theirs — a
//! copied cluster folder, a pid reused by another program, files dsync did
//! not make — and `cluster up` starts an existing cluster as it was created.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command};

use dsync_tests::{is_dsync_process, Cluster};
use reqwest::StatusCode;

/// A process unrelated to dsync, killed when the test ends however it ends.
struct Sleeper(Child);

impl Sleeper {
    fn start() -> Sleeper {
        Sleeper(Command::new("sleep").arg("1000").spawn().expect("sleep"))
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Sets node `id`'s recorded pid in `<dir>/cluster.yaml`.
fn record_pid(dir: &Path, id: u64, pid: u32) {
    let path = dir.join("cluster.yaml");
    let mut file: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for node in file["nodes"].as_sequence_mut().unwrap() {
        if node["id"].as_u64() == Some(id) {
            node["pid"] = pid.into();
        }
    }
    std::fs::write(&path, serde_yaml::to_string(&file).unwrap()).unwrap();
}

async fn answers(c: &Cluster) {
    for n in c.nodes() {
        let pid = n.pid.expect("pid");
        assert!(
            is_dsync_process(pid),
            "node {} (pid {pid}) was stopped",
            n.id
        );
        c.client_for(n.id)
            .node_status(&n.addr)
            .await
            .unwrap_or_else(|e| panic!("node {} does not answer: {e}", n.id));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn down_on_a_copied_folder_spares_the_originals_nodes_and_a_reused_pid() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    let copy = Cluster::adopt(tempfile::tempdir().unwrap(), &[]);
    let status = Command::new("cp")
        .arg("-a")
        .arg(c.cluster_dir())
        .arg(copy.cluster_dir())
        .status()
        .unwrap();
    assert!(status.success());
    // Node 1's pid in the copy now names an unrelated program.
    let mut sleeper = Sleeper::start();
    record_pid(&copy.cluster_dir(), 1, sleeper.0.id());

    let out = copy.dsync_ok(&["cluster", "down", "--grace", "2"]);
    let said = text(&out);
    assert_eq!(said.matches("left alone").count(), 3, "{said}");
    assert!(said.contains("`sleep 1000`, not a dsync node"), "{said}");
    let orig = c.cluster_dir().canonicalize().unwrap();
    assert!(
        said.contains(&format!("of the cluster in {}", orig.display())),
        "{said}"
    );
    assert!(sleeper.alive(), "the unrelated program was signalled");
    answers(&c).await;
    assert!(
        copy.nodes().iter().all(|n| n.pid.is_none()),
        "stale pids dropped"
    );

    // Starting the copy would start the original's nodes a second time.
    let out = copy.dsync(&["cluster", "up", "--timeout", "5"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the folder was copied from"),
        "{}",
        text(&out)
    );

    // Purging the copy deletes the copy only.
    copy.dsync_ok(&["cluster", "down", "--purge"]);
    assert!(!copy.cluster_dir().exists());
    assert!(c.cluster_dir().join("node-1/data").exists());
    answers(&c).await;
    c.wait_leader(3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn down_in_a_folder_moved_while_its_nodes_ran_stops_them() {
    let c = Cluster::up(2, &[]);
    c.wait_leader(2).await;
    let pids: Vec<u32> = c.nodes().iter().map(|n| n.pid.unwrap()).collect();
    let moved = Cluster::adopt(tempfile::tempdir().unwrap(), &[]);
    std::fs::rename(c.cluster_dir(), moved.cluster_dir()).unwrap();

    // The nodes write to the moved folder's logs: they are its nodes.
    let out = moved.dsync_ok(&["cluster", "down", "--grace", "5"]);
    let said = text(&out);
    assert_eq!(said.matches(": stopped").count(), 2, "{said}");
    for pid in pids {
        assert!(!is_dsync_process(pid), "pid {pid} still runs: {said}");
    }
    // Their configs still name the old place: starting here is refused
    // with the way back, which works.
    let out = moved.dsync(&["cluster", "up", "--timeout", "5"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let old = c.cluster_dir();
    assert!(
        text(&out).contains(&format!("moved from {}", old.display())),
        "{}",
        text(&out)
    );
    std::fs::rename(moved.cluster_dir(), &old).unwrap();
    c.dsync_ok(&["cluster", "up"]);
    answers(&c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_keeps_files_dsync_did_not_make_and_names_them() {
    let c = Cluster::up(1, &[]);
    let dir = c.cluster_dir();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    std::fs::write(dir.join("node-1/backup.dsb"), "mine too").unwrap();
    let pid = c.node(1).pid.unwrap();

    let out = c.dsync_ok(&["cluster", "down", "--purge"]);
    let said = text(&out);
    assert!(
        said.contains("kept node-1/backup.dsb, notes.txt: not made by dsync"),
        "{said}"
    );
    assert!(!is_dsync_process(pid));
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(dir.join("node-1/backup.dsb").exists());
    for gone in [
        "cluster.yaml",
        "node-1/data",
        "node-1/node.yaml",
        "node-1/server.log",
    ] {
        assert!(!dir.join(gone).exists(), "{gone} survived the purge");
    }

    // A folder holding only dsync's files goes whole.
    let c = Cluster::up(1, &[]);
    let out = c.dsync_ok(&["cluster", "down", "--purge"]);
    assert!(!c.cluster_dir().exists(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn up_with_auth_or_tls_on_an_open_cluster_is_refused_and_changes_nothing() {
    let c = Cluster::up(1, &[]);
    let dir = c.cluster_dir();
    let config = std::fs::read_to_string(dir.join("node-1/node.yaml")).unwrap();
    let pid = c.node(1).pid.unwrap();
    let shown = dir.display().to_string();
    for (flags, said) in [
        (&["--auth", "token"][..], "was created without auth"),
        (&["--tls"][..], "was created without TLS"),
    ] {
        let mut args = vec!["cluster", "up"];
        args.extend_from_slice(flags);
        let out = c.dsync(&args);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {}", text(&out));
        let msg = text(&out);
        assert!(msg.contains(&format!("{shown} {said}")), "{msg}");
        assert!(msg.contains("Securing an existing cluster"), "{msg}");
    }
    assert_eq!(c.node(1).pid, Some(pid));
    assert!(is_dsync_process(pid));
    assert_eq!(
        std::fs::read_to_string(dir.join("node-1/node.yaml")).unwrap(),
        config
    );
    assert!(!dir.join("secrets").exists() && !dir.join("tls").exists());
    answers(&c).await;

    // Stopped, it is refused as well, and nothing starts.
    c.dsync_ok(&["cluster", "down"]);
    let out = c.dsync(&["cluster", "up", "--auth", "token"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(c.node(1).pid, None);
    c.dsync_ok(&["cluster", "up"]);
    answers(&c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secured_cluster_restarted_without_its_flags_starts_as_created() {
    let c = Cluster::up_with(1, &[], &["--auth", "token"]);
    c.dsync_ok(&["cluster", "down"]);
    let out = c.dsync_ok(&["cluster", "up"]);
    assert!(
        text(&out).contains("created with --auth token: starting it as created"),
        "{}",
        text(&out)
    );
    assert_eq!(unauthenticated_get(&c).await, StatusCode::UNAUTHORIZED);
    c.dsync_ok(&["kv", "put", "k", "1"]);
    let out = c.dsync(&["cluster", "up", "--auth", "none"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("does not turn auth off"),
        "{}",
        text(&out)
    );
}

async fn unauthenticated_get(c: &Cluster) -> StatusCode {
    reqwest::get(format!("http://{}/v1/kv/k", c.node(1).addr))
        .await
        .expect("get")
        .status()
}

/// The steps of docs/operations.md, "Securing an existing cluster".
#[tokio::test(flavor = "multi_thread")]
async fn an_open_cluster_secured_by_the_documented_steps_requires_tokens() {
    let c = Cluster::up(3, &[]);
    c.wait_leader(3).await;
    c.dsync_ok(&["kv", "put", "k", "before"]);
    c.dsync_ok(&["cluster", "down"]);

    let dir = c.cluster_dir();
    let secrets = dir.join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700)).unwrap();
    for name in ["jwt.secret", "cluster.secret"] {
        let secret: String = (0..4)
            .map(|_| format!("{:016x}", rand::random::<u64>()))
            .collect();
        std::fs::write(secrets.join(name), secret).unwrap();
    }
    let out = c.dsync_ok(&[
        "auth",
        "token",
        "create",
        "--subject",
        "admin",
        "--role",
        "admin",
        "--ttl",
        "365d",
    ]);
    std::fs::write(secrets.join("admin.token"), &out.stdout).unwrap();
    for n in c.nodes() {
        let mut config = std::fs::read_to_string(&n.config).unwrap();
        config.push_str(&format!(
            "auth:\n  mode: token\n  jwt_secret_file: {}\n  cluster_secret_file: {}\naudit_log: {}\n",
            secrets.join("jwt.secret").display(),
            secrets.join("cluster.secret").display(),
            n.dir.join("audit.log").display()
        ));
        std::fs::write(&n.config, config).unwrap();
    }
    c.dsync_ok(&["cluster", "up"]);
    c.wait_leader(3).await;

    assert_eq!(unauthenticated_get(&c).await, StatusCode::UNAUTHORIZED);
    let out = c.dsync_ok(&["kv", "get", "k"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("before"));
    c.dsync_ok(&["kv", "put", "k", "after"]);
    assert!(dir.join("node-1/audit.log").exists());
}
