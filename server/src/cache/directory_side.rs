//! The directory side, on the leader: per-key serialized reads, writes and
//! renewals, with downgrades and invalidations sent to the holders.

use std::time::{Duration, Instant};

use dsync_api::cache::LineState;
use dsync_api::events::Event;
use dsync_api::routes;
use openraft::{BasicNode, RaftMetrics};

use super::{DirReply, DirRequest, Granted, HolderReply, HolderRequest, Host, KeyGuard};
use crate::error::{Error, Result};
use crate::raft::network::post_bincode;
use crate::state::command::kv;
use crate::state::Proposal;

/// Whether every member but `me` has matched an entry of `term` (so its
/// lines from earlier terms are gone).
fn members_in_term(m: &RaftMetrics<u64, BasicNode>, me: u64, term: u64) -> bool {
    let Some(rep) = m.replication.as_ref() else {
        return false;
    };
    m.membership_config.membership().nodes().all(|(id, _)| {
        *id == me
            || rep
                .get(id)
                .is_some_and(|l| l.is_some_and(|l| l.leader_id.term == term))
    })
}

/// The writer of a `/v1/kv` write: no node (ids start at 1), so every
/// cached copy is invalidated.
const KV_WRITER: u64 = 0;

/// Serves one holder request (from a peer or from this node itself).
pub async fn handle_directory(h: &impl Host, req: DirRequest) -> Result<DirReply> {
    match req {
        DirRequest::Read { key, from } => dir_read(h, &key, from).await,
        DirRequest::Write { key, from, value } => dir_write(h, &key, from, value).await,
        DirRequest::Renew { key, from, grant } => {
            let (term, _) = dir_enter(h)?;
            let _k = h.cache().keys.lock(&key).await;
            // A deposed leader unaware of it must not extend a lease past
            // its successor's wait: confirm leadership after the holder
            // sent this request.
            let until = Instant::now() + h.cache().lease;
            h.read_linearizable().await?;
            let mut st = h.cache().dir();
            let ok = st.term == term && st.dir.renew(&key, from, grant, until);
            Ok(DirReply::Renewed(ok))
        }
    }
}

/// The directory of this term; a new term starts empty and not ready
/// until one lease has passed.
fn dir_enter(h: &impl Host) -> Result<(u64, Instant)> {
    if !h.is_leader() {
        return Err(Error::Unavailable(
            "this node is not the leader (cache directory); retry".into(),
        ));
    }
    let term = h.control().term();
    Ok((term, h.cache().enter_term(term)))
}

async fn dir_read(h: &impl Host, key: &str, from: u64) -> Result<DirReply> {
    let (term, ready_at) = dir_enter(h)?;
    let _k = h.cache().keys.lock(key).await;
    dir_ready(h, term, ready_at).await;
    let owner = h.cache().dir().dir.read_plan(key, from, Instant::now());
    if let Some((node, lease_until)) = owner {
        let req = HolderRequest::Downgrade {
            key: key.to_string(),
        };
        let held = tell_holder(h, node, req, lease_until).await;
        h.cache().dir().dir.downgraded(key, node, held);
    }
    // The latest committed value, with leadership confirmed by a quorum
    // (a write-back owner's flush above is included).
    h.read_linearizable().await?;
    let entry = h.control().sm.read().data.kv.get(key).cloned();
    let Some(entry) = entry else {
        return Ok(DirReply::Read(None));
    };
    let mut st = h.cache().dir();
    if st.term != term {
        return Err(Error::Unavailable("leadership moved; retry".into()));
    }
    let h = st
        .dir
        .grant_read(key, from, Instant::now(), h.cache().lease);
    Ok(DirReply::Read(Some(Granted {
        term,
        grant: h.grant,
        state: h.state,
        value: entry.value,
        version: entry.version,
    })))
}

async fn dir_write(h: &impl Host, key: &str, from: u64, value: Option<String>) -> Result<DirReply> {
    let (term, ready_at) = dir_enter(h)?;
    let _k = h.cache().keys.lock(key).await;
    dir_ready(h, term, ready_at).await;
    invalidate_copies(h, key, from).await;
    let Some(value) = value else {
        let deleted = propose_local(h, kv::delete(key.to_string(), None)).await?;
        return Ok(DirReply::Written {
            version: None,
            deleted,
            granted: None,
        });
    };
    let put = kv::put(key.to_string(), value.clone(), None, None);
    let version = propose_local(h, put).await?;
    let mut st = h.cache().dir();
    let granted = (st.term == term).then(|| {
        let h = st
            .dir
            .grant_write(key, from, Instant::now(), h.cache().lease);
        Granted {
            term,
            grant: h.grant,
            state: LineState::M,
            value,
            version,
        }
    });
    Ok(DirReply::Written {
        version: Some(version),
        deleted: false,
        granted,
    })
}

