//! One `dsync server` started from a YAML configuration of the test's own,
//! for the limits that `cluster up` doesn't expose.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dsync_tests::{dsync_bin, wait_until};
use reqwest::StatusCode;
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};

/// One `dsync server` with its own configuration, killed on drop.
pub struct Node {
    child: Child,
    pub addr: String,
    scheme: &'static str,
    dir: tempfile::TempDir,
}

impl Node {
    pub async fn start(extra_yaml: &str) -> Node {
        Node::spawn(extra_yaml, false).await
    }

    /// A node serving TLS with certificates that `dsync cert init` issued
    /// (its CA at [`Node::ca`]).
    pub async fn start_tls(extra_yaml: &str) -> Node {
        Node::spawn(extra_yaml, true).await
    }

    async fn spawn(extra_yaml: &str, tls: bool) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("node.yaml");
        let data: PathBuf = dir.path().join("data");
        let tls_yaml = if tls {
            let certs = dir.path().join("tls");
            let out = Command::new(dsync_bin())
                .args(["cert", "init", "--nodes", "1", "--out"])
                .arg(&certs)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(out.status.success(), "cert init: {out:?}");
            format!(
                "tls:\n  cert_file: {}\n  key_file: {}\n  ca_file: {}\n",
                certs.join("node-1.pem").display(),
                certs.join("node-1.key").display(),
                certs.join("ca.pem").display(),
            )
        } else {
            String::new()
        };
        std::fs::write(
            &config,
            format!(
                "id: 1\nlisten: {addr}\ndata_dir: {}\nbootstrap: true\n{tls_yaml}{extra_yaml}",
                data.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(dsync_bin())
            .arg("server")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let node = Node {
            child,
            addr,
            scheme: if tls { "https" } else { "http" },
            dir,
        };
        let http = node.client();
        wait_until(Duration::from_secs(30), "the node to be ready", || async {
            let r = http.get(node.url("/ready")).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        node
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// The CA of a node started with [`Node::start_tls`].
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("tls/ca.pem")
    }

    /// Like [`fresh_client`], trusting the node's CA if it serves TLS.
    pub fn client(&self) -> reqwest::Client {
        let b = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10));
        if self.scheme == "http" {
            return b.build().unwrap();
        }
        let ca = reqwest::Certificate::from_pem(&std::fs::read(self.ca()).unwrap()).unwrap();
        b.use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .build()
            .unwrap()
    }

    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that opens a fresh connection per request: pooled connections
/// may be closed by the node's header read timeout while idle.
pub fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A health check and a replicated KV write answer within a liveness
/// ceiling (not a speed claim: a stalled node misses it by far).
pub async fn responsive(node: &Node, http: &reqwest::Client, what: &str) {
    const CEILING: Duration = Duration::from_secs(5);
    let round_trip = async {
        let r = http.get(node.url("/health")).send().await;
        assert!(
            r.is_ok_and(|r| r.status().is_success()),
            "health failed {what}"
        );
        let r = http
            .put(node.url("/v1/kv/probe"))
            .json(&json!({"value": what}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("kv put failed {what}: {e}"));
        assert_eq!(r.status(), StatusCode::OK, "kv put {what}");
    };
    tokio::time::timeout(CEILING, round_trip)
        .await
        .unwrap_or_else(|_| panic!("no answer within {CEILING:?} {what}"));
}

/// A connection to `addr` from the loopback address `127.0.0.<from>`.
pub async fn connect_from(from: u8, addr: &str) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, from], 0)))?;
    socket.connect(addr.parse().unwrap()).await
}
