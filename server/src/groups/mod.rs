//! Raft groups (DESIGN.md §2a): what one group needs — its log, state
//! machine, Raft and proposer — and the queue groups a node hosts.
//!
//! The control group (0) keeps today's layout at the top of the data dir;
//! queue group `g` lives in `data_dir/groups/<g>/` with the same layout, so
//! the same code opens both.

mod host;
pub mod read_rounds;
mod status;
mod ticker;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use host::{Groups, Routing};
pub use status::group_status;
pub use ticker::allow_elections;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::EventBus;
use crate::metrics::groups::GroupSeries;
use crate::metrics::Metrics;
use crate::proposer::{ProposeError, Proposer};
use crate::raft::breakers::PeerBreakers;
use crate::raft::log_store::{log_dir, LogStore};
use crate::raft::network::Network;
use crate::raft::state_machine::{SmShared, StateMachine};
use crate::raft::Raft;
use crate::state::{CmdValue, Command};
use crate::tasks::Tasks;

/// One Raft group on this node.
pub struct Group {
    pub id: u64,
    pub raft: Raft,
    pub sm: Arc<SmShared>,
    pub log: LogStore,
    pub proposer: Proposer,
    /// The metric series it writes.
    pub series: GroupSeries,
    /// Where its files are.
    pub dir: PathBuf,
    /// Set while this node hands the group's leadership off: it then turns
    /// the group's requests away, as a follower would.
    pub handing_off: Arc<std::sync::atomic::AtomicBool>,
    /// Linearizable reads share ReadIndex rounds.
    reads: read_rounds::ReadRounds<ReadPoint>,
}

/// What a ReadIndex round on a group's leader found.
pub type ReadPoint = std::result::Result<
    Option<openraft::LogId<u64>>,
    openraft::error::RaftError<u64, openraft::error::CheckIsLeaderError<u64, openraft::BasicNode>>,
>;

/// What every group of a node shares.
#[derive(Clone)]
pub struct Shared {
    pub node_id: u64,
    pub config: Arc<Config>,
    pub peers: reqwest::Client,
    pub breakers: PeerBreakers,
    pub metrics: Arc<Metrics>,
    pub events: EventBus,
    pub tasks: Tasks,
}

/// The folder of queue group `id` under `data_dir`.
pub fn group_dir(data_dir: &Path, id: u64) -> PathBuf {
    if id == 0 {
        data_dir.to_path_buf()
    } else {
        data_dir.join("groups").join(id.to_string())
    }
}

/// openraft's settings for every group of a node.
pub fn raft_config(config: &Config, id: u64) -> Result<Arc<openraft::Config>> {
    let c = openraft::Config {
        cluster_name: "dsync".into(),
        heartbeat_interval: config.heartbeat_ms,
        election_timeout_min: config.election_timeout_min_ms,
        election_timeout_max: config.election_timeout_max_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every),
        max_in_snapshot_log_to_keep: config.keep_logs_after_snapshot,
        // openraft gives one AppendEntries `heartbeat_interval` to be sent,
        // decoded and answered, or sends it again, unchanged. A queue
        // group's entry can hold a whole batch of messages (1,000 of them),
        // so 64 such entries never arrived in time and a lagging replica
        // (a restart, a replica move) never caught up.
        max_payload_entries: if id == 0 { 64 } else { 8 },
        snapshot_max_chunk_size: 1024 * 1024,
        install_snapshot_timeout: 5_000,
        // Enabled once the group has heard from a leader, or after a wait
        // (`node::allow_elections_after_restart`).
        enable_elect: false,
        ..Default::default()
    }
    .validate()
    .map_err(|e| Error::Config(format!("raft configuration: {e}")))?;
    Ok(Arc::new(c))
}

