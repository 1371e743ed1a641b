//! An HTTP/1 connection's bytes on their way to hyper, followed one
//! request at a time. Hyper answers a head it refuses (malformed, a bad
//! `Content-Length`, too large) by itself with an empty body and no hook
//! to change it; so each head is checked first ([`head_check`], hyper's
//! own rules), and one hyper would refuse is replaced by a stand-in
//! request, which the router answers with the JSON error (the service
//! marks it with the [`Malformed`] reason; see [`Verdicts`]). The
//! connection then ends, as hyper would have ended it, after the answers
//! to the requests before it, in order.
//!
//! Only what hyper would frame the same way is followed: a `Content-Length`
//! body is counted; after a chunked body, an upgrade request or an HTTP/2
//! preface the rest of the connection goes to hyper unread.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::head_check::{self, Framing, Malformed, Parsed};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// What hyper parses in place of a refused head; it closes after answering.
const STAND_IN: &[u8] = b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n";
/// The most read straight into hyper's buffer at once.
const DIRECT_READ: usize = 64 * 1024;
/// Read after a refusal's answer, so that closing with unread data does
/// not reset the connection before the client has read the answer.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// Which request of a connection is a stand-in, and why.
#[derive(Default)]
pub struct Verdicts {
    refused: Mutex<Option<(u64, Malformed)>>,
    requests: AtomicU64,
}

impl Verdicts {
    /// Counts one request given to the service (hyper gives them in the
    /// order of their heads); the reason if it is the stand-in.
    pub fn next_request(&self) -> Option<Malformed> {
        let n = self.requests.fetch_add(1, Ordering::AcqRel) + 1;
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        match *refused {
            Some((at, _)) if at == n => refused.take().map(|r| r.1),
            _ => None,
        }
    }
}

enum State {
    /// The connection's first bytes: HTTP/1 or an HTTP/2 preface.
    Preface,
    Head,
    Body(u64),
    Through,
    /// The stand-in is out; nothing follows.
    Refused,
}

pub struct Framer<I> {
    io: I,
    /// Read from `io`, not yet given to hyper; the first `ready` bytes are
    /// cleared for it.
    buf: Vec<u8>,
    ready: usize,
    state: State,
    eof: bool,
    shut: bool,
    drained: usize,
    max_head: usize,
    max_headers: usize,
    heads: u64,
    verdicts: Arc<Verdicts>,
}

impl<I> Framer<I> {
    /// `max_head` and `max_headers` are hyper's (`max_buf_size`, `max_headers`).
    pub fn new(io: I, verdicts: Arc<Verdicts>, max_head: usize, max_headers: usize) -> Self {
        Framer {
            io,
            buf: Vec::new(),
            ready: 0,
            state: State::Preface,
            eof: false,
            shut: false,
            drained: 0,
            max_head,
            max_headers,
            heads: 0,
            verdicts,
        }
    }

    /// Moves on with what is buffered; false if more input is needed.
    fn advance(&mut self) -> bool {
        match self.state {
            State::Preface => {
                let n = self.buf.len().min(H2_PREFACE.len());
                if self.buf[..n] != H2_PREFACE[..n] {
                    self.state = State::Head;
                } else if n == H2_PREFACE.len() {
                    self.state = State::Through;
                } else {
                    return false;
                }
                true
            }
            State::Head if self.buf.is_empty() => false,
            State::Head => match head_check::parse(&self.buf, self.max_headers) {
                // Hyper's buffer holds at most `max_head` bytes.
                Ok(Parsed::Complete { len, .. }) if len > self.max_head => {
                    self.refuse(Malformed::HeadTooLarge(self.max_head))
                }
                Ok(Parsed::Complete { len, framing }) => {
                    self.heads += 1;
                    self.ready = len;
                    self.state = match framing {
                        Framing::Length(0) => State::Head,
                        Framing::Length(n) => State::Body(n),
                        Framing::Opaque => State::Through,
                    };
                    true
                }
                Ok(Parsed::Partial) if self.buf.len() < self.max_head => false,
                Ok(Parsed::Partial) => self.refuse(Malformed::HeadTooLarge(self.max_head)),
                Err(why) => self.refuse(why),
            },
            State::Body(_) | State::Through if self.buf.is_empty() => false,
            State::Body(n) => {
                let k = n.min(self.buf.len() as u64);
                self.ready = k as usize;
                self.state = if k == n {
                    State::Head
                } else {
                    State::Body(n - k)
                };
                true
            }
            State::Through => {
                self.ready = self.buf.len();
                true
            }
            State::Refused => false,
        }
    }

    fn refuse(&mut self, why: Malformed) -> bool {
        self.heads += 1;
        *self
            .verdicts
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((self.heads, why));
        self.buf.clear();
        self.buf.extend_from_slice(STAND_IN);
        self.ready = self.buf.len();
        self.state = State::Refused;
        true
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Framer<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.ready > 0 {
                let n = this.ready.min(out.remaining());
                out.put_slice(&this.buf[..n]);
                this.buf.drain(..n);
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            if matches!(this.state, State::Refused) {
                // Not an end of file: hyper, seeing one while it answers
                // the stand-in, would drop the answer (it does not allow
                // half-closed connections). The stand-in asks it to close
                // after answering, so it never waits on this read.
                return Poll::Pending;
            }
            if this.advance() {
                continue;
            }
            if this.eof {
                // A head cut short goes to hyper as it is, then the end.
                if this.buf.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.ready = this.buf.len();
                continue;
            }
            // Bodies and opaque bytes need no buffering: straight to hyper.
            let direct = match this.state {
                State::Through => Some(out.remaining()),
                State::Body(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                _ => None,
            };
            if let (Some(limit), true) = (direct, this.buf.is_empty()) {
                // Safe code must zero what it reads into: not all of a
                // large buffer for each read.
                let want = limit.min(out.remaining()).min(DIRECT_READ);
                let dst = out.initialize_unfilled_to(want);
                let mut sub = ReadBuf::new(dst);
                ready!(Pin::new(&mut this.io).poll_read(cx, &mut sub))?;
                let k = sub.filled().len();
                out.advance(k);
                if let State::Body(n) = this.state {
                    let left = n - k as u64;
                    this.state = if left == 0 {
                        State::Head
                    } else {
                        State::Body(left)
                    };
                }
                return Poll::Ready(Ok(()));
            }
            // Uninitialised: zeroing 8 KiB for each head read showed in profiles.
            let mut chunk = [MaybeUninit::<u8>::uninit(); 8192];
            let mut rb = ReadBuf::uninit(&mut chunk);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                this.eof = true;
            } else {
                this.buf.extend_from_slice(rb.filled());
            }
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Framer<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.shut {
            ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
            this.shut = true;
        }
        // After a refusal the client's remaining bytes were never read.
        while matches!(this.state, State::Refused) && this.drained < DRAIN_LIMIT {
            let mut chunk = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut chunk);
            match ready!(Pin::new(&mut this.io).poll_read(cx, &mut rb)) {
                Ok(()) if !rb.filled().is_empty() => this.drained += rb.filled().len(),
                _ => break,
            }
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests;
