//! Preflight of a rolling upgrade: can the cluster lose one node at a time,
//! and can the new release (binary or image) talk to the old nodes?

use std::time::Duration;

use dsync_api::types::{MemberKind, NodeStatus, Role};
use dsync_api::{Client, ClientConfig};
use serde::Serialize;

use crate::cluster_file::ClusterFile;
use crate::commands::version::VersionInfo;
use crate::context::within;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

fn check(name: &'static str, ok: bool, detail: String) -> Check {
    Check { name, ok, detail }
}

/// Reads every node's status and judges it; returns the checks and the
/// statuses that could be read.
pub async fn preflight(file: &ClusterFile, target: &VersionInfo) -> (Vec<Check>, Vec<NodeStatus>) {
    let mut statuses = Vec::new();
    let mut unreachable = Vec::new();
    if let Ok(client) = Client::new(ClientConfig::new(file.endpoints())) {
        for n in &file.nodes {
            match within(Duration::from_secs(2), client.node_status(&n.addr)).await {
                Ok(s) => statuses.push(s),
                Err(e) => unreachable.push(format!("node {} ({e})", n.id)),
            }
        }
    }
    let ids: Vec<u64> = file.nodes.iter().map(|n| n.id).collect();
    (judge(&ids, &statuses, &unreachable, target), statuses)
}

/// The checks, from what was observed (pure, so it is unit-tested).
pub fn judge(
    ids: &[u64],
    statuses: &[NodeStatus],
    unreachable: &[String],
    target: &VersionInfo,
) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(check(
        "all nodes reachable",
        unreachable.is_empty(),
        if unreachable.is_empty() {
            format!("{} of {} answer", statuses.len(), ids.len())
        } else {
            format!("unreachable: {}", unreachable.join(", "))
        },
    ));
    let leader = statuses.iter().find(|s| s.role == Role::Leader);
    let agree = leader.is_some_and(|l| statuses.iter().all(|s| s.leader == Some(l.id)));
    checks.push(check(
        "one leader",
        agree,
        match leader {
            Some(l) if agree => format!("node {} leads term {}", l.id, l.term),
            Some(l) => format!("node {} leads but not every node follows it", l.id),
            None => "no node reports itself leader".into(),
        },
    ));
    let voters: Vec<u64> = leader
        .map(|l| {
            l.members
                .iter()
                .filter(|m| m.kind == MemberKind::Voter)
                .map(|m| m.id)
                .collect()
        })
        .unwrap_or_default();
    let all_voters = ids.iter().all(|id| voters.contains(id)) && voters.len() == ids.len();
    checks.push(check(
        "every node a voter",
        all_voters,
        format!("voters {voters:?}, nodes {ids:?}"),
    ));
    let healthy = statuses
        .iter()
        .filter(|s| voters.contains(&s.id) && s.leader.is_some())
        .count();
    let quorum = voters.len() / 2 + 1;
    checks.push(check(
        "quorum + 1 healthy",
        healthy > quorum,
        format!(
            "{healthy} of {} voters healthy, quorum {quorum}: {}",
            voters.len(),
            if healthy > quorum {
                "one node at a time can be down"
            } else {
                "taking one node down would risk the quorum"
            }
        ),
    ));
    let other: Vec<String> = statuses
        .iter()
        .filter(|s| s.protocol != target.protocol)
        .map(|s| format!("node {} speaks protocol {}", s.id, s.protocol))
        .collect();
    checks.push(check(
        "version compatibility",
        other.is_empty(),
        if other.is_empty() {
            format!(
                "the new release reports {} and speaks protocol {}, like every node",
                target.version, target.protocol
            )
        } else {
            format!(
                "the new release speaks protocol {}: {}",
                target.protocol,
                other.join(", ")
            )
        },
    ));
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsync_api::types::MemberStatus;

    fn status(id: u64, leader: u64, voters: &[u64], protocol: u32) -> NodeStatus {
        NodeStatus {
            id,
            addr: format!("a:{id}"),
            version: "0.1.0".into(),
            protocol,
            role: if id == leader {
                Role::Leader
            } else {
                Role::Follower
            },
            term: 2,
            leader: Some(leader),
            last_index: 1,
            commit_index: 1,
            applied_index: 1,
            snapshot_index: 0,
            millis_since_quorum_ack: None,
            members: voters
                .iter()
                .map(|v| MemberStatus {
                    id: *v,
                    addr: format!("a:{v}"),
                    kind: MemberKind::Voter,
                    match_index: None,
                })
                .collect(),
            peers: vec![],
        }
    }

    fn target(protocol: u32) -> VersionInfo {
        VersionInfo {
            version: "0.2.0".into(),
            protocol,
        }
    }

    fn failed(checks: &[Check]) -> Vec<&'static str> {
        checks.iter().filter(|c| !c.ok).map(|c| c.name).collect()
    }

    #[test]
    fn a_healthy_three_node_cluster_passes() {
        let v = [1, 2, 3];
        let st: Vec<_> = v.iter().map(|id| status(*id, 1, &v, 1)).collect();
        assert!(failed(&judge(&v, &st, &[], &target(1))).is_empty());
    }

    #[test]
    fn one_node_down_or_a_single_node_fails_quorum_plus_one() {
        let v = [1, 2, 3];
        let st: Vec<_> = [1, 2].iter().map(|id| status(*id, 1, &v, 1)).collect();
        let f = failed(&judge(&v, &st, &["node 3 (refused)".into()], &target(1)));
        assert_eq!(f, vec!["all nodes reachable", "quorum + 1 healthy"]);
        let st = vec![status(1, 1, &[1], 1)];
        assert_eq!(
            failed(&judge(&[1], &st, &[], &target(1))),
            vec!["quorum + 1 healthy"]
        );
    }

    #[test]
    fn another_wire_protocol_is_incompatible() {
        let v = [1, 2, 3];
        let st: Vec<_> = v.iter().map(|id| status(*id, 1, &v, 1)).collect();
        assert_eq!(
            failed(&judge(&v, &st, &[], &target(2))),
            vec!["version compatibility"]
        );
    }
}