impl Group {
    /// Opens (or creates) group `id`'s storage, refusing corrupt files, and
    /// starts its Raft and proposer.
    pub async fn open(id: u64, shared: &Shared) -> Result<Group> {
        let dir = group_dir(&shared.config.data_dir, id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("cannot create group dir {}", dir.display()), e))?;
        let series = GroupSeries::of(&shared.metrics, id);
        let log = LogStore::open(&log_dir(&dir), series.clone())?;
        let sm = SmShared::open(dir.clone(), series.clone())?;
        sm.publish_to(shared.events.clone());
        let raft = Raft::new(
            shared.node_id,
            raft_config(&shared.config, id)?,
            Network::for_group(shared.peers.clone(), shared.breakers.clone(), id),
            log.clone(),
            StateMachine { shared: sm.clone() },
        )
        .await
        .map_err(|e| Error::Internal(format!("cannot start raft of group {id}: {e}")))?;
        let proposer = Proposer::spawn(
            &shared.tasks,
            raft.clone(),
            shared.config.max_batch,
            shared.config.max_inflight_batches,
            series.batch_size.clone(),
        );
        Ok(Group {
            id,
            raft,
            sm,
            log,
            proposer,
            series,
            dir,
            handing_off: Default::default(),
            reads: Default::default(),
        })
    }

    /// The leader as this replica knows it: (id, address).
    pub fn leader(&self) -> Option<(u64, String)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let addr = m.membership_config.membership().get_node(&id)?.addr.clone();
        Some((id, addr))
    }

    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// The address of member `id`, as the current membership records it.
    pub fn member_addr(&self, id: u64) -> Option<String> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let addr = m.membership_config.membership().get_node(&id)?.addr.clone();
        Some(addr)
    }

    /// Every member with its address.
    pub fn members(&self) -> Vec<(u64, String)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect()
    }

    pub fn leads(&self, me: u64) -> bool {
        self.raft.metrics().borrow().current_leader == Some(me)
    }

    /// Proposes `cmd` on this replica, which should lead the group.
    pub async fn propose(&self, cmd: Command) -> std::result::Result<CmdValue, GroupError> {
        match self.proposer.propose(cmd).await {
            Ok(out) => out.map_err(|e| GroupError::Refused(Error::Api(e.to_api()))),
            Err(ProposeError::NotLeader(leader)) => Err(GroupError::NotLeader(leader)),
            Err(e) => Err(GroupError::Refused(e.into())),
        }
    }

    /// A ReadIndex round started after this call, shared with the reads
    /// that arrive while the one before it runs; refused as by a follower
    /// if `handing_off` is set when it starts (a round would renew the
    /// voters' leases mid hand-off).
    pub async fn read_point(&self, handing_off: &Arc<std::sync::atomic::AtomicBool>) -> ReadPoint {
        let (raft, handing_off) = (self.raft.clone(), handing_off.clone());
        self.reads
            .share(move || async move {
                if handing_off.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err(openraft::error::RaftError::APIError(
                        openraft::error::CheckIsLeaderError::ForwardToLeader(
                            openraft::error::ForwardToLeader::empty(),
                        ),
                    ));
                }
                raft.ensure_linearizable().await
            })
            .await
    }

    /// A linearizable read point on the leader (a ReadIndex round).
    pub async fn read_index(&self) -> std::result::Result<(), GroupError> {
        match self.read_point(&self.handing_off).await {
            Ok(_) => Ok(()),
            Err(openraft::error::RaftError::APIError(
                openraft::error::CheckIsLeaderError::ForwardToLeader(f),
            )) => Err(GroupError::NotLeader(
                f.leader_id.zip(f.leader_node.map(|n| n.addr)),
            )),
            Err(e) => Err(GroupError::Refused(Error::Unavailable(format!(
                "group {} cannot confirm its leadership: {e}",
                self.id
            )))),
        }
    }
}

/// Why a request to a group was not served here.
#[derive(Debug)]
pub enum GroupError {
    /// This replica does not lead the group; the leader it knows, if any.
    NotLeader(Option<(u64, String)>),
    Refused(Error),
}

impl From<Error> for GroupError {
    fn from(e: Error) -> Self {
        GroupError::Refused(e)
    }
}

/// The group's background work on its leader (visibility timeouts and
/// delays) and its first elections.
pub fn spawn_tasks(group: &Arc<Group>, shared: &Shared, campaign: bool) {
    shared
        .tasks
        .spawn("group ticker", ticker::run(group.clone(), shared.node_id));
    shared.tasks.spawn(
        "group elections",
        ticker::allow_elections(
            group.clone(),
            shared.config.election_timeout_max_ms,
            campaign,
        ),
    );
    shared.tasks.spawn(
        "group metrics",
        ticker::watch_metrics(group.clone(), shared.clone()),
    );
}
