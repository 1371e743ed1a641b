//! What the cache protocol needs from the node it runs on, and no more: its
//! id, its tables, the control group, the peer client, metrics, events and
//! tasks, and three operations that go through the node's write and read
//! paths. `node/cache_host.rs` implements it; the cache never names `Node`.

use std::future::Future;

use crate::error::Result;
use crate::events::EventBus;
use crate::groups::Group;
use crate::metrics::Metrics;
use crate::raft::breakers::PeerBreakers;
use crate::state::{CmdValue, Command};
use crate::tasks::Tasks;

use super::Cache;

pub trait Host: Send + Sync + 'static {
    fn id(&self) -> u64;
    fn cache(&self) -> &Cache;
    /// The control group: leader, term and members, and the KV the lines
    /// copy.
    fn control(&self) -> &Group;
    fn peers(&self) -> (&reqwest::Client, &PeerBreakers);
    fn metrics(&self) -> &Metrics;
    fn events(&self) -> &EventBus;
    fn tasks(&self) -> &Tasks;
    /// Proposes on this node as the leader: no forward, no directory.
    fn propose_local(&self, cmd: Command) -> impl Future<Output = Result<CmdValue>> + Send;
    /// Commits a write-back line this node owns: proposed here on the
    /// leader, else forwarded to it as a flush.
    fn write_owned(&self, cmd: Command) -> impl Future<Output = Result<CmdValue>> + Send;
    /// Confirms leadership with a quorum (ReadIndex) and waits for this
    /// node's apply to reach it.
    fn read_linearizable(&self) -> impl Future<Output = Result<()>> + Send;

    fn is_leader(&self) -> bool {
        self.control().leads(self.id())
    }
}
