//! Warnings of `dsync cluster status` about the queue groups: problems that
//! do not stop any topic from being served (so they do not fail the
//! command, unlike a missing quorum or a leaderless group) but leave the
//! cluster weaker or slower than it should be.
//!
//! - **Under-replicated**: a group has fewer healthy replicas than R, the
//!   shard map's replica count (its largest group, as the rebalance planner
//!   counts it). A replica is healthy when it is a voter of the group and
//!   its node answered this status; a learner still catching up is not.
//! - **Unbalanced leaders**, counted over the nodes that can lead now (they
//!   answered and hold a voter replica of some group), N of them, and the
//!   G groups that have a leader. The control group's leader keeps each
//!   node to ⌈G/N⌉ (`dsync leader balance`), so a warning means that has
//!   not happened yet (a failover in the last 10 s) or cannot (replicas
//!   not caught up). It warns when
//!   1. a node leads more than ⌈G/N⌉ + 1 groups, or
//!   2. a node leads more than ⌈G/N⌉ groups (so at least 2) while a
//!      reachable voter replica of one of them leads none: one hand-off
//!      would spread them without loading anyone else more.
//!
//!   Both allow ⌈G/N⌉, not an exact even split: that is the bound the
//!   server's own balancing keeps whenever the replica sets allow it, so
//!   a cluster it has balanced does not warn.

use std::collections::{BTreeMap, BTreeSet};

use dsync_api::shards::GroupStatus;
use dsync_api::types::MemberKind;

/// Every warning about `groups` (queue groups only), replicas first.
/// `replicas` is R; `reachable` the nodes that answered.
pub fn warnings(groups: &[GroupStatus], replicas: usize, reachable: &BTreeSet<u64>) -> Vec<String> {
    let mut out = under_replicated(groups, replicas, reachable);
    out.extend(unbalanced_leaders(groups, reachable));
    out
}

fn healthy(g: &GroupStatus, reachable: &BTreeSet<u64>) -> Vec<u64> {
    g.replicas
        .iter()
        .filter(|r| r.kind == MemberKind::Voter && reachable.contains(&r.id))
        .map(|r| r.id)
        .collect()
}

fn under_replicated(groups: &[GroupStatus], r: usize, reachable: &BTreeSet<u64>) -> Vec<String> {
    let mut out = Vec::new();
    for g in groups {
        let ok = healthy(g, reachable).len();
        if ok >= r {
            continue;
        }
        let mut why: Vec<String> = g
            .replicas
            .iter()
            .filter_map(|x| match (x.kind, reachable.contains(&x.id)) {
                (_, false) => Some(format!("node {} unreachable", x.id)),
                (MemberKind::Learner, true) => Some(format!("node {} still a learner", x.id)),
                _ => None,
            })
            .collect();
        let voters = g
            .replicas
            .iter()
            .filter(|x| x.kind == MemberKind::Voter)
            .count();
        if voters < r {
            why.push(format!("{voters} voter(s) in its membership"));
        }
        out.push(format!(
            "queue group {} has {ok} of {r} healthy replicas ({})",
            g.id,
            why.join(", ")
        ));
    }
    out
}

fn unbalanced_leaders(groups: &[GroupStatus], reachable: &BTreeSet<u64>) -> Vec<String> {
    let able: BTreeSet<u64> = groups.iter().flat_map(|g| healthy(g, reachable)).collect();
    let mut led: BTreeMap<u64, Vec<&GroupStatus>> = able.iter().map(|&n| (n, vec![])).collect();
    for g in groups {
        if let Some(l) = g.leader {
            led.entry(l).or_default().push(g);
        }
    }
    let total: usize = led.values().map(Vec::len).sum();
    if able.is_empty() || total == 0 {
        return Vec::new();
    }
    let fair = total.div_ceil(able.len());
    let mut out = Vec::new();
    for (node, gs) in &led {
        if gs.len() <= fair {
            continue;
        }
        // Reachable voters of this node's groups that lead nothing.
        let idle: BTreeSet<u64> = gs
            .iter()
            .flat_map(|g| healthy(g, reachable))
            .filter(|n| led.get(n).is_some_and(Vec::is_empty))
            .collect();
        let idle = match idle.len() {
            0 => String::new(),
            1 => format!(
                "node {} holds a replica of them and leads none; ",
                join(&idle)
            ),
            _ => format!(
                "nodes {} hold replicas of them and lead none; ",
                join(&idle)
            ),
        };
        let over = gs.len() > fair + 1;
        if over || !idle.is_empty() {
            let limit = if over {
                format!(" (more than {} over {} node(s))", fair + 1, able.len())
            } else {
                String::new()
            };
            out.push(format!(
                "node {node} leads {} of {total} queue groups{limit}; {idle}\
                 `dsync leader balance` spreads them",
                gs.len()
            ));
        }
    }
    out
}

