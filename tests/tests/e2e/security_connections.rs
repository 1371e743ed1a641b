//! Issue 20, item 2: a connection that sends nothing cannot take a node
//! down. The header deadline counts from the accept whatever the client
//! sends (nothing, an h2c preface, half a header, a body that never comes,
//! or nothing after a first answer); one address holds at most its share
//! of connections; and a node full of silent sockets still serves clients
//! and its peers, so a cluster whose leader is flooded keeps working.

use std::time::{Duration, Instant};

use dsync_tests::{wait_until, Cluster};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::single_node::{connect_from, fresh_client, responsive, Node};

/// Everything the node sends until it closes the connection, or `None` if
/// it is still open after `limit`.
async fn until_closed(s: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match tokio::time::timeout(limit, s.read_to_end(&mut out)).await {
        Ok(_) => Some(out),
        Err(_) => None,
    }
}

/// Whether the node closed `s` without answering (at accept, or to make
/// room): a read gives end of file or a reset, not a timeout.
async fn closed_unanswered(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_half_sent_and_idle_connections_are_closed_counting_from_the_accept() {
    let node =
        Node::start("limits:\n  header_read_timeout_ms: 1000\n  body_read_timeout_ms: 1000\n")
            .await;
    // An empty SETTINGS frame after the preface: a well-formed h2c start.
    let mut h2c = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    h2c.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let cases: [(&str, &[u8]); 5] = [
        ("nothing at all", b""),
        ("an h2c preface, then nothing", &h2c),
        ("half a header", b"GET /health HTTP/1.1\r\nhost: x\r\n"),
        (
            "a body that never comes",
            b"PUT /v1/kv/k HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
        ),
        (
            "nothing after a first answer",
            b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n",
        ),
    ];
    let mut open = Vec::new();
    for (what, bytes) in cases {
        let mut s = TcpStream::connect(&node.addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        open.push((what, Instant::now(), s));
    }
    for (what, opened, mut s) in open {
        // Far above the 1 s deadline, far below "never".
        let answer = until_closed(&mut s, Duration::from_secs(15))
            .await
            .unwrap_or_else(|| panic!("{what}: still open {:?} after", opened.elapsed()));
        let text = String::from_utf8_lossy(&answer);
        if what == "a body that never comes" {
            assert!(text.starts_with("HTTP/1.1 400"), "{what}: {text}");
            assert!(text.contains("stopped arriving"), "{what}: {text}");
        }
    }
    responsive(&node, &fresh_client(), "after closing silent connections").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_holds_at_most_its_share_of_connections() {
    let node = Node::start("limits:\n  max_connections_per_client: 5\n").await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from(2, &node.addr).await.unwrap());
    }
    let mut sixth = connect_from(2, &node.addr).await.unwrap();
    assert!(
        closed_unanswered(&mut sixth).await,
        "a 6th connection from 127.0.0.2 was kept"
    );
    // Another address is served meanwhile; a slot given back is usable again.
    let mut other = connect_from(3, &node.addr).await.unwrap();
    other
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut other, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(held.pop());
    wait_until(Duration::from_secs(10), "a slot for 127.0.0.2", || async {
        let mut s = connect_from(2, &node.addr).await.ok()?;
        s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .ok()?;
        let answer = until_closed(&mut s, Duration::from_secs(5)).await?;
        answer.starts_with(b"HTTP/1.1 200").then_some(())
    })
    .await;
}

/// The leader of a 3-node cluster takes far more silent connections than
/// its limit: clients still reach it directly and through followers (whose
/// forwards are peer traffic), and nothing stalls.
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_flooded_with_silent_sockets_keeps_serving_clients_and_peers() {
    let (c, leader, follower) = three_nodes_with_max_connections(64).await;
    let term = |st: &[dsync_api::types::NodeStatus]| st.iter().map(|s| s.term).max();
    let term_before = term(&c.statuses().await);

    // 300 silent sockets from six addresses (50 each, under the per-client cap).
    let addr = c.node(leader).addr;
    let mut silent = Vec::new();
    for i in 0..300 {
        silent.push(connect_from(2 + (i % 6) as u8, &addr).await.unwrap());
    }
    let http = fresh_client();
    for round in 0..20 {
        for (via, what) in [(leader, "the leader"), (follower, "a follower")] {
            let r = http
                .put(format!("http://{}/v1/kv/flood-{round}", c.node(via).addr))
                .json(&json!({"value": round}))
                .send()
                .await
                .unwrap_or_else(|e| panic!("write {round} through {what}: {e}"));
            assert_eq!(r.status(), StatusCode::OK, "write {round} through {what}");
        }
    }
    // The silent sockets were the ones closed to make room.
    let mut closed = 0;
    for s in &mut silent {
        let mut buf = [0u8; 1];
        if matches!(
            tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        ) {
            closed += 1;
        }
    }
    assert!(
        closed >= 300 - 64,
        "only {closed} of 300 silent sockets closed"
    );
    assert_eq!(term(&c.statuses().await), term_before, "leadership changed");
}

/// A leader whose every connection slot holds a long poll (busy, so none
/// can be closed to make room) still takes a new connection from a peer:
/// a follower restarted meanwhile forwards writes to it. A client arriving
/// then is told why in JSON (503), not dropped unanswered.
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_full_of_long_polls_still_takes_peers_and_tells_clients_why() {
    let (c, leader, follower) = three_nodes_with_max_connections(24).await;
    let addr = c.node(leader).addr;

    let body = r#"{"consumer":"hold","max":1,"wait_ms":60000}"#;
    let poll = format!(
        "POST /v1/queues/idle/consume HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut polls = Vec::new();
    let refusal = loop {
        assert!(
            polls.len() < 100,
            "100 long polls and the leader is not full"
        );
        let mut s = connect_from(2 + (polls.len() % 6) as u8, &addr)
            .await
            .unwrap();
        s.write_all(poll.as_bytes()).await.unwrap();
        // A long poll answers nothing for a minute; a refusal at once.
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
            Err(_) => polls.push(s),
            Ok(Ok(n)) if n > 0 => break String::from_utf8_lossy(&buf[..n]).into_owned(),
            Ok(other) => panic!("connection {} closed unanswered: {other:?}", polls.len()),
        }
    };
    assert!(refusal.starts_with("HTTP/1.1 503"), "{refusal}");
    assert!(
        refusal.contains("no free connection for clients"),
        "{refusal}"
    );
    assert!(
        refusal.to_ascii_lowercase().contains("connection: close"),
        "{refusal}"
    );
    println!("the leader was full after {} long polls", polls.len());

    // The follower comes back with no connection to the leader, and must
    // open one to forward.
    // (`cluster up` would wait for the full leader's /health: started here.)
    c.kill9(follower);
    let node = c.node(follower);
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(&node.log)
        .unwrap();
    let child = std::process::Command::new(&c.bin)
        .arg("server")
        .arg("--config")
        .arg(&node.config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _restarted = KillOnDrop(child);
    let http = fresh_client();
    let health = format!("http://{}/health", node.addr);
    wait_until(Duration::from_secs(30), "the follower back", || async {
        let r = http.get(&health).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    let back = c.client_for(follower);
    wait_until(
        Duration::from_secs(30),
        "the follower to know the leader",
        || async {
            let s = back.status().await.ok()?;
            (s.leader == Some(leader)).then_some(())
        },
    )
    .await;
    for i in 0..5 {
        let r = http
            .put(format!("http://{}/v1/kv/full-{i}", c.node(follower).addr))
            .json(&json!({"value": i}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("write {i} through the restarted follower: {e}"));
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::OK,
            "write {i} through the restarted follower: {text}"
        );
    }
    // The long polls were kept throughout.
    let mut kept = 0;
    for s in &mut polls {
        let mut buf = [0u8; 1];
        if tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf))
            .await
            .is_err()
        {
            kept += 1;
        }
    }
    assert_eq!(kept, polls.len(), "long polls closed to make room");
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A 3-node cluster whose nodes take at most `max` connections each, its
/// leader and a follower.
async fn three_nodes_with_max_connections(max: usize) -> (Cluster, u64, u64) {
    let c = Cluster::up(3, &[]);
    c.dsync_ok(&["cluster", "down"]);
    for n in c.nodes() {
        let yaml = c.cluster_dir().join(format!("node-{}/node.yaml", n.id));
        let mut text = std::fs::read_to_string(&yaml).unwrap();
        text.push_str(&format!("limits:\n  max_connections: {max}\n"));
        std::fs::write(&yaml, text).unwrap();
    }
    c.dsync_ok(&["cluster", "up"]);
    let leader = c.wait_leader(3).await;
    let follower = (1..=3).find(|i| *i != leader).unwrap();
    (c, leader, follower)
}
