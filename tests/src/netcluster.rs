//! A local cluster whose nodes run in network namespaces, so the nemesis
//! can partition them. It is an ordinary `dsync cluster up` folder: the
//! cluster file names, per node, a wrapper that starts `dsync` inside that
//! node's namespace, so `cluster up` (start and restart), `cluster down`,
//! kill -9 and SIGSTOP all work as on loopback.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::Serialize;

use crate::netns::Net;
use crate::{dsync_bin, Cluster};

/// Port every node listens on (each has its own address).
const PORT: u16 = 7401;

#[derive(Serialize)]
struct FileYaml {
    version: u32,
    runtime: &'static str,
    binary: String,
    created_at_ms: u64,
    nodes: Vec<EntryYaml>,
}

#[derive(Serialize)]
struct EntryYaml {
    id: u64,
    addr: String,
    pid: Option<u32>,
    dir: String,
    data_dir: String,
    config: String,
    log: String,
    version: &'static str,
    binary: String,
}

#[derive(Serialize)]
struct NodeYaml {
    id: u64,
    listen: String,
    data_dir: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    bootstrap: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    join: Vec<String>,
}

impl Cluster {
    /// Starts `n` nodes, each in its own network namespace: node 1
    /// bootstraps, the others join through it. Panics with the reason when
    /// namespaces cannot be created (see [`crate::netns::OPT_OUT_ENV`]).
    pub fn up_in_netns(n: u64) -> Cluster {
        let ids: Vec<u64> = (1..=n).collect();
        let net = Net::create(&ids).unwrap_or_else(|e| panic!("{e}"));
        let c = Cluster {
            dir: tempfile::Builder::new()
                .prefix("dsync-netns-")
                .tempdir()
                .expect("tempdir"),
            bin: dsync_bin(),
            env: Vec::new(),
            net: Some(net),
        };
        let dir = c.cluster_dir();
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let net = c.net.as_ref().expect("net");
        let addr = |id: u64| format!("{}:{PORT}", net.addr(id));
        let mut nodes = Vec::new();
        for &id in &ids {
            let node_dir = dir.join(format!("node-{id}"));
            let data_dir = node_dir.join("data");
            std::fs::create_dir_all(&data_dir).expect("node dir");
            let config = node_dir.join("node.yaml");
            write_yaml(
                &config,
                &NodeYaml {
                    id,
                    listen: addr(id),
                    data_dir: path(&data_dir),
                    bootstrap: id == 1,
                    join: if id == 1 { vec![] } else { vec![addr(1)] },
                },
            );
            let wrapper = node_dir.join("dsync-in-netns");
            std::fs::write(
                &wrapper,
                format!(
                    "#!/bin/sh\nexec ip netns exec {} {} \"$@\"\n",
                    net.ns(id),
                    c.bin.display()
                ),
            )
            .expect("write wrapper");
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
                .expect("chmod wrapper");
            nodes.push(EntryYaml {
                id,
                addr: addr(id),
                pid: None,
                dir: path(&node_dir),
                data_dir: path(&data_dir),
                config: path(&config),
                log: path(&node_dir.join("server.log")),
                version: env!("CARGO_PKG_VERSION"),
                binary: path(&wrapper),
            });
        }
        write_yaml(
            &dir.join("cluster.yaml"),
            &FileYaml {
                version: 1,
                runtime: "local",
                binary: path(&c.bin),
                created_at_ms: 0,
                nodes,
            },
        );
        // An existing cluster file: `cluster up` starts every node from it.
        c.dsync_ok(&["cluster", "up", "--timeout", "60"]);
        c
    }

    /// The namespaces, for clusters made by [`up_in_netns`](Self::up_in_netns).
    pub fn net(&self) -> Option<&Net> {
        self.net.as_ref()
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn write_yaml<T: Serialize>(file: &Path, value: &T) {
    let text = serde_yaml::to_string(value).expect("yaml");
    std::fs::write(file, text).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
}
