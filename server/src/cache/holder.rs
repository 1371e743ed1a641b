//! The holder side, on every node: serve valid lines locally, ask the
//! directory on a miss or a write, obey invalidations and downgrades.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dsync_api::cache::LineState;
use dsync_api::routes;

use super::metrics::StateLabels;
use super::{DirReply, DirRequest, Dirty, Granted, HolderReply, HolderRequest, Line, Lookup};
use crate::error::{Error, Result};
use crate::node::Node;
use crate::raft::network::{post_bincode, PeerError};
use crate::state::{CmdError, CmdValue, Command};

const DIR_TIMEOUT: Duration = Duration::from_secs(10);

/// A request in flight for a key; dropping it unfinished (client gone)
/// still ends the pending mark.
struct Pending<'a> {
    node: &'a Arc<Node>,
    key: &'a str,
    token: u64,
    is_write: bool,
    done: bool,
}

impl Pending<'_> {
    /// Installs `line` unless the request was voided; returns whether it was.
    fn finish(mut self, line: Option<Line>) -> bool {
        self.done = true;
        self.node
            .cache
            .lines()
            .finish(self.key, self.token, line, self.is_write, Instant::now())
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.node.cache.lines().finish(
                self.key,
                self.token,
                None,
                self.is_write,
                Instant::now(),
            );
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

impl Node {
    /// `GET /v1/cache/{key}`: a valid local line with no network hop, else
    /// the directory.
    pub async fn cache_get(self: &Arc<Self>, key: &str) -> Result<CacheRead> {
        let lookup = self.cache.lines().get(key, Instant::now());
        if let Lookup::Hit {
            value,
            version,
            state,
            grant,
            renew,
        } = lookup
        {
            self.metrics.cache.hits.inc();
            if renew {
                self.spawn_renew(key, grant);
            }
            return Ok(CacheRead {
                value,
                version,
                state,
                hit: true,
            });
        }
        self.metrics.cache.misses.inc();
        if self.cache.write_back() {
            // This node's own evicted write must be committed before the
            // directory reads the KV for it.
            let _g = self.cache.flush.lock().await;
            let leaving = self.cache.lines().take_leaving_key(key);
            if let Some(d) = leaving {
                self.flush_locked(d).await;
            }
        }
        let (token, _) = self.cache.lines().begin(key, false);
        let pending = Pending {
            node: self,
            key,
            token,
            is_write: false,
            done: false,
        };
        let sent = Instant::now();
        let reply = self
            .dir_call(DirRequest::Read {
                key: key.to_string(),
                from: self.id,
            })
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
        let line = (term == self.term()).then(|| line_of(g, sent, self.cache.lease));
        let installed = pending.finish(line);
        self.update_line_gauges();
        Ok(CacheRead {
            value,
            version,
            state: if installed { state } else { LineState::I },
            hit: false,
        })
    }

    /// `PUT` (`Some(value)`) or `DELETE` (`None`) through the directory.
    pub async fn cache_write(
        self: &Arc<Self>,
        key: &str,
        value: Option<String>,
    ) -> Result<PutOutcome> {
        if let Some(v) = &value {
            if self.cache.write_back() && self.cache.lines().write_local(key, v, Instant::now()) {
                self.update_line_gauges();
                return Ok(PutOutcome {
                    version: None,
                    state: LineState::M,
                    deleted: false,
                });
            }
        }
        let (token, own_dirty) = self.cache.lines().begin(key, true);
        let pending = Pending {
            node: self,
            key,
            token,
            is_write: true,
            done: false,
        };
        if !own_dirty.is_empty() {
            // Acknowledged write-back writes must not vanish if this one
            // fails, nor be committed after it.
            let _g = self.cache.flush.lock().await;
            for d in own_dirty {
                self.flush_locked(d).await;
            }
        }
        let sent = Instant::now();
        let reply = self
            .dir_call(DirRequest::Write {
                key: key.to_string(),
                from: self.id,
                value,
            })
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
            .filter(|g| g.term == self.term())
            .map(|g| line_of(g, sent, self.cache.lease));
        let installed = pending.finish(line);
        self.update_line_gauges();
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
    pub(super) async fn dir_call(self: &Arc<Self>, req: DirRequest) -> Result<DirReply> {
        match self.leader() {
            Some((id, _)) if id == self.id => self.handle_directory(req).await,
            Some((leader, addr)) => {
                let reply: std::result::Result<DirReply, CmdError> = post_bincode(
                    &self.peers,
                    &self.breakers,
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
    fn spawn_renew(self: &Arc<Self>, key: &str, grant: u64) {
        if !self
            .cache
            .renewing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string())
        {
            return;
        }
        let node = self.clone();
        let key = key.to_string();
        self.tasks.spawn("cache renewal", async move {
            let sent = Instant::now();
            let req = DirRequest::Renew {
                key: key.clone(),
                from: node.id,
                grant,
            };
            if let Ok(DirReply::Renewed(true)) = node.dir_call(req).await {
                node.cache
                    .lines()
                    .renew(&key, grant, sent + node.cache.lease);
            }
            node.cache
                .renewing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        });
    }

    /// Serves the directory's message to this node as a holder.
    pub async fn handle_holder(&self, req: HolderRequest) -> HolderReply {
        if let HolderRequest::State { key } = &req {
            return HolderReply::State(self.cache.lines().info(key, Instant::now()));
        }
        // Wait for a flush in progress: its commit must precede the ack, or
        // the directory could read the value it replaces.
        let _g = self.cache.flush.lock().await;
        let (held, dirty) = match &req {
            HolderRequest::Invalidate { key } => {
                self.metrics.cache.invalidations_received.inc();
                self.cache.lines().invalidate(key)
            }
            HolderRequest::Downgrade { key } => self.cache.lines().downgrade(key),
            HolderRequest::State { .. } => (false, Vec::new()),
        };
        for d in dirty {
            self.flush_locked(d).await;
        }
        self.update_line_gauges();
        HolderReply::Held(held)
    }

    /// Commits one write-back write; the caller holds the flush lock.
    pub(super) async fn flush_locked(&self, d: Dirty) {
        // An acknowledged write lives only here: ride out a leader change
        // (503s) for up to one lease before giving it up.
        let deadline = Instant::now() + self.cache.lease;
        loop {
            let cmd = Command::KvPut {
                key: d.key.clone(),
                value: d.value.clone(),
                if_version: None,
                fence: None,
            };
            match self.write_owned(cmd).await {
                Ok(CmdValue::Version(v)) => {
                    self.cache.lines().flushed(&d.key, d.seq, v);
                    return;
                }
                Ok(_) => return,
                Err(e) if Instant::now() >= deadline => {
                    tracing::warn!(key = %d.key, "write-back flush failed, write lost: {e}");
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    pub(crate) async fn flush_all(&self, dirty: Vec<Dirty>) {
        let _g = self.cache.flush.lock().await;
        for d in dirty {
            self.flush_locked(d).await;
        }
    }

    /// See [`super::Cache::observe_term`]; unflushed write-back writes are
    /// committed in the background.
    pub(crate) fn observe_leader_term(self: &Arc<Self>, term: u64) {
        let Some(dirty) = self.cache.observe_term(term) else {
            return;
        };
        self.update_line_gauges();
        if !dirty.is_empty() {
            let n = self.clone();
            self.tasks
                .spawn_to_end("write-back flush", async move { n.flush_all(dirty).await });
        }
    }

    pub(crate) fn update_line_gauges(&self) {
        let (by, evictions) = {
            let l = self.cache.lines();
            (l.by_state(), l.evictions)
        };
        let lines = &self.metrics.cache.lines;
        for (state, n) in [("M", by.m), ("E", by.e), ("S", by.s)] {
            lines.get_or_create(&StateLabels { state }).set(n as i64);
        }
        let seen = self.metrics.cache.evictions.get();
        if evictions > seen {
            self.metrics.cache.evictions.inc_by(evictions - seen);
        }
    }
}
