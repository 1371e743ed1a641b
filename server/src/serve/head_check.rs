//! Whether hyper's HTTP/1 parser would refuse a request head, and where
//! the request's body ends if not. Hyper answers what it refuses itself,
//! with an empty body; [`super::frame`] asks this first so that such a
//! request gets a JSON error instead. The rules are hyper 1.x's own
//! (`proto/h1/role.rs`), run on the same parser (httparse, default
//! configuration) and the same `http` types, so a head is refused here
//! only if hyper would refuse it too.

use std::mem::MaybeUninit;

use axum::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING, UPGRADE};
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use dsync_api::{ApiError, ErrorCode};

/// Field slots kept on the stack (16 KiB; the default `max_headers` is
/// 400); a larger `max_headers` takes the heap.
const STACK_HEADERS: usize = 512;

/// Hyper's cap on a request target, whatever its buffer.
const MAX_TARGET: usize = u16::MAX as usize - 1;

/// What follows a well-formed head on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// This many bytes of body, then the next head.
    Length(u64),
    /// A chunked body or a possible upgrade: the rest of the connection
    /// is left to hyper alone.
    Opaque,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    Partial,
    Complete { len: usize, framing: Framing },
}

/// Why a head is refused before hyper sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// The request line or a header line is not HTTP/1.x.
    Syntax(httparse::Error),
    Target,
    ContentLength,
    TransferEncoding,
    TargetTooLong,
    /// The head did not end within this many bytes (or a header name
    /// passed 64 KiB).
    HeadTooLarge(usize),
    /// More header fields than this.
    TooManyHeaders(usize),
}

impl Malformed {
    pub fn to_api(self) -> ApiError {
        let (code, message) = match self {
            Malformed::Syntax(e) => (
                ErrorCode::InvalidArgument,
                format!("malformed HTTP/1 request head: {e}"),
            ),
            Malformed::Target => (
                ErrorCode::InvalidArgument,
                "malformed request target (path and query)".to_string(),
            ),
            Malformed::ContentLength => (
                ErrorCode::InvalidArgument,
                "Content-Length must be one non-negative integer (repeated, it must agree)"
                    .to_string(),
            ),
            Malformed::TransferEncoding => (
                ErrorCode::InvalidArgument,
                "Transfer-Encoding must end with chunked, and HTTP/1.0 has none".to_string(),
            ),
            Malformed::TargetTooLong => (
                ErrorCode::UriTooLong,
                format!("the request target is over {MAX_TARGET} bytes"),
            ),
            Malformed::HeadTooLarge(max) => (
                ErrorCode::HeadersTooLarge,
                format!("the request head is over {max} bytes"),
            ),
            Malformed::TooManyHeaders(max) => (
                ErrorCode::HeadersTooLarge,
                format!("the request has over {max} header fields"),
            ),
        };
        ApiError::new(code, message)
    }
}

/// Parses the head at the start of `buf`, with room for `max_headers`
/// fields (hyper's `max_headers`).
pub fn parse(buf: &[u8], max_headers: usize) -> Result<Parsed, Malformed> {
    // Every request head passes here before hyper parses it again: the
    // usual room for fields stays on the stack, uninitialized.
    let mut stack = [const { MaybeUninit::<httparse::Header>::uninit() }; STACK_HEADERS];
    let mut heap = Vec::new();
    let slots = if max_headers <= STACK_HEADERS {
        &mut stack[..max_headers]
    } else {
        heap.resize_with(max_headers, MaybeUninit::uninit);
        &mut heap[..]
    };
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(Malformed::TooManyHeaders(max_headers)),
        Err(e) => return Err(Malformed::Syntax(e)),
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Err(Malformed::Syntax(httparse::Error::Token));
    };
    if target.len() > MAX_TARGET {
        return Err(Malformed::TargetTooLong);
    }
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| Malformed::Syntax(httparse::Error::Token))?;
    Uri::try_from(target).map_err(|_| Malformed::Target)?;
    let http11 = req.version == Some(1);
    let mut opaque = method == Method::CONNECT;
    let (mut te, mut chunked, mut length) = (false, false, None::<u64>);
    for h in req.headers.iter() {
        if h.name.len() >= 1 << 16 {
            return Err(Malformed::HeadTooLarge(1 << 16));
        }
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| Malformed::Syntax(httparse::Error::HeaderName))?;
        if name == TRANSFER_ENCODING {
            if !http11 {
                return Err(Malformed::TransferEncoding);
            }
            te = true;
            length = None;
            chunked = is_chunked(h.value);
        } else if name == CONTENT_LENGTH && !te {
            let n = digits(h.value).ok_or(Malformed::ContentLength)?;
            match length {
                Some(prev) if prev != n => return Err(Malformed::ContentLength),
                Some(_) => {}
                // hyper's largest body length.
                None if n > u64::MAX - 2 => return Err(Malformed::ContentLength),
                None => length = Some(n),
            }
        } else if name == UPGRADE {
            opaque = true;
        }
    }
    if te && !chunked {
        return Err(Malformed::TransferEncoding);
    }
    let framing = if opaque || te {
        Framing::Opaque
    } else {
        Framing::Length(length.unwrap_or(0))
    };
    Ok(Parsed::Complete { len, framing })
}

