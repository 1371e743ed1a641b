//! Which 503s the client retries, against a stub server that answers every
//! request with the same 503.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Client, ClientConfig, ClientError};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::types::Consistency;

/// The `x-dsync-request-id` of each request a stub answered (`None` where
/// the request had none).
type Seen = Arc<Mutex<Vec<Option<String>>>>;

/// Serves `error` as a 503 to every request; returns its address and what
/// it was sent.
async fn stub(error: ApiError) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let body = serde_json::to_string(&ErrorBody { error }).unwrap();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let seen = Seen::default();
    let served = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let response = response.clone();
            let served = served.clone();
            tokio::spawn(async move {
                // Read the whole request (headers and the body they announce).
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = conn.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if request_complete(&buf) {
                        break;
                    }
                }
                served.lock().unwrap().push(request_id(&buf));
                let _ = conn.write_all(response.as_bytes()).await;
            });
        }
    });
    (addr, seen)
}

fn request_id(buf: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(buf);
    let prefix = format!("{}:", crate::HEADER_REQUEST_ID);
    text.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix(&prefix)
            .map(|v| v.trim().to_string())
    })
}

fn count(seen: &Seen) -> usize {
    seen.lock().unwrap().len()
}

fn request_complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    buf.len() >= end + 4 + len
}

fn client(addr: String) -> Client {
    let mut cfg = ClientConfig::new(vec![addr]);
    cfg.retry_for = Duration::from_millis(400);
    Client::new(cfg).unwrap()
}

#[tokio::test]
async fn a_write_without_a_request_id_whose_outcome_is_unknown_is_sent_once() {
    let (addr, seen) = stub(ApiError::outcome_unknown("answer lost")).await;
    let err = client(addr).queue_redrive("t").await.unwrap_err();
    match &err {
        ClientError::Api { status, error } => {
            assert_eq!(*status, 503);
            assert!(error.is_outcome_unknown(), "{error:?}");
        }
        other => panic!("expected the 503, got {other:?}"),
    }
    assert_eq!(
        *seen.lock().unwrap(),
        vec![None],
        "the write was sent again"
    );
}

#[tokio::test]
async fn a_deduplicated_write_is_resent_with_one_request_id() {
    let (addr, seen) = stub(ApiError::outcome_unknown("answer lost")).await;
    let c = client(addr);
    let err = c.kv_put("k", serde_json::json!(1), None).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unavailable));
    let ids = seen.lock().unwrap().clone();
    assert!(ids.len() > 1, "not resent: {ids:?}");
    assert!(ids[0].is_some(), "no request id: {ids:?}");
    assert!(ids.iter().all(|i| *i == ids[0]), "the id changed: {ids:?}");

    // The next call is another write, with another id.
    let _ = c.kv_put("k", serde_json::json!(2), None).await;
    let ids = seen.lock().unwrap().clone();
    assert_ne!(ids.last(), ids.first());
}

#[tokio::test]
async fn reads_and_plain_unavailable_writes_are_retried() {
    let (addr, seen) = stub(ApiError::outcome_unknown("answer lost")).await;
    let err = client(addr)
        .kv_get("k", Consistency::Linearizable)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unavailable));
    assert!(count(&seen) > 1, "a read was not retried");

    let (addr, seen) = stub(ApiError::new(ErrorCode::Unavailable, "no leader")).await;
    let err = client(addr).queue_redrive("t").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unavailable));
    assert!(
        count(&seen) > 1,
        "a write refused before it reached the leader was not retried"
    );
}
