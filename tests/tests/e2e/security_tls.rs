//! Issue 9, acceptance 2: `cluster up --tls` forms a cluster over mutual TLS;
//! a peer with a certificate from another CA can neither send Raft RPCs nor
//! join. Issue 20, item 8: plain HTTP on the TLS port is answered with a
//! JSON 400 that says so; item 2: a connection silent after its handshake
//! is closed by the header deadline, counted from the accept.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use dsync_tests::{dsync_bin, wait_until, Cluster};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::single_node::{responsive, Node};

fn client(ca: &Path, identity: Option<(&Path, &Path)>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(10));
    if let Some((cert, key)) = identity {
        let mut pem = std::fs::read(cert).unwrap();
        pem.extend(std::fs::read(key).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

/// A raw TLS client trusting `ca`, with no certificate of its own.
fn connector(ca: &Path) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_silent_after_its_handshake_is_closed_counting_from_the_accept() {
    const HEADER_TIMEOUT: Duration = Duration::from_millis(1000);
    let node = Node::start_tls(&format!(
        "limits:\n  header_read_timeout_ms: {}\n",
        HEADER_TIMEOUT.as_millis()
    ))
    .await;
    // Taken before the connect, so before the node's accept: the node may
    // not close sooner than the deadline after this.
    let opened = tokio::time::Instant::now();
    let tcp = TcpStream::connect(&node.addr).await.unwrap();
    let mut tls = connector(&node.ca())
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .expect("the TLS handshake");
    let handshake = opened.elapsed();
    assert!(
        handshake < HEADER_TIMEOUT,
        "the handshake took {handshake:?}: nothing left to test"
    );

    // Nothing is sent. Far above the deadline, far below "never".
    let bound = HEADER_TIMEOUT * 5;
    let mut seen = Vec::new();
    let read = tokio::time::timeout_at(opened + bound, tls.read_to_end(&mut seen)).await;
    let closed = opened.elapsed();
    // End of file, or an error (a close without close_notify, a reset):
    // either way the node let go of the connection.
    assert!(
        read.is_ok(),
        "still open {closed:?} after the connect, with a {HEADER_TIMEOUT:?} header deadline"
    );
    // Less a little: the node's connection clock counts whole milliseconds.
    assert!(
        closed >= HEADER_TIMEOUT - Duration::from_millis(10),
        "closed after {closed:?}, before the {HEADER_TIMEOUT:?} deadline: {read:?}"
    );

    responsive(
        &node,
        &node.client(),
        "after closing a silent TLS connection",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mtls_cluster_forms_and_refuses_peers_of_another_ca() {
    let c = Cluster::up_with(3, &[], &["--tls"]);
    let tls = c.cluster_dir().join("tls");
    let ca = tls.join("ca.pem");
    let nodes = c.nodes();
    assert!(nodes.iter().all(|n| n.addr.starts_with("https://")));

    // The CLI finds the CA by itself; the cluster replicates over mTLS.
    c.dsync_ok(&["kv", "put", "k", "1"]);
    let out = c.dsync_ok(&["cluster", "status", "-o", "json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["quorum"], true, "{status}");

    // Plain HTTP is not served: it is told so in plain HTTP, in JSON, and
    // the connection is closed.
    let plain = nodes[0].addr.replace("https://", "http://");
    let r = reqwest::get(format!("{plain}/health")).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_argument", "{body}");
    assert_eq!(
        body["error"]["message"], "plain HTTP sent to a TLS port: use https://",
        "{body}"
    );
    let mut s = TcpStream::connect(plain.trim_start_matches("http://"))
        .await
        .unwrap();
    s.write_all(b"POST /v1/kv/k HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the node closes the connection after its answer")
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert!(
        text.ends_with(r#""message":"plain HTTP sent to a TLS port: use https://"}}"#),
        "{text}"
    );

    // Another CA's node certificate: the handshake itself is refused.
    let other = c.dir.path().join("other-ca");
    c.dsync_ok(&[
        "cert",
        "init",
        "--out",
        other.to_str().unwrap(),
        "--nodes",
        "1",
    ]);
    let rogue = client(
        &ca,
        Some((&other.join("node-1.pem"), &other.join("node-1.key"))),
    );
    let no_cert = client(&ca, None);
    let own = client(
        &ca,
        Some((&tls.join("node-1.pem"), &tls.join("node-1.key"))),
    );
    for n in &nodes {
        for path in ["/raft/vote", "/raft/append", "/raft/forward"] {
            let url = format!("{}{path}", n.addr);
            let r = rogue.post(&url).send().await;
            assert!(
                r.is_err() || r.as_ref().unwrap().status() == StatusCode::FORBIDDEN,
                "a certificate of another CA reached {url}: {:?}",
                r.map(|r| r.status())
            );
            // No certificate: refused by the guard, with or without a token.
            let r = no_cert.post(&url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{url}");
            // The cluster's own certificate passes the guard (the empty body
            // is then refused by the Raft handler, in JSON).
            let r = own.post(&url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{url}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "invalid_argument", "{url}: {body}");
        }
        let r = no_cert
            .get(format!("{}/health", n.addr))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "clients need no certificate");
    }

    // Without token auth, the CA's certificates are the admin credential:
    // a client without one may write but not change membership.
    let members_url = format!("{}/v1/cluster/members", nodes[0].addr);
    let r = no_cert
        .post(&members_url)
        .json(&serde_json::json!({"id": 9, "addr": "127.0.0.1:1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // A node with another CA's certificate cannot join.
    let dir = c.dir.path().join("rogue");
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("node.yaml");
    std::fs::write(
        &config,
        format!(
            "id: 9\nlisten: 127.0.0.1:{port}\ndata_dir: {}\njoin: [\"{}\"]\ntls:\n  cert_file: {}\n  key_file: {}\n  ca_file: {}\n",
            dir.join("data").display(),
            nodes[0].addr,
            other.join("node-1.pem").display(),
            other.join("node-1.key").display(),
            // It trusts the cluster's CA, so only its own certificate is wrong.
            ca.display(),
        ),
    )
    .unwrap();
    let log = dir.join("server.log");
    let mut child = Command::new(dsync_bin())
        .args(["server", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("err.log")).unwrap())
        .env_remove("DSYNC_CA_CERT")
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        "two refused join attempts",
        || async {
            let text = std::fs::read_to_string(dir.join("err.log")).unwrap_or_default();
            (text.matches("join not done yet").count() >= 2).then_some(())
        },
    )
    .await;
    let members = own
        .get(format!("{}/v1/status", nodes[0].addr))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let ids: Vec<u64> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert!(!ids.contains(&9), "the rogue node joined: {members}");
    assert_eq!(ids.len(), 3);
}
