//! The accept loop: axum's router over hyper, with what `axum::serve` does
//! not offer, so that neither many, slow nor silent clients can exhaust the
//! node:
//! - a cap on open connections and on those from one client address
//!   ([`conns`]), making room by closing the oldest idle connection;
//! - a deadline for a connection's first request counted from the accept,
//!   and for each later one from the end of the previous (as Go's
//!   `ReadHeaderTimeout` and `IdleTimeout`), whatever the protocol: plain
//!   HTTP/1, h2c, or TLS before and after the handshake;
//! - plain HTTP sent to a TLS port answered with a JSON 400 ([`plain`]);
//! - a request head that hyper would refuse with an empty answer (bad
//!   syntax or `Content-Length`, too large) answered with a JSON error by
//!   the router instead ([`frame`]);
//! - a request body that stops arriving fails instead of holding its
//!   handler;
//! - and the remote address of each connection for per-client limits.

pub mod conns;
mod frame;
mod head_check;
mod plain;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

use tokio_rustls::TlsAcceptor;

pub use self::conns::ConnMark;
use self::conns::{Conns, Refusal, Slot};
pub use self::head_check::Malformed;

/// What a request's connection tells about it, attached to each request.
#[derive(Clone)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    /// The connection's handle in the connection table.
    pub mark: ConnMark,
    /// The client presented a certificate signed by the cluster CA
    /// (rustls verified the chain during the handshake).
    pub peer_certificate: bool,
}

/// How long shutdown waits for open requests (long polls end sooner).
const DRAIN: Duration = Duration::from_secs(10);

/// The connection limits of `limits:` in the node configuration.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    pub max_connections: usize,
    /// 0 = no cap per client address.
    pub max_connections_per_client: usize,
    /// From the accept (or the end of the previous request) to a request.
    pub header_read_timeout: Duration,
    /// The longest a request body may send nothing.
    pub body_read_timeout: Duration,
    /// The HTTP parser's caps on a request head (bytes, header fields),
    /// above the router's own limits, whose errors say which limit; past
    /// these, [`frame`] refuses the head before the parser does.
    pub parser_max_head_bytes: usize,
    pub parser_max_headers: usize,
}

pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let conns = Conns::new(limits.max_connections, limits.max_connections_per_client);
    let (stop_tx, stop_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let slot = match conns.admit(remote.ip()) {
            Ok(slot) => slot,
            Err(Refusal::PerClient) => {
                tracing::debug!(%remote, "per-client connection limit reached and the room kept for peers is taken; closing a new connection");
                continue;
            }
            Err(Refusal::Full) => {
                tracing::debug!(%remote, "connection limit reached, none idle, and the room kept for peers is taken; closing a new connection");
                continue;
            }
        };
        // Small request/response pairs: waiting to coalesce only adds latency.
        let _ = tcp.set_nodelay(true);
        let conn = Connection {
            app: app.clone(),
            remote,
            limits: limits.clone(),
            stop: stop_rx.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let timeout = conn.limits.header_read_timeout;
            tokio::select! {
                _ = conn.run(tcp, tls, &slot) => {}
                _ = slot.evicted() => {
                    tracing::debug!(%remote, "closing an idle connection to make room for a new one");
                }
                _ = slot.silent_for(timeout) => {
                    tracing::debug!(%remote, ?timeout, "closing a connection that sent no request in time");
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(());
    drop(stop_rx);
    // Every connection task holds a receiver; when all are gone, all are done.
    let _ = tokio::time::timeout(DRAIN, stop_tx.closed()).await;
}

struct Connection {
    app: Router,
    remote: SocketAddr,
    limits: ServeLimits,
    stop: watch::Receiver<()>,
}

impl Connection {
    async fn run(self, tcp: tokio::net::TcpStream, tls: Option<TlsAcceptor>, slot: &Slot) {
        match tls {
            None => self.serve(tcp, false, slot).await,
            Some(acceptor) => {
                // The handshake counts against the first request's deadline,
                // and so does this wait for its first byte.
                if plain::is_plain_http(&tcp).await {
                    tracing::debug!(remote = %self.remote, "plain HTTP on the TLS port");
                    return plain::refuse(tcp).await;
                }
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let peer = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .is_some_and(|c| !c.is_empty());
                self.serve(stream, peer, slot).await
            }
        }
    }

    async fn serve<I>(self, io: I, peer_certificate: bool, slot: &Slot)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            app,
            remote,
            limits,
            mut stop,
        } = self;
        let mark = slot.mark();
        let body_timeout = limits.body_read_timeout;
        let verdicts = Arc::new(frame::Verdicts::default());
        let io = frame::Framer::new(
            io,
            verdicts.clone(),
            limits.parser_max_head_bytes,
            limits.parser_max_headers,
        );
        let svc = tower::service_fn(move |req: Request<Incoming>| {
            let busy = mark.begin();
            let mut req = req.map(|b| Body::new(TimeoutBody::new(body_timeout, b)));
            if let Some(why) = verdicts.next_request() {
                // The stand-in for a head hyper would have refused.
                req.extensions_mut().insert(why);
            }
            // One extension, not three: each insert boxes its value.
            req.extensions_mut().insert(ConnInfo {
                remote,
                mark: mark.clone(),
                peer_certificate,
            });
            let call = app.clone().oneshot(req);
            async move {
                let resp = call.await?;
                // Busy until the body is sent: a stream or a long poll is
                // not an idle connection.
                Ok::<_, std::convert::Infallible>(resp.map(|b| {
                    Body::new(Held {
                        body: b,
                        _busy: busy,
                    })
                }))
            }
        });
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.parser_max_head_bytes)
            .max_headers(limits.parser_max_headers);
        builder
            .http2()
            .max_header_list_size(u32::try_from(limits.parser_max_head_bytes).unwrap_or(u32::MAX));
        let conn =
            builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(svc));
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = stop.changed() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(DRAIN, conn).await;
            }
        }
    }
}

/// A response body that keeps its connection marked busy until it is done.
struct Held {
    body: Body,
    /// Dropped with the body: the request is over.
    _busy: conns::Busy,
}

impl http_body::Body for Held {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
