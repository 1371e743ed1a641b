//! Cluster-wide commands: the cluster id, the shard map and its jobs,
//! and the at-most-once wrapper of any command.

use serde::{Deserialize, Serialize};

use super::Command;
use crate::state::jobs::JobStep;
use crate::state::proposal::{count, Proposal};

/// Names the cluster once: the first id applied wins, later ones are
/// ignored, so every node and every backup agrees on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetClusterId {
    pub id: String,
}

/// `cmd`, applied at most once per `key` (see `state::dedup`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Once {
    pub key: u128,
    pub cmd: Box<Command>,
}

/// The first shard map of the cluster (`POST /v1/shards`): refused once
/// there are queue groups, or while the control group holds topics
/// (they would be stranded: their messages stay here, their routes go
/// to a queue group).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetShards {
    pub map: dsync_api::shards::ShardMap,
}

/// A step of a rebalance of the shard map (`state::jobs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardJob {
    pub step: crate::state::jobs::JobStep,
}

/// A step of a reshard in a queue group (`state::handoff`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handoff {
    pub step: crate::state::handoff::HandoffStep,
}

/// Starts a shard job (`JobStep::Start`, `StartReshard`); answers its id.
pub fn start_job(step: JobStep) -> Proposal<u64> {
    Proposal::new(Command::ShardJob(ShardJob { step }), count)
}
