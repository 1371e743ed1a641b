//! The node as the cache protocol's [`Host`]: the handles it uses, and its
//! write and read paths (hand-off checks, forwarding) for the three
//! operations that need them.

use std::future::Future;

use dsync_api::types::Consistency;

use super::Node;
use crate::cache::{Cache, Host};
use crate::error::Result;
use crate::events::EventBus;
use crate::groups::Group;
use crate::metrics::Metrics;
use crate::raft::breakers::PeerBreakers;
use crate::state::{CmdValue, Command};
use crate::tasks::Tasks;

impl Host for Node {
    fn id(&self) -> u64 {
        self.id
    }

    fn cache(&self) -> &Cache {
        &self.cache
    }

    fn control(&self) -> &Group {
        &self.control
    }

    fn peers(&self) -> (&reqwest::Client, &PeerBreakers) {
        (&self.peers, &self.breakers)
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn events(&self) -> &EventBus {
        &self.events
    }

    fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    fn propose_local(&self, cmd: Command) -> impl Future<Output = Result<CmdValue>> + Send {
        Node::propose_local(self, cmd)
    }

    fn write_owned(&self, cmd: Command) -> impl Future<Output = Result<CmdValue>> + Send {
        Node::write_owned(self, cmd)
    }

    async fn read_linearizable(&self) -> Result<()> {
        self.read_barrier(Consistency::Linearizable, None)
            .await
            .map(|_| ())
    }
}
