//! How the client's breakers hold calls back, against a stub that answers
//! every request with `{}` after a short delay.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Client, ClientConfig};
use crate::breaker::BreakerState;

/// When each request arrived and when its answer was written.
type Log = Arc<Mutex<Vec<(Instant, Instant)>>>;

/// Long enough that a second call starts while the first is unanswered.
const ANSWER_DELAY: Duration = Duration::from_millis(200);

fn serve(listener: TcpListener) -> Log {
    let log = Log::default();
    let seen = log.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let arrived = Instant::now();
                tokio::time::sleep(ANSWER_DELAY).await;
                let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
                let _ = conn.write_all(answer.as_bytes()).await;
                seen.lock().unwrap().push((arrived, Instant::now()));
            });
        }
    });
    log
}

#[tokio::test]
async fn an_open_breaker_lets_one_probe_through_after_its_cooldown_and_then_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut cfg = ClientConfig::new(vec![addr]);
    cfg.retry_for = Duration::from_secs(10);
    let c = Client::new(cfg).unwrap();
    for _ in 0..3 {
        c.failed(0, true);
    }
    let ready = {
        let s = c.lock();
        assert_eq!(s.endpoints[0].breaker.state(), BreakerState::Open);
        s.endpoints[0].breaker.ready_at(Instant::now())
    };
    let log = serve(listener);

    let first = tokio::spawn({
        let c = c.clone();
        async move { c.call_raw::<()>(Method::GET, "/a", None).await }
    });
    // The second call starts once the first is the probe in flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.lock().endpoints[0].breaker.state() != BreakerState::HalfOpen {
        assert!(Instant::now() < deadline, "no probe went");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = c.call_raw::<()>(Method::GET, "/b", None).await;
    assert_eq!(second.unwrap(), b"{}");
    assert_eq!(first.await.unwrap().unwrap(), b"{}");

    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 2, "{log:?}");
    let (probe_arrived, probe_answered) = log[0];
    assert!(probe_arrived >= ready, "a request went before the cooldown");
    assert!(
        log[1].0 >= probe_answered,
        "a second request went while the probe was in flight"
    );
    assert_eq!(c.lock().endpoints[0].breaker.state(), BreakerState::Closed);
}
