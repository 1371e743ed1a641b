//! Issue 20, item 6, on the compose runtime: a copied compose cluster
//! folder names the original's project, and no command run in the copy
//! touches that project's containers or volumes. A fake `docker` records
//! what would have run, so this needs no Docker.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use dsync_tests::Cluster;

use crate::operator_bounds::text;

/// A `docker` on PATH that records its arguments and succeeds, so a test
/// sees which compose project a command acts on without Docker.
struct FakeDocker {
    dir: tempfile::TempDir,
}

impl FakeDocker {
    fn new() -> FakeDocker {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("docker");
        let log = dir.path().join("calls.log");
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho \"$@\" >> '{}'\n", log.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeDocker { dir }
    }

    fn path_env(&self) -> String {
        let rest = std::env::var("PATH").unwrap_or_default();
        format!("{}:{rest}", self.dir.path().display())
    }

    /// The compose commands run so far, `version` probes left out.
    fn compose_calls(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("calls.log")).unwrap_or_default();
        log.lines()
            .filter(|l| l.starts_with("compose ") && *l != "compose version")
            .map(str::to_string)
            .collect()
    }
}

/// The files `cluster up --runtime compose` leaves for one node.
fn write_compose_cluster(dir: &Path, project: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    let file = dir.join("docker-compose.yml");
    std::fs::write(&file, "services: {}\n").unwrap();
    let yaml = format!(
        "version: 1\nruntime: compose\nbinary: /dsync\ncreated_at_ms: 0\n\
         compose: {{project: {project}, file: {f}, image: 'dsync:latest'}}\n\
         nodes:\n- {{id: 1, addr: '127.0.0.1:1', pid: null, dir: {d}, data_dir: /data, config: {f}, log: '', version: ''}}\n",
        f = file.display(),
        d = dir.display()
    );
    std::fs::write(dir.join("cluster.yaml"), yaml).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copied_compose_folder_leaves_the_originals_project_alone() {
    let docker = FakeDocker::new();
    let env = [("PATH", docker.path_env())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let orig = Cluster::adopt(tempfile::tempdir().unwrap(), &env);
    write_compose_cluster(&orig.cluster_dir(), "dsyncorig1a2b3c");
    let copy = Cluster::adopt(tempfile::tempdir().unwrap(), &env);
    let cp = |to: &Path| {
        let status = Command::new("cp")
            .arg("-a")
            .arg(orig.cluster_dir())
            .arg(to)
            .status()
            .unwrap();
        assert!(status.success());
    };
    cp(&copy.cluster_dir());

    // Commands that would start, resize or upgrade the project refuse.
    for args in [
        &["cluster", "up", "--timeout", "5"][..],
        &["cluster", "scale", "--nodes", "1"],
        &["cluster", "upgrade", "--image", "dsync:next"],
    ] {
        let out = copy.dsync(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("the folder was copied from"),
            "{}",
            text(&out)
        );
    }
    // Down, even with --purge, stops nothing and deletes only the copy.
    let out = copy.dsync_ok(&["cluster", "down", "--purge"]);
    let said = text(&out);
    assert!(
        said.contains("compose project dsyncorig1a2b3c: left alone"),
        "{said}"
    );
    let orig_file = orig.cluster_dir().canonicalize().unwrap();
    assert!(
        said.contains(&orig_file.join("docker-compose.yml").display().to_string()),
        "{said}"
    );
    assert_eq!(docker.compose_calls(), Vec::<String>::new(), "{said}");
    assert!(!copy.cluster_dir().exists(), "{said}");
    assert!(orig.cluster_dir().join("cluster.yaml").exists());

    // The original's own down reaches its project (the fake records it).
    orig.dsync_ok(&["cluster", "down"]);
    let calls = docker.compose_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        calls[0].starts_with("compose -p dsyncorig1a2b3c -f ") && calls[0].contains(" down "),
        "{calls:?}"
    );
}
