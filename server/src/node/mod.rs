//! One running node: Raft, storage, state and the background tasks.

mod cache_host;
mod detour;
mod forward;
mod forward_batch;
mod group_handoff;
mod group_members;
mod group_serve;
mod lifecycle;
mod locks;
mod membership;
mod moves;
pub mod progress;
mod queue;
mod reads;
mod reshard;
mod roles;
mod routed;
mod shard_host;
mod shards;
pub mod shutdown;
mod transfer;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dsync_api::shards::CONTROL_GROUP;
use openraft::BasicNode;

pub use forward::{ForwardReply, ForwardRequest};
pub use roles::role_event;

use crate::auth::Security;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::EventBus;
use crate::metrics::Metrics;
use crate::raft::breakers::PeerBreakers;
use crate::raft::network::peer_http_client;

type RemoteIndexes =
    crate::groups::read_rounds::ReadRounds<std::result::Result<u64, dsync_api::ApiError>>;

pub struct Node {
    pub id: u64,
    pub addr: String,
    pub config: Config,
    /// Group 0: locks, KV, the cache directory, membership, the shard map.
    pub control: Arc<crate::groups::Group>,
    pub metrics: Arc<Metrics>,
    pub peers: reqwest::Client,
    /// One breaker per peer, shared by every call to it from this node.
    pub breakers: PeerBreakers,
    /// Credentials, limits and the audit log.
    pub security: Arc<Security>,
    /// What `GET /v1/events` streams; publish to it from anywhere.
    pub events: EventBus,
    pub cache: crate::cache::Cache,
    /// Batches the client writes this node forwards to the leader.
    forwarder: forward_batch::Forwarder,
    /// Linearizable reads here share the read indexes asked of the leader,
    /// `leader` reads its applied indexes.
    remote_reads: RemoteIndexes,
    remote_applied: RemoteIndexes,
    /// When a leader last appended to us (for `stale` reads).
    leader_contact: Mutex<Option<Instant>>,
    /// What `/ready` saw of the apply keeping up (`progress.rs`).
    apply_progress: Mutex<progress::ApplyProgress>,
    /// Set by `POST /v1/node/drain`: client requests get 503 here.
    draining: AtomicBool,
    handing_off: Arc<AtomicBool>,
    transfer_lock: tokio::sync::Mutex<()>,
    /// Every background task of this node, stopped by [`Node::shutdown`].
    pub tasks: crate::tasks::Tasks,
    /// Client requests being served (shutdown waits for them).
    pub client_requests: shutdown::InFlight,
    /// The queue groups hosted here and the shard map routing topics.
    pub groups: crate::groups::Groups,
    /// What opening a queue group needs.
    shared: crate::groups::Shared,
}

