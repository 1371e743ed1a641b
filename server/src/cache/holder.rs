//! The holder side, on every node: serve valid lines locally, ask the
//! directory on a miss or a write, obey invalidations and downgrades.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dsync_api::cache::LineState;
use dsync_api::routes;

use super::{
    Cache, DirReply, DirRequest, Dirty, Granted, HolderReply, HolderRequest, Host, Line, Lookup,
};
use crate::error::{Error, Result};
use crate::metrics::cache::StateLabels;
use crate::metrics::Metrics;
use crate::raft::network::{post_bincode, PeerError};
use crate::state::command::kv;
use crate::state::CmdError;

const DIR_TIMEOUT: Duration = Duration::from_secs(10);

/// A request in flight for a key; dropping it unfinished (client gone)
/// still ends the pending mark.
struct Pending<'a> {
    cache: &'a Cache,
    key: &'a str,
    token: u64,
    is_write: bool,
    done: bool,
}

impl Pending<'_> {
    /// Installs `line` unless the request was voided; returns whether it was.
    fn finish(mut self, line: Option<Line>) -> bool {
        self.done = true;
        self.cache
            .lines()
            .finish(self.key, self.token, line, self.is_write, Instant::now())
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.cache
                .lines()
                .finish(self.key, self.token, None, self.is_write, Instant::now());
        }
    }
}

/// A cache read: `value` is the stored JSON text.
pub struct CacheRead {
    pub value: String,
    pub version: u64,
    pub state: LineState,
    pub hit: bool,
}

/// What a cache write returned to its client.
pub struct PutOutcome {
    pub version: Option<u64>,
    pub state: LineState,
    pub deleted: bool,
}

fn line_of(g: Granted, sent: Instant, lease: Duration) -> Line {
    Line {
        value: g.value,
        version: g.version,
        state: g.state,
        lease_until: sent + lease,
        grant: g.grant,
        dirty: None,
    }
}

/// `GET /v1/cache/{key}`: a valid local line with no network hop, else
/// the directory.
pub async fn get<H: Host>(h: &Arc<H>, key: &str) -> Result<CacheRead> {
    let lookup = h.cache().lines().get(key, Instant::now());
    if let Lookup::Hit {
        value,
        version,
        state,
        grant,
        renew,
    } = lookup
    {
        h.metrics().cache.hits.inc();
        if renew {
            spawn_renew(h, key, grant);
        }
        return Ok(CacheRead {
            value,
            version,
            state,
            hit: true,
        });
    }
    h.metrics().cache.misses.inc();
    if h.cache().write_back() {
        // This node's own evicted write must be committed before the
        // directory reads the KV for it.
        let _g = h.cache().flush.lock().await;
        let leaving = h.cache().lines().take_leaving_key(key);
        if let Some(d) = leaving {
            flush_locked(&**h, d).await;
        }
    }
    let (token, _) = h.cache().lines().begin(key, false);
    let pending = Pending {
        cache: h.cache(),
        key,
        token,
        is_write: false,
        done: false,
    };
    let sent = Instant::now();
    let reply = dir_call(
        &**h,
        DirRequest::Read {
            key: key.to_string(),
            from: h.id(),
        },
    )
    .await?;
    let granted = match reply {
        DirReply::Read(g) => g,
        other => return Err(Error::Internal(format!("unexpected reply {other:?}"))),
    };
    let Some(g) = granted else {
        drop(pending);
        return Err(Error::NotFound(format!("key {key:?} not found")));
    };
    let value = g.value.clone();
    let (version, state, term) = (g.version, g.state, g.term);
    let line = (term == h.control().term()).then(|| line_of(g, sent, h.cache().lease));
    let installed = pending.finish(line);
    update_line_gauges(&**h);
    Ok(CacheRead {
        value,
        version,
        state: if installed { state } else { LineState::I },
        hit: false,
    })
}

/// `PUT` (`Some(value)`) or `DELETE` (`None`) through the directory.
pub async fn write(h: &impl Host, key: &str, value: Option<String>) -> Result<PutOutcome> {
    if let Some(v) = &value {
        if h.cache().write_back() && h.cache().lines().write_local(key, v, Instant::now()) {
            update_line_gauges(h);
            return Ok(PutOutcome {
                version: None,
                state: LineState::M,
                deleted: false,
            });
        }
    }
    let (token, own_dirty) = h.cache().lines().begin(key, true);
    let pending = Pending {
        cache: h.cache(),
        key,
        token,
        is_write: true,
        done: false,
    };
    if !own_dirty.is_empty() {
        // Acknowledged write-back writes must not vanish if this one
        // fails, nor be committed after it.
        let _g = h.cache().flush.lock().await;
        for d in own_dirty {
            flush_locked(h, d).await;
        }
    }
    let sent = Instant::now();
    let reply = dir_call(
        h,
        DirRequest::Write {
            key: key.to_string(),
            from: h.id(),
            value,
        },
    )
    .await?;
    let DirReply::Written {
        version,
        deleted,
        granted,
    } = reply
    else {
        return Err(Error::Internal(format!("unexpected reply {reply:?}")));
    };
    let line = granted
        .filter(|g| g.term == h.control().term())
        .map(|g| line_of(g, sent, h.cache().lease));
    let installed = pending.finish(line);
    update_line_gauges(h);
    Ok(PutOutcome {
        version,
        state: if installed {
            LineState::M
        } else {
            LineState::I
        },
        deleted,
    })
}

