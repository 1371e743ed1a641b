//! `GET /v1/events`: the server-sent event stream the dashboard follows.
//!
//! Each SSE message carries one [`Event`] as JSON; its SSE `event:` name is
//! the same `kind` tag. Lock and queue events come from the replicated state
//! machine, so every node emits them once per applied entry: follow one node.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::{decode_error, ClientError, Result};
use crate::locks::LockMode;
use crate::types::Role;
use crate::{routes, Client};

/// The server sends a keep-alive every 5 s; this much silence means the
/// connection or the node is gone.
const IDLE_LIMIT: Duration = Duration::from_secs(15);
/// A stream has no overall deadline, only the idle limit above.
const STREAM_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);
/// The server answers at once; a node that accepts the connection but does
/// not answer (stopped, overloaded) is given up on after this.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The answering node's role, term or known leader changed (also sent
    /// first on every new subscription).
    Role {
        node: u64,
        role: Role,
        term: u64,
        leader: Option<u64>,
    },
    /// A lock was granted (immediately or to a queued waiter).
    LockGranted {
        lock: String,
        owner: String,
        mode: LockMode,
        token: u64,
        at_ms: u64,
    },
    /// An acquire was refused because waiting would have closed `cycle`.
    Deadlock {
        lock: String,
        cycle: Vec<String>,
        at_ms: u64,
    },
    /// An operator released every holder of `lock`.
    LockForceReleased {
        lock: String,
        owners: Vec<String>,
        at_ms: u64,
    },
    /// A message exhausted its attempts and moved to `{topic}.dlq`.
    DeadLetter {
        topic: String,
        id: u64,
        attempt: u32,
        at_ms: u64,
    },
    /// The cache directory (on the leader) invalidated the other copies of
    /// `key` before committing a write or delete from `writer` (0: a
    /// `/v1/kv` write, which no cache line made).
    CacheInvalidated {
        key: String,
        writer: u64,
        nodes: Vec<u64>,
        at_ms: u64,
    },
    /// This subscriber fell behind and `skipped` events were dropped for it.
    Lagged { skipped: u64 },
    /// A kind this build does not know (sent by a newer server).
    #[serde(other)]
    Unknown,
}

impl Event {
    /// The `kind` tag, also used as the SSE event name.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Role { .. } => "role",
            Event::LockGranted { .. } => "lock_granted",
            Event::Deadlock { .. } => "deadlock",
            Event::LockForceReleased { .. } => "lock_force_released",
            Event::DeadLetter { .. } => "dead_letter",
            Event::CacheInvalidated { .. } => "cache_invalidated",
            Event::Lagged { .. } => "lagged",
            Event::Unknown => "unknown",
        }
    }
}

/// Incremental parser of an SSE byte stream into [`Event`]s: feed chunks as
/// they arrive, take whole events out. Comments (keep-alives) and fields
/// other than `data` are skipped.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: String,
    data: String,
}

/// One SSE message is at most this large; a peer sending more is broken.
const MAX_MESSAGE: usize = 1024 * 1024;

impl SseParser {
    /// Adds bytes; returns the events they complete (undecodable ones as errors).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<std::result::Result<Event, String>> {
        self.buf.push_str(&String::from_utf8_lossy(chunk));
        let mut out = Vec::new();
        while let Some(nl) = self.buf.find('\n') {
            let line: String = self.buf.drain(..=nl).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    let data = std::mem::take(&mut self.data);
                    out.push(serde_json::from_str(&data).map_err(|e| e.to_string()));
                }
            } else if let Some(v) = line.strip_prefix("data:") {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if self.buf.len() + self.data.len() > MAX_MESSAGE {
            self.buf.clear();
            self.data.clear();
            out.push(Err("event larger than 1 MiB dropped".into()));
        }
        out
    }
}

/// An open `/v1/events` stream of one node.
pub struct EventStream {
    resp: reqwest::Response,
    parser: SseParser,
    ready: VecDeque<std::result::Result<Event, String>>,
}

impl EventStream {
    /// The next event; an error ends the stream (reconnect to go on).
    /// Undecodable events are reported as errors but the stream stays usable.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e.map_err(|m| ClientError::Transport(format!("bad event: {m}"))));
            }
            match tokio::time::timeout(IDLE_LIMIT, self.resp.chunk()).await {
                Err(_) => {
                    return Some(Err(ClientError::Transport(format!(
                        "no event or keep-alive for {} s",
                        IDLE_LIMIT.as_secs()
                    ))))
                }
                Ok(Err(e)) => return Some(Err(ClientError::Transport(e.to_string()))),
                Ok(Ok(None)) => return None,
                Ok(Ok(Some(bytes))) => self.ready.extend(self.parser.feed(&bytes)),
            }
        }
    }
}

impl Client {
    /// Subscribes to the events of the node at `endpoint` (no leader
    /// following: lock and queue events are the same on every node).
    pub async fn events(&self, endpoint: &str) -> Result<EventStream> {
        let send = self
            .get_node(endpoint, routes::EVENTS)
            .timeout(STREAM_TIMEOUT)
            .header("accept", "text/event-stream")
            .send();
        let resp = tokio::time::timeout(OPEN_TIMEOUT, send)
            .await
            .map_err(|_| {
                ClientError::Transport(format!("no answer within {} s", OPEN_TIMEOUT.as_secs()))
            })?
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes().await.unwrap_or_default();
            return Err(ClientError::Api {
                status: status.as_u16(),
                error: decode_error(status, &bytes),
            });
        }
        Ok(EventStream {
            resp,
            parser: SseParser::default(),
            ready: VecDeque::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_by_kind() {
        let e = Event::Deadlock {
            lock: "a".into(),
            cycle: vec!["x".into(), "y".into()],
            at_ms: 5,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "deadlock");
        assert_eq!(v["kind"], e.kind());
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn unknown_kinds_decode_as_unknown() {
        let e: Event = serde_json::from_str(r#"{"kind":"invalidation","key":"k"}"#).unwrap();
        assert_eq!(e, Event::Unknown);
    }

    #[test]
    fn parser_joins_split_chunks_and_skips_comments() {
        let mut p = SseParser::default();
        assert!(p.feed(b": keep-alive\n\nevent: lagged\nda").is_empty());
        let got = p.feed(b"ta: {\"kind\":\"lagged\",\"skipped\":3}\r\n\r\n");
        assert_eq!(got, vec![Ok(Event::Lagged { skipped: 3 })]);
        let bad = p.feed(b"data: nope\n\n");
        assert!(bad[0].is_err());
    }
}