/// `p` proposed on this node, the directory's leader.
async fn propose_local<A>(h: &impl Host, p: Proposal<A>) -> Result<A> {
    let (cmd, answer) = p.split();
    Ok(answer.read(h.propose_local(cmd).await?)?)
}

/// Waits until no line granted in an earlier term can still be served:
/// every other member has accepted this term's entries (and with the
/// first of them dropped its lines), or one lease has passed since this
/// leader took office. A handoff is ready at once; after a crash the
/// lost node cannot be told from a cut-off one, so the lease is waited.
/// With write-back the lease is always waited.
async fn dir_ready(h: &impl Host, term: u64, ready_at: Instant) {
    // This node's own older lines too, before anything is decided.
    if let Some(dirty) = h.cache().observe_term(term) {
        Box::pin(super::holder::flush_all(h, dirty)).await;
    }
    // Write-back: writes dropped with their lines at the term change are
    // flushed in the background for up to a lease; nothing may commit
    // over them before.
    let members_count = !h.cache().write_back();
    let mut rx = h.control().raft.metrics();
    loop {
        let now = Instant::now();
        if now >= ready_at
            || (members_count && members_in_term(&rx.borrow_and_update(), h.id(), term))
        {
            return;
        }
        match tokio::time::timeout_at(ready_at.into(), rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return tokio::time::sleep_until(ready_at.into()).await,
            Err(_) => return,
        }
    }
}

/// Before a `/v1/kv` write of `key` commits on this leader: every cached
/// copy is invalidated (acknowledged, or its lease ended). The guard keeps
/// the key's directory operations out until the write has committed, so
/// no read miss can grant the old value in between. Other KV writes of
/// the key share it: a hot key nobody caches commits as many writes per
/// Raft round as before the directory took part (a holder two of them
/// invalidate at once drops its line for the first and acks the second).
pub async fn invalidate_for_kv<'a>(h: &'a impl Host, key: &str) -> Result<KeyGuard<'a>> {
    let (term, ready_at) = dir_enter(h)?;
    let guard = h.cache().keys.shared(key).await;
    dir_ready(h, term, ready_at).await;
    invalidate_copies(h, key, KV_WRITER).await;
    Ok(guard)
}

/// Invalidates every copy of `key` but the writer's; the caller holds
/// the key's lock.
async fn invalidate_copies(h: &impl Host, key: &str, writer: u64) {
    let targets = h.cache().dir().dir.write_plan(key, writer, Instant::now());
    let invalidations = targets.into_iter().map(|(node, lease_until)| async move {
        let req = HolderRequest::Invalidate {
            key: key.to_string(),
        };
        h.metrics().cache.invalidations_sent.inc();
        tell_holder(h, node, req, lease_until).await;
        node
    });
    let invalidated = futures::future::join_all(invalidations).await;
    for node in &invalidated {
        h.cache().dir().dir.remove(key, *node);
    }
    if !invalidated.is_empty() {
        h.events().publish(Event::CacheInvalidated {
            key: key.to_string(),
            writer,
            nodes: invalidated,
            at_ms: crate::proposer::now_ms(),
        });
    }
}

/// Sends a downgrade or invalidation and waits for its answer, or, if
/// none comes, for the holder's lease to end (it then serves nothing).
/// Returns whether the holder acknowledged still holding a line.
async fn tell_holder(h: &impl Host, node: u64, req: HolderRequest, lease_until: Instant) -> bool {
    let started = Instant::now();
    let reply = if node == h.id() {
        Some(super::holder::handle_holder(h, req).await)
    } else {
        match h.control().member_addr(node) {
            Some(addr) => {
                let wait = lease_until
                    .saturating_duration_since(started)
                    .max(Duration::from_millis(1));
                let (peers, breakers) = h.peers();
                post_bincode::<_, HolderReply>(
                    peers,
                    breakers,
                    (node, &addr),
                    routes::RAFT_CACHE_HOLDER,
                    &req,
                    wait,
                )
                .await
                .map_err(|e| tracing::debug!(node, "cache holder did not answer: {e}"))
                .ok()
            }
            None => None,
        }
    };
    match reply {
        Some(HolderReply::Held(held)) => {
            h.metrics()
                .cache
                .invalidation_seconds
                .observe(started.elapsed().as_secs_f64());
            held
        }
        _ => {
            tokio::time::sleep_until(lease_until.into()).await;
            false
        }
    }
}