/// Hyper's `is_chunked_`: the last coding of this line is `chunked`.
fn is_chunked(value: &[u8]) -> bool {
    HeaderValue::from_bytes(value)
        .ok()
        .and_then(|v| v.to_str().ok().map(str::to_owned))
        .and_then(|s| {
            s.rsplit(',')
                .next()
                .map(|c| c.trim().eq_ignore_ascii_case("chunked"))
        })
        .unwrap_or(false)
}

/// Hyper's `from_digits`: only ASCII digits, no sign, no overflow.
fn digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit()
            .then_some(())
            .and_then(|_| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(head: &str) -> Result<Parsed, Malformed> {
        parse(head.as_bytes(), 8)
    }

    fn framing(head: &str) -> Framing {
        match check(head) {
            Ok(Parsed::Complete { len, framing }) => {
                assert_eq!(len, head.len());
                framing
            }
            other => panic!("{head:?}: {other:?}"),
        }
    }

    #[test]
    fn well_formed_heads_pass_with_their_body_length() {
        assert_eq!(framing("GET / HTTP/1.1\r\n\r\n"), Framing::Length(0));
        assert_eq!(
            framing("PUT /v1/kv/a HTTP/1.1\r\nContent-Length: 12\r\ncontent-length: 12\r\n\r\n"),
            Framing::Length(12)
        );
        // Transfer-Encoding wins over Content-Length, even a bad one.
        assert_eq!(
            framing(
                "POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: x\r\n\r\n"
            ),
            Framing::Opaque
        );
        assert_eq!(
            framing("GET / HTTP/1.1\r\nupgrade: h2c\r\n\r\n"),
            Framing::Opaque
        );
        assert_eq!(framing("GET / HTTP/1.0\r\n\r\n"), Framing::Length(0));
        assert_eq!(check("GET / HTTP/1.1\r\nhost: x\r\n"), Ok(Parsed::Partial));
    }

    #[test]
    fn the_field_limit_holds_on_the_stack_and_past_it() {
        let head = |n: usize| {
            let fields: String = (0..n).map(|i| format!("x-f{i}: v\r\n")).collect();
            format!("GET / HTTP/1.1\r\n{fields}content-length: 3\r\n\r\n")
        };
        for max in [1, STACK_HEADERS, STACK_HEADERS + 100] {
            let fits = head(max - 1);
            assert_eq!(
                parse(fits.as_bytes(), max),
                Ok(Parsed::Complete {
                    len: fits.len(),
                    framing: Framing::Length(3)
                }),
                "{max} fields allowed"
            );
            assert_eq!(
                parse(head(max).as_bytes(), max),
                Err(Malformed::TooManyHeaders(max)),
                "{max} fields allowed"
            );
        }
    }

    #[test]
    fn what_hyper_refuses_is_refused_with_the_reason() {
        let cases = [
            (
                "GET / HTTP/1.1\r\ncontent-length: abc\r\n\r\n",
                Malformed::ContentLength,
            ),
            (
                "GET / HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
                Malformed::ContentLength,
            ),
            (
                "GET / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
                Malformed::ContentLength,
            ),
            (
                "GET / HTTP/1.1\r\ncontent-length: 99999999999999999999\r\n\r\n",
                Malformed::ContentLength,
            ),
            (
                "GET / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n",
                Malformed::TransferEncoding,
            ),
            (
                "GET / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n",
                Malformed::TransferEncoding,
            ),
            (
                "GET / HTTP/2.0\r\n\r\n",
                Malformed::Syntax(httparse::Error::Version),
            ),
            (
                "G(T / HTTP/1.1\r\n\r\n",
                Malformed::Syntax(httparse::Error::Token),
            ),
            (
                "GET / HTTP/1.1\r\nbad header\r\n\r\n",
                Malformed::Syntax(httparse::Error::HeaderName),
            ),
            ("GET /a<b> HTTP/1.1\r\n\r\n", Malformed::Target),
        ];
        for (head, want) in cases {
            assert_eq!(check(head), Err(want), "{head:?}");
        }
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "a: 1\r\n".repeat(9));
        assert_eq!(check(&many), Err(Malformed::TooManyHeaders(8)));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_TARGET));
        assert_eq!(check(&long), Err(Malformed::TargetTooLong));
        for m in [
            Malformed::ContentLength,
            Malformed::TargetTooLong,
            Malformed::HeadTooLarge(9),
        ] {
            assert!(!m.to_api().message.is_empty());
        }
        assert_eq!(
            Malformed::HeadTooLarge(9).to_api().code,
            ErrorCode::HeadersTooLarge
        );
    }
}
