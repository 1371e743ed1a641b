//! [`ensure`] against a stub node that serves `GET /v1/shards` from a
//! scripted state and answers `POST /v1/shards` as told.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dsync_api::shards::{GroupStatus, ShardMap, ShardsStatus};
use dsync_api::{Client, ClientConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::ensure;

#[derive(Clone, Copy)]
enum Post {
    /// 201 with the first map of 5 nodes, which GET then shows.
    Create,
    /// 409; with `committed`, a map of 4 groups shows up (another init won).
    Conflict { committed: bool },
    /// What a node from before queue groups answers.
    NotAllowed,
}

struct Node {
    map: ShardMap,
    control_topics: u64,
    post: Post,
    posts: usize,
}

fn reply(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn answer(node: &Mutex<Node>, request: &str) -> String {
    let mut n = node.lock().unwrap();
    if request.starts_with("GET /v1/shards") {
        let control = GroupStatus {
            id: 0,
            holds_topics: n.map.groups.is_empty(),
            leader: Some(1),
            term: 1,
            last_index: 1,
            replicas: vec![],
            topics: n.control_topics,
            depth: n.control_topics,
        };
        let s = ShardsStatus {
            node: 1,
            map: n.map.clone(),
            groups: vec![control],
        };
        return reply("200 OK", &serde_json::to_string(&s).unwrap());
    }
    n.posts += 1;
    let conflict = r#"{"error":{"code":"conflict","message":"refused"}}"#;
    match n.post {
        Post::Create => {
            n.map = ShardMap::initial(&[1, 2, 3, 4, 5], 4, 3).unwrap();
            reply("201 Created", &serde_json::to_string(&n.map).unwrap())
        }
        Post::Conflict { committed } => {
            if committed {
                n.map = ShardMap::initial(&[1, 2, 3, 4, 5], 4, 3).unwrap();
            }
            reply("409 Conflict", conflict)
        }
        Post::NotAllowed => reply("405 Method Not Allowed", ""),
    }
}

/// A stub node in `state`; returns a client of it and the state.
async fn stub(map: ShardMap, control_topics: u64, post: Post) -> (Client, Arc<Mutex<Node>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let node = Arc::new(Mutex::new(Node {
        map,
        control_topics,
        post,
        posts: 0,
    }));
    let served = node.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let node = served.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                // Headers, then the body its content-length announces.
                loop {
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let response = answer(&node, &String::from_utf8_lossy(&buf));
                let _ = conn.write_all(response.as_bytes()).await;
            });
        }
    });
    let mut config = ClientConfig::new(vec![addr]);
    config.retry_for = Duration::from_millis(500);
    (Client::new(config).unwrap(), node)
}

fn four_groups() -> ShardMap {
    ShardMap::initial(&[1, 2, 3, 4, 5], 4, 3).unwrap()
}

#[tokio::test]
async fn a_cluster_without_groups_gets_the_map_the_node_commits() {
    let (client, node) = stub(ShardMap::default(), 0, Post::Create).await;
    let e = ensure(&client, 4, Some(3)).await.unwrap();
    assert!(e.created);
    assert_eq!(e.map, four_groups());
    assert_eq!(node.lock().unwrap().posts, 1);
}

#[tokio::test]
async fn the_same_g_is_not_initialized_again_and_another_g_is_refused() {
    let (client, node) = stub(four_groups(), 0, Post::Create).await;
    let e = ensure(&client, 4, None).await.unwrap();
    assert!(!e.created);
    let err = ensure(&client, 8, None).await.unwrap_err().to_string();
    assert!(
        err.contains("already has 4 queue group(s)") && err.contains("not 8"),
        "{err}"
    );
    assert_eq!(node.lock().unwrap().posts, 0, "never posted");
}

#[tokio::test]
async fn a_conflict_from_topics_in_the_control_group_says_to_drain_them() {
    let (client, _) = stub(ShardMap::default(), 3, Post::Conflict { committed: false }).await;
    let err = ensure(&client, 4, None).await.unwrap_err().to_string();
    assert!(err.starts_with("conflict: refused"), "{err}");
    assert!(
        err.contains("holds 3 topic(s)") && err.contains("Drain them"),
        "{err}"
    );
}

#[tokio::test]
async fn a_conflict_from_a_map_committed_meanwhile_is_the_existing_map() {
    let (client, _) = stub(ShardMap::default(), 0, Post::Conflict { committed: true }).await;
    let e = ensure(&client, 4, None).await.unwrap();
    assert!(!e.created);
    assert_eq!(e.map, four_groups());
}

#[tokio::test]
async fn nodes_from_before_queue_groups_are_named_as_such() {
    let (client, _) = stub(ShardMap::default(), 0, Post::NotAllowed).await;
    let err = ensure(&client, 4, None).await.unwrap_err().to_string();
    assert!(
        err.contains("do not support queue groups") && err.contains("HTTP 405"),
        "{err}"
    );
}
