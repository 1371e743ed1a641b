use tokio::io::AsyncWriteExt;

use super::*;

/// What hyper would read from a connection on which `input` arrives
/// `piece` bytes at a time, and the verdicts of the requests.
async fn through(input: &[u8], piece: usize, max_head: usize) -> (Vec<u8>, Arc<Verdicts>) {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let input = input.to_vec();
    let writer = tokio::spawn(async move {
        for p in input.chunks(piece) {
            client.write_all(p).await.unwrap();
        }
        client
    });
    let verdicts = Arc::new(Verdicts::default());
    let mut framer = Framer::new(server, verdicts.clone(), max_head, 8);
    let client = writer.await.unwrap();
    drop(client);
    // Everything was written before the first read, so whatever the
    // framer can give is there at once: read until it would wait (a
    // refused connection never ends its input) or it ends.
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        let mut rb = ReadBuf::new(&mut buf);
        match Pin::new(&mut framer).poll_read(&mut cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => break,
            Poll::Ready(Ok(())) => out.extend_from_slice(rb.filled()),
            Poll::Ready(Err(e)) => panic!("{e}"),
            Poll::Pending => break,
        }
    }
    (out, verdicts)
}

const GOOD: &[u8] =
    b"PUT /v1/kv/a HTTP/1.1\r\ncontent-length: 11\r\n\r\n{\"value\":1}GET /health HTTP/1.1\r\n\r\n";

#[tokio::test]
async fn well_formed_requests_pass_unchanged_however_they_arrive() {
    for piece in [1, 7, GOOD.len()] {
        let (out, v) = through(GOOD, piece, 8192).await;
        assert_eq!(out, GOOD, "in pieces of {piece}");
        assert_eq!((v.next_request(), v.next_request()), (None, None));
    }
}

#[tokio::test]
async fn a_refused_head_becomes_the_stand_in_after_the_requests_before_it() {
    let bad = b"POST /v1/kv/a HTTP/1.1\r\ncontent-length: 1x\r\n\r\nmore bytes";
    for piece in [1, 64] {
        let input = [GOOD, &bad[..]].concat();
        let (out, v) = through(&input, piece, 8192).await;
        assert_eq!(out, [GOOD, STAND_IN].concat());
        assert_eq!(v.next_request(), None);
        assert_eq!(v.next_request(), None);
        assert_eq!(v.next_request(), Some(Malformed::ContentLength));
        assert_eq!(v.next_request(), None);
    }
}

#[tokio::test]
async fn a_head_past_the_parsers_buffer_is_refused_as_too_large() {
    let big = format!("GET / HTTP/1.1\r\nx-big: {}\r\n\r\n", "v".repeat(9000));
    let (out, v) = through(big.as_bytes(), 1000, 8192).await;
    assert_eq!(out, STAND_IN);
    assert_eq!(v.next_request(), Some(Malformed::HeadTooLarge(8192)));
    // One that fits in one read but not in the parser's buffer, too.
    let (out, _) = through(big.as_bytes(), big.len(), 8192).await;
    assert_eq!(out, STAND_IN);
}

#[tokio::test]
async fn http2_chunked_bodies_and_upgrades_are_left_to_hyper() {
    let garbage = b"\x00\x01 not http at all\r\n\r\n";
    let h2 = [H2_PREFACE, &garbage[..]].concat();
    let chunked = [
        &b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"[..],
        garbage,
    ]
    .concat();
    let upgrade = [
        &b"GET / HTTP/1.1\r\nupgrade: websocket\r\n\r\n"[..],
        garbage,
    ]
    .concat();
    for input in [h2, chunked, upgrade] {
        let (out, v) = through(&input, 5, 8192).await;
        assert_eq!(out, input);
        assert_eq!(v.next_request(), None);
        assert_eq!(v.next_request(), None);
    }
}

#[tokio::test]
async fn a_head_cut_short_reaches_hyper_as_sent() {
    let cut = b"GET /health HTTP/1.1\r\nhost:";
    let (out, v) = through(cut, 3, 8192).await;
    assert_eq!(out, cut);
    assert_eq!(v.next_request(), None);
}

#[tokio::test]
async fn a_large_body_is_counted_and_the_head_after_it_checked() {
    let body = vec![b'x'; 200_000];
    let head = format!(
        "PUT /v1/kv/a HTTP/1.1\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let input = [
        head.as_bytes(),
        &body,
        GOOD,
        b"GET / HTTP/1.1\r\ncontent-length: +1\r\n\r\n",
    ]
    .concat();
    for piece in [1000, 50_000, input.len()] {
        let (out, v) = through(&input, piece, 8192).await;
        assert_eq!(
            out,
            [&input[..input.len() - 38], STAND_IN].concat(),
            "pieces of {piece}"
        );
        assert_eq!(
            (0..4).map(|_| v.next_request()).collect::<Vec<_>>(),
            [None, None, None, Some(Malformed::ContentLength)]
        );
    }
}
