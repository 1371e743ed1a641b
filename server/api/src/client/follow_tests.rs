//! Leader following, against stub nodes that answer every request with 200
//! and name node 2 as the leader.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Client, ClientConfig};

/// A node `id` that names node 2 as the leader; returns its address and
/// how many requests it answered.
async fn stub(id: u64) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{}: {id}\r\n{}: 2\r\n\
         content-length: 2\r\nconnection: close\r\n\r\n{{}}",
        crate::HEADER_NODE,
        crate::HEADER_LEADER
    );
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (response, count) = (response.clone(), count.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let _ = conn.write_all(response.as_bytes()).await;
            });
        }
    });
    (addr, served)
}

/// Lets the client learn both ids (node 2 first), then prefers node 1 and
/// makes three calls; answers how many of those node 1 served.
async fn calls_kept_on_node_1(follow_leader: bool) -> usize {
    let (a, served_a) = stub(1).await;
    let (b, _) = stub(2).await;
    let mut cfg = ClientConfig::new(vec![a, b]);
    cfg.follow_leader = follow_leader;
    let client = Client::new(cfg).unwrap();
    client.prefer(1);
    client
        .call_raw::<()>(Method::GET, "/v1/status", None)
        .await
        .unwrap();
    client.prefer(0);
    for _ in 0..3 {
        client
            .call_raw::<()>(Method::GET, "/v1/status", None)
            .await
            .unwrap();
    }
    served_a.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_following_client_moves_to_the_leader_it_is_told_of() {
    assert_eq!(calls_kept_on_node_1(true).await, 1);
}

#[tokio::test]
async fn a_client_that_does_not_follow_stays_on_its_node() {
    assert_eq!(calls_kept_on_node_1(false).await, 3);
}