impl Node {
    /// Opens storage (refusing corrupt files), starts Raft and the proposer.
    pub async fn start(config: Config) -> Result<Arc<Node>> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            Error::io(
                format!("cannot create data dir {}", config.data_dir.display()),
                e,
            )
        })?;
        let metrics = Arc::new(Metrics::new());
        let events = EventBus::default();
        let security = Arc::new(
            Security::new(
                config.id,
                &config.auth,
                &config.limits,
                config.audit_log.as_deref(),
                config.tls.as_ref(),
            )
            .map_err(Error::Config)?,
        );
        // Half the header read timeout (which also closes idle connections),
        // at most 20 s like the API client.
        let idle = Duration::from_millis(config.limits.header_read_timeout_ms / 2)
            .min(Duration::from_secs(20));
        let peers = peer_http_client(security.auth.cluster_secret(), idle, security.tls.as_ref())
            .map_err(Error::Config)?;
        let breakers = PeerBreakers::new(config.peer_breaker_cooldown());
        let tasks = crate::tasks::Tasks::default();
        let shared = crate::groups::Shared {
            node_id: config.id,
            config: Arc::new(config.clone()),
            peers: peers.clone(),
            breakers: breakers.clone(),
            metrics: metrics.clone(),
            events: events.clone(),
            tasks: tasks.clone(),
        };
        let control = Arc::new(crate::groups::Group::open(CONTROL_GROUP, &shared).await?);
        let forwarder = forward_batch::Forwarder::spawn(
            &tasks,
            Arc::new(forward_batch::PeerTransport(
                peers.clone(),
                breakers.clone(),
            )),
            forward_batch::Limits::default(),
            metrics.clone(),
        );
        let cache = crate::cache::Cache::new(&config.cache);
        let node = Arc::new(Node {
            id: config.id,
            cache,
            addr: config.advertised(),
            config,
            control,
            metrics,
            peers,
            breakers,
            security,
            events,
            forwarder,
            remote_reads: Default::default(),
            remote_applied: Default::default(),
            leader_contact: Mutex::new(None),
            apply_progress: Mutex::new(progress::ApplyProgress::new(Instant::now())),
            draining: AtomicBool::new(false),
            handing_off: Default::default(),
            transfer_lock: tokio::sync::Mutex::new(()),
            tasks,
            client_requests: Default::default(),
            groups: Default::default(),
            shared,
        });
        let t = &node.tasks;
        t.spawn(
            "elections",
            crate::groups::allow_elections(
                node.control.clone(),
                node.config.election_timeout_max_ms,
                false,
            ),
        );
        t.spawn("metrics", watch_metrics(node.clone()));
        t.spawn(
            "role events",
            roles::watch_roles(node.id, node.control.raft.clone(), node.events.clone()),
        );
        t.spawn("deadline ticker", locks::run_deadline_ticker(node.clone()));
        t.spawn("cache", crate::cache::run(node.clone()));
        t.spawn("shard host", shard_host::run_shard_host(node.clone()));
        t.spawn("shard mover", moves::run_mover(node.clone()));
        t.spawn("leader balance", shards::run_leader_balancer(node.clone()));
        Ok(node)
    }

    /// Initializes a one-node cluster if this node has never been part of one.
    pub async fn bootstrap_if_new(&self) -> Result<()> {
        let initialized = self
            .control
            .raft
            .is_initialized()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        if initialized {
            return Ok(());
        }
        let members = BTreeMap::from([(self.id, BasicNode::new(self.addr.clone()))]);
        self.control
            .raft
            .initialize(members)
            .await
            .map_err(|e| Error::Internal(format!("bootstrap: {e}")))?;
        tracing::info!(id = self.id, "bootstrapped a new cluster");
        Ok(())
    }

    /// Names a freshly bootstrapped cluster once this node leads it.
    pub async fn name_new_cluster(self: Arc<Self>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.cluster_id().is_some() {
                return;
            }
            if self.is_leader() {
                match self.ensure_cluster_id().await {
                    Ok(id) => {
                        tracing::info!(cluster_id = %id, "named the new cluster");
                        return;
                    }
                    Err(e) => tracing::debug!("cluster id not set yet: {e}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The leader as this node knows it: (id, address).
    pub fn leader(&self) -> Option<(u64, String)> {
        self.control.leader()
    }

    /// The address of member `id`, as the current membership records it.
    pub(crate) fn member_addr(&self, id: u64) -> Option<String> {
        self.control.member_addr(id)
    }

    pub fn is_leader(&self) -> bool {
        self.control.leads(self.id)
    }

    pub fn term(&self) -> u64 {
        self.control.term()
    }

    pub fn touch_leader_contact(&self) {
        *self
            .leader_contact
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    fn since_leader_contact(&self) -> Option<Duration> {
        self.leader_contact
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|t| t.elapsed())
    }

    /// The commit index this node has stayed short of for longer than
    /// `progress::GRACE`, if it has.
    pub fn apply_lagging(&self, applied: u64, commit: u64) -> Option<u64> {
        self.apply_progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lagging(applied, commit, Instant::now())
    }
}

/// Mirrors Raft metrics into Prometheus gauges and counts leader changes.
async fn watch_metrics(node: Arc<Node>) {
    let mut rx = node.control.raft.metrics();
    let mut last_leader = None;
    loop {
        {
            let m = rx.borrow_and_update();
            node.metrics.term.set(m.current_term as i64);
            node.metrics
                .is_leader
                .set(i64::from(m.current_leader == Some(node.id)));
            node.metrics
                .last_log_index
                .set(m.last_log_index.unwrap_or(0) as i64);
            let applied = m.last_applied.map_or(0, |l| l.index);
            node.control.series.raise_commit(applied, applied);
            if m.current_leader != last_leader {
                if m.current_leader.is_some() {
                    node.metrics.leader_changes.inc();
                    tracing::info!(leader = ?m.current_leader, term = m.current_term, "leader changed");
                }
                last_leader = m.current_leader;
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
