//! `dsync shard`: which Raft group holds which queue topics, and the
//! first shard map of a cluster.

pub mod init;
pub mod rebalance;
pub mod reshard;
pub mod wait;

use clap::Subcommand;
use dsync_api::shards::{GroupStatus, ShardsStatus};
use serde::Serialize;

use crate::commands::EXIT_OK;
use crate::context::{GlobalArgs, RequestExt};
use crate::output::Table;

#[derive(Debug, Subcommand)]
pub enum ShardCommand {
    /// Every Raft group: replicas (leader marked `*`, match index on the
    /// leader's view), term, topics and messages held.
    ///
    /// Group 0 is the control group (locks, KV, cache directory,
    /// membership, the shard map). It holds the topics too while the
    /// cluster has no queue groups (G = 0: a new cluster without
    /// `--shards`, or one made by a release before shards).
    List,
    /// The group that holds TOPIC, by the consistent-hash ring over the
    /// cluster's shard map, and that group's leader and replicas.
    Locate {
        /// A queue topic (it need not exist yet).
        topic: String,
    },
    /// Give a cluster without queue groups its first shard map: G queue
    /// groups of R replicas each, placed over the current voters.
    ///
    /// The map is committed in the control group; every node then opens
    /// the groups it holds, and queue requests for a topic go to the
    /// leader of the group its hash falls in (any node forwards). Prints
    /// each group's replicas and, once elected, its leader; waits up to
    /// --timeout for the leaders.
    ///
    /// A cluster that already has G queue groups is left as it is (exit
    /// 0, "already in place"); one with another number of groups is
    /// refused: changing G is `dsync shard reshard`. So is a cluster whose control group still holds topics (one
    /// made by an earlier release): drain them first (docs/operations.md,
    /// "Queue shards").
    Init(init::InitArgs),
    /// Move queue group replicas so every voter holds its share (at most
    /// ⌈G·R/N⌉ each, rendezvous-hashed, keeping what can stay).
    ///
    /// Prints the plan (which replica moves where, and why), then records
    /// it as a job in the control group, whose leader carries out the
    /// moves one at a time: the new replica joins as a learner, catches
    /// up, becomes a voter as the old one leaves, the shard map gets a new
    /// epoch and the old replica deletes its copy. Writes and consumes go
    /// on throughout. A target that stops catching up for 30 s is removed
    /// again and that move rolled back. A control leader that dies
    /// mid-move is succeeded by one that resumes it. `cluster scale` runs
    /// this after adding nodes and before removing them.
    Rebalance(rebalance::RebalanceArgs),
    /// Change the number of queue groups; the topics whose place on the
    /// ring changes move to their new group.
    ///
    /// Prints the plan, then records it as a job in the control group,
    /// whose leader carries it out: new groups are created and placed
    /// over the voters; each topic that moves is frozen in its group
    /// (requests for it wait in the server, they are not refused), its
    /// whole state (ready, in flight with receipts and deadlines, delayed,
    /// dead letters, dedup window, settings) is committed in the new
    /// group, routes switch, and the old group deletes its copy. When
    /// every topic has moved, groups no longer wanted are deleted. A node
    /// that crashes at any step is succeeded by one that resumes it.
    /// `--dry-run` prints the plan only.
    Reshard(reshard::ReshardArgs),
    /// The running shard job (with its moves) and the last finished ones,
    /// or only job ID.
    Jobs {
        /// One job, as `rebalance` and `reshard` print its id.
        id: Option<u64>,
    },
}

/// `shard locate` as JSON/YAML.
#[derive(Debug, Serialize)]
struct Located<'a> {
    topic: &'a str,
    epoch: u64,
    group: &'a GroupStatus,
}

pub async fn run(global: &GlobalArgs, cmd: ShardCommand) -> anyhow::Result<i32> {
    match cmd {
        ShardCommand::Init(args) => return init::run(global, args).await,
        ShardCommand::Rebalance(args) => return rebalance::run(global, args).await,
        ShardCommand::Reshard(args) => return reshard::run(global, args).await,
        ShardCommand::Jobs { id } => return rebalance::jobs(global, id).await,
        ShardCommand::List => {
            let status = global.client()?.shards().await.api()?;
            global.output.print(&status, || list(&status))?
        }
        ShardCommand::Locate { topic } => {
            let status = global.client()?.shards().await.api()?;
            let group = status.locate(&topic).ok_or_else(|| {
                anyhow::anyhow!(
                    "the shard map (epoch {}) routes {topic:?} to group {}, which node {} does not report",
                    status.map.epoch,
                    status.map.group_of(&topic),
                    status.node
                )
            })?;
            let located = Located {
                topic: &topic,
                epoch: status.map.epoch,
                group,
            };
            global.output.print(&located, || locate(&located))?;
        }
    }
    Ok(EXIT_OK)
}

fn replicas(g: &GroupStatus) -> String {
    g.replicas
        .iter()
        .map(|r| {
            let lead = if r.leader { "*" } else { "" };
            match r.matched_index {
                Some(i) => format!("{}{lead}@{i}", r.id),
                None => format!("{}{lead}", r.id),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn list(s: &ShardsStatus) -> String {
    let mut t = Table::new([
        "GROUP", "TOPICS?", "LEADER", "TERM", "LAST", "REPLICAS", "TOPICS", "DEPTH",
    ]);
    for g in &s.groups {
        t.row([
            g.id.to_string(),
            if g.holds_topics { "yes" } else { "no" }.to_string(),
            g.leader.map_or("-".to_string(), |l| l.to_string()),
            g.term.to_string(),
            g.last_index.to_string(),
            replicas(g),
            g.topics.to_string(),
            g.depth.to_string(),
        ]);
    }
    format!(
        "shard map epoch {}, {} queue group(s); as seen by node {}\n{}",
        s.map.epoch,
        s.map.groups.len(),
        s.node,
        t.render()
    )
}

fn locate(l: &Located) -> String {
    let g = l.group;
    format!(
        "topic {:?} is in group {} (shard map epoch {}): leader {}, replicas {}\n",
        l.topic,
        g.id,
        l.epoch,
        g.leader.map_or("none".to_string(), |x| x.to_string()),
        replicas(g)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsync_api::shards::{ReplicaStatus, ShardMap};
    use dsync_api::types::MemberKind;

    fn status() -> ShardsStatus {
        let replica = |id, leader, matched| ReplicaStatus {
            id,
            kind: MemberKind::Voter,
            leader,
            matched_index: matched,
        };
        ShardsStatus {
            node: 1,
            map: ShardMap::default(),
            groups: vec![GroupStatus {
                id: 0,
                holds_topics: true,
                leader: Some(1),
                term: 3,
                last_index: 42,
                replicas: vec![replica(1, true, Some(42)), replica(2, false, Some(40))],
                topics: 2,
                depth: 17,
            }],
        }
    }

    #[test]
    fn the_list_marks_the_leader_and_match_indexes() {
        let text = list(&status());
        assert!(text.contains("epoch 0, 0 queue group(s)"), "{text}");
        assert!(text.contains("1*@42,2@40"), "{text}");
        assert!(text.contains("17"), "{text}");
    }

    #[test]
    fn locate_names_the_group_and_its_leader() {
        let s = status();
        let g = s.locate("orders").unwrap();
        let text = locate(&Located {
            topic: "orders",
            epoch: 0,
            group: g,
        });
        assert!(text.starts_with("topic \"orders\" is in group 0"), "{text}");
        assert!(text.contains("leader 1"), "{text}");
    }
}