/// Sends a request to the directory (this node itself when leader).
pub(super) async fn dir_call(h: &impl Host, req: DirRequest) -> Result<DirReply> {
    match h.control().leader() {
        Some((id, _)) if id == h.id() => super::directory_side::handle_directory(h, req).await,
        Some((leader, addr)) => {
            let (peers, breakers) = h.peers();
            let reply: std::result::Result<DirReply, CmdError> = post_bincode(
                peers,
                breakers,
                (leader, &addr),
                routes::RAFT_CACHE_DIRECTORY,
                &req,
                DIR_TIMEOUT,
            )
            .await
            .map_err(|e| match e {
                PeerError::Unreachable(..) => {
                    Error::Unavailable(format!("cache directory unreachable: {e}"))
                }
                PeerError::Network(..) | PeerError::TimedOut(..) | PeerError::Rejected(..) => {
                    Error::Unavailable(format!("cache directory request failed: {e}"))
                }
            })?;
            reply.map_err(|e| Error::Api(e.to_api()))
        }
        None => Err(Error::Unavailable("no leader is elected yet".into())),
    }
}

/// Renews a line in use; the new lease again counts from the request.
fn spawn_renew<H: Host>(h: &Arc<H>, key: &str, grant: u64) {
    if !h
        .cache()
        .renewing
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.to_string())
    {
        return;
    }
    let node = h.clone();
    let key = key.to_string();
    h.tasks().spawn("cache renewal", async move {
        let sent = Instant::now();
        let req = DirRequest::Renew {
            key: key.clone(),
            from: node.id(),
            grant,
        };
        if let Ok(DirReply::Renewed(true)) = dir_call(&*node, req).await {
            let cache = node.cache();
            cache.lines().renew(&key, grant, sent + cache.lease);
        }
        node.cache()
            .renewing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    });
}

/// Serves the directory's message to this node as a holder.
pub async fn handle_holder(h: &impl Host, req: HolderRequest) -> HolderReply {
    if let HolderRequest::State { key } = &req {
        return HolderReply::State(h.cache().lines().info(key, Instant::now()));
    }
    // Wait for a flush in progress: its commit must precede the ack, or
    // the directory could read the value it replaces.
    let _g = h.cache().flush.lock().await;
    let (held, dirty) = match &req {
        HolderRequest::Invalidate { key } => {
            h.metrics().cache.invalidations_received.inc();
            h.cache().lines().invalidate(key)
        }
        HolderRequest::Downgrade { key } => h.cache().lines().downgrade(key),
        HolderRequest::State { .. } => (false, Vec::new()),
    };
    for d in dirty {
        flush_locked(h, d).await;
    }
    update_line_gauges(h);
    HolderReply::Held(held)
}

/// Commits one write-back write; the caller holds the flush lock.
pub(super) async fn flush_locked(h: &impl Host, d: Dirty) {
    // An acknowledged write lives only here: ride out a leader change
    // (503s) for up to one lease before giving it up.
    let deadline = Instant::now() + h.cache().lease;
    loop {
        let (cmd, answer) = kv::put(d.key.clone(), d.value.clone(), None, None).split();
        let written = h.write_owned(cmd).await;
        match written.and_then(|v| Ok(answer.read(v)?)) {
            Ok(version) => {
                h.cache().lines().flushed(&d.key, d.seq, version);
                return;
            }
            Err(e) if Instant::now() >= deadline => {
                tracing::warn!(key = %d.key, "write-back flush failed, write lost: {e}");
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

pub async fn flush_all(h: &impl Host, dirty: Vec<Dirty>) {
    let _g = h.cache().flush.lock().await;
    for d in dirty {
        flush_locked(h, d).await;
    }
}

/// See [`super::Cache::observe_term`]; unflushed write-back writes are
/// committed in the background.
pub fn observe_leader_term<H: Host>(h: &Arc<H>, term: u64) {
    let Some(dirty) = h.cache().observe_term(term) else {
        return;
    };
    update_line_gauges(&**h);
    if !dirty.is_empty() {
        let n = h.clone();
        h.tasks().spawn_to_end(
            "write-back flush",
            async move { flush_all(&*n, dirty).await },
        );
    }
}

pub fn update_line_gauges(h: &impl Host) {
    update_gauges(h.cache(), h.metrics());
}

fn update_gauges(cache: &Cache, metrics: &Metrics) {
    let (by, evictions) = {
        let l = cache.lines();
        (l.by_state(), l.evictions)
    };
    let lines = &metrics.cache.lines;
    for (state, n) in [("M", by.m), ("E", by.e), ("S", by.s)] {
        lines.get_or_create(&StateLabels { state }).set(n as i64);
    }
    let seen = metrics.cache.evictions.get();
    if evictions > seen {
        metrics.cache.evictions.inc_by(evictions - seen);
    }
}
