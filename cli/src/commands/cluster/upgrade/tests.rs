use std::path::PathBuf;

use super::*;
use crate::cluster_file::{NodeEntry, CLUSTER_FILE_VERSION};
use crate::compose::ComposeInfo;
use dsync_api::types::{MemberKind, MemberStatus};

fn status(id: u64, leader: u64, version: &str, applied: u64) -> NodeStatus {
    NodeStatus {
        id,
        addr: format!("a:{id}"),
        version: version.into(),
        protocol: 1,
        role: if id == leader {
            Role::Leader
        } else {
            Role::Follower
        },
        term: 2,
        leader: Some(leader),
        last_index: 10,
        commit_index: 10,
        applied_index: applied,
        snapshot_index: 0,
        millis_since_quorum_ack: None,
        members: (1..=3)
            .map(|m| MemberStatus {
                id: m,
                addr: format!("a:{m}"),
                kind: MemberKind::Voter,
                match_index: None,
            })
            .collect(),
        peers: vec![],
    }
}

fn file(compose: bool) -> ClusterFile {
    ClusterFile {
        version: CLUSTER_FILE_VERSION,
        runtime: if compose { "compose" } else { "local" }.into(),
        binary: "/old/dsync".into(),
        created_at_ms: 0,
        compose: compose.then(|| ComposeInfo {
            project: "p".into(),
            file: "/x/docker-compose.yml".into(),
            image: "dsync:a".into(),
            auth: false,
        }),
        nodes: (1..=3u64)
            .map(|id| NodeEntry {
                id,
                addr: format!("a:{id}"),
                pid: None,
                dir: "/x".into(),
                data_dir: "/x/data".into(),
                config: "/x/node.yaml".into(),
                log: "/x/log".into(),
                version: "0.1.0".into(),
                binary: None,
            })
            .collect(),
    }
}

fn args(binary: Option<&str>, image: Option<&str>) -> UpgradeArgs {
    UpgradeArgs {
        binary: binary.map(PathBuf::from),
        image: image.map(str::to_string),
        dry_run: false,
        timeout: 1,
    }
}

#[test]
fn followers_go_first_the_leader_last_and_done_nodes_are_skipped() {
    let target = VersionInfo {
        version: "0.2.0".into(),
        protocol: 1,
    };
    let st = vec![
        status(1, 2, "0.1.0", 10),
        status(2, 2, "0.1.0", 10),
        status(3, 2, "0.2.0", 10),
    ];
    // Node 1 is on the new release but has not reported the version yet.
    let on: HashMap<u64, bool> = [(1, true), (2, false), (3, true)].into();
    let p = plan(&file(false), &st, &on, &target);
    let order: Vec<(u64, &str)> = p.iter().map(|s| (s.id, s.action)).collect();
    assert_eq!(order, vec![(1, "upgrade"), (3, "skip"), (2, "upgrade")]);
}

#[test]
fn a_restarted_node_is_ready_only_on_the_new_version_and_caught_up() {
    let observe = |v: &str, applied| -> Observed {
        vec![
            (1, Ok(status(1, 2, v, applied))),
            (2, Ok(status(2, 2, "0.1.0", 10))),
            (3, Ok(status(3, 2, "0.1.0", 10))),
        ]
    };
    let fresh = CatchUp::default;
    assert!(caught_up(1, Some("0.2.0"), 3, &observe("0.2.0", 10), &fresh()).ready());
    let r = caught_up(1, Some("0.2.0"), 3, &observe("0.1.0", 10), &fresh());
    assert!(r.not_ready[0].1.contains("reports version 0.1.0"), "{r:?}");
    let r = caught_up(1, Some("0.2.0"), 3, &observe("0.2.0", 4), &fresh());
    assert!(r.not_ready[0].1.contains("applied 4 of 10"), "{r:?}");
    assert!(caught_up(1, None, 3, &observe("0.1.0", 10), &fresh()).ready());
}

#[test]
fn a_node_just_behind_a_busy_leader_has_caught_up_once_past_an_earlier_commit() {
    // The leader (node 2) commits on; node 1's apply trails it at every poll.
    let observe = |applied, commit| -> Observed {
        let mut leader = status(2, 2, "0.2.0", commit);
        leader.commit_index = commit;
        vec![
            (1, Ok(status(1, 2, "0.2.0", applied))),
            (2, Ok(leader)),
            (3, Ok(status(3, 2, "0.2.0", commit))),
        ]
    };
    let catch_up = CatchUp::default();
    let r = caught_up(1, Some("0.2.0"), 3, &observe(95, 100), &catch_up);
    assert!(r.not_ready[0].1.contains("applied 95 of 100"), "{r:?}");
    // Still short of the current commit (200), but past the first one seen.
    assert!(caught_up(1, Some("0.2.0"), 3, &observe(190, 200), &catch_up).ready());
}

#[test]
fn each_runtime_refuses_the_other_runtimes_release() {
    let err = release(&file(true), &args(Some("/new/dsync"), None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("runs containers") && err.contains("--image"),
        "{err}"
    );
    let err = release(&file(false), &args(None, Some("dsync:b")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("runs local processes") && err.contains("--binary"),
        "{err}"
    );
    match release(&file(false), &args(Some("/new/dsync"), None)).unwrap() {
        Release::Binary(b) => assert_eq!(b, PathBuf::from("/new/dsync")),
        other => panic!("{other:?}"),
    }
}