fn join(ids: &BTreeSet<u64>) -> String {
    ids.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsync_api::shards::ReplicaStatus;

    /// A group led by `leader` with voter replicas `voters` and learners.
    fn group(id: u64, leader: Option<u64>, voters: &[u64], learners: &[u64]) -> GroupStatus {
        let replica = |id: u64, kind| ReplicaStatus {
            id,
            kind,
            leader: Some(id) == leader,
            matched_index: Some(9),
        };
        GroupStatus {
            id,
            holds_topics: true,
            leader,
            term: 3,
            last_index: 9,
            replicas: voters
                .iter()
                .map(|&n| replica(n, MemberKind::Voter))
                .chain(learners.iter().map(|&n| replica(n, MemberKind::Learner)))
                .collect(),
            topics: 1,
            depth: 0,
        }
    }

    fn nodes(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_balanced_cluster_has_no_warnings() {
        // 4 groups over 3 nodes: 2, 1, 1 leaders is ⌈4/3⌉ at most.
        let groups = vec![
            group(1, Some(1), &[1, 2, 3], &[]),
            group(2, Some(2), &[1, 2, 3], &[]),
            group(3, Some(3), &[1, 2, 3], &[]),
            group(4, Some(1), &[1, 2, 3], &[]),
        ];
        assert_eq!(
            warnings(&groups, 3, &nodes(&[1, 2, 3])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn an_unreachable_replica_or_a_learner_is_not_healthy() {
        let groups = vec![
            group(1, Some(1), &[1, 2, 3], &[]),
            group(2, Some(2), &[1, 2], &[4]),
        ];
        let w = under_replicated(&groups, 3, &nodes(&[1, 2, 4]));
        assert_eq!(
            w,
            [
                "queue group 1 has 2 of 3 healthy replicas (node 3 unreachable)",
                "queue group 2 has 2 of 3 healthy replicas (node 4 still a learner, \
                 2 voter(s) in its membership)"
            ]
        );
        // A learner beside R voters (a move catching up) is no shortage.
        let moving = vec![group(1, Some(1), &[1, 2, 3], &[4])];
        assert!(under_replicated(&moving, 3, &nodes(&[1, 2, 3, 4])).is_empty());
    }

    #[test]
    fn a_node_leading_more_than_its_share_plus_one_warns() {
        // 6 groups over 3 nodes: ⌈6/3⌉ + 1 = 3; node 1 leads 4.
        let mut groups: Vec<GroupStatus> = (1..=4)
            .map(|id| group(id, Some(1), &[1, 2, 3], &[]))
            .collect();
        groups.push(group(5, Some(2), &[1, 2, 3], &[]));
        groups.push(group(6, Some(3), &[1, 2, 3], &[]));
        let w = unbalanced_leaders(&groups, &nodes(&[1, 2, 3]));
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(
            w,
            [
                "node 1 leads 4 of 6 queue groups (more than 3 over 3 node(s)); \
              `dsync leader balance` spreads them"
            ]
        );
        // Three of them is within the slack.
        groups[3].leader = Some(2);
        assert!(unbalanced_leaders(&groups, &nodes(&[1, 2, 3])).is_empty());
    }

    #[test]
    fn an_idle_replica_beside_a_busy_leader_warns() {
        // 3 groups over 3 nodes: node 1 leads two, node 3 none though it
        // holds replicas of both.
        let groups = vec![
            group(1, Some(1), &[1, 2, 3], &[]),
            group(2, Some(1), &[1, 2, 3], &[]),
            group(3, Some(2), &[1, 2, 3], &[]),
        ];
        let w = unbalanced_leaders(&groups, &nodes(&[1, 2, 3]));
        assert_eq!(
            w,
            [
                "node 1 leads 2 of 3 queue groups; node 3 holds a replica of them and leads \
              none; `dsync leader balance` spreads them"
            ]
        );
        // Unreachable, node 3 cannot lead: 3 groups over 2 nodes is fair.
        assert!(unbalanced_leaders(&groups, &nodes(&[1, 2])).is_empty());
    }

    #[test]
    fn only_idle_nodes_that_could_take_a_group_are_named() {
        // 2 groups led by node 1 over 4 nodes that can lead (⌈2/4⌉ = 1);
        // node 4 holds only group 3, which has no leader (an error of its
        // own), so it could not relieve node 1.
        let groups = vec![
            group(1, Some(1), &[1, 2, 3], &[]),
            group(2, Some(1), &[1, 2, 3], &[]),
            group(3, None, &[4], &[]),
        ];
        let w = unbalanced_leaders(&groups, &nodes(&[1, 2, 3, 4]));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("nodes 2, 3 hold replicas of them"), "{w:?}");
        // Node 1 leads both led groups of two nodes (⌈2/2⌉ = 1), within
        // the slack, and node 2 holds no replica of them: no warning.
        let groups = vec![
            group(1, Some(1), &[1], &[]),
            group(2, Some(1), &[1], &[]),
            group(3, None, &[2], &[]),
        ];
        assert!(unbalanced_leaders(&groups, &nodes(&[1, 2])).is_empty());
    }
}
