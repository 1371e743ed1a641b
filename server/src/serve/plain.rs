//! Plain HTTP sent to a TLS port: answered in plain HTTP with a JSON 400
//! that says so (as etcd's "Client sent an HTTP request to an HTTPS
//! server."), instead of a failed handshake the client reports as a
//! garbled or reset connection.

use dsync_api::{ApiError, ErrorBody, ErrorCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub const MESSAGE: &str = "plain HTTP sent to a TLS port: use https://";

/// A request head read before answering is at most this long; the rest
/// is drained unread.
const HEAD_LIMIT: usize = 16 * 1024;
/// What is drained after the answer, so that closing with unread data does
/// not reset the connection before the client has read it.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// Whether the connection opens with plain text rather than a TLS record:
/// a TLS handshake starts with 0x16, an HTTP request with its method's
/// letters. Waits for the first byte (the caller's deadline bounds it).
pub async fn is_plain_http(tcp: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(tcp.peek(&mut first).await, Ok(1) if first[0].is_ascii_alphabetic())
}

/// Reads the request's head, answers 400 with the JSON error and closes.
pub async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while head.len() < HEAD_LIMIT && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match io.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    if io.write_all(&response()).await.is_err() || io.shutdown().await.is_err() {
        return;
    }
    let mut drained = 0;
    while drained < DRAIN_LIMIT {
        match io.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

fn response() -> Vec<u8> {
    let body = serde_json::to_string(&ErrorBody {
        error: ApiError::new(ErrorCode::InvalidArgument, MESSAGE),
    })
    .expect("an error body serializes");
    format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_text_is_told_apart_from_a_tls_record() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for (first, plain) in [
            (&b"GET / HTTP/1.1\r\n"[..], true),
            (&[0x16, 3, 1][..], false),
        ] {
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(first).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            assert_eq!(is_plain_http(&server).await, plain, "{first:?}");
            // Peeking consumed nothing.
            let mut again = vec![0u8; first.len()];
            let mut server = server;
            server.read_exact(&mut again).await.unwrap();
            assert_eq!(again, first);
        }
    }

    #[tokio::test]
    async fn the_refusal_is_a_json_400_after_the_head_then_a_close() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let task = tokio::spawn(refuse(server));
        client
            .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        while !out.ends_with(b"}}") {
            let n = client.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&out));
            out.extend_from_slice(&buf[..n]);
        }
        drop(client);
        task.await.unwrap();
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let e: ErrorBody = serde_json::from_str(body).unwrap();
        assert_eq!(e.error.code, ErrorCode::InvalidArgument);
        assert_eq!(e.error.message, MESSAGE);
    }
}
