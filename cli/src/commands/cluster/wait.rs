//! Waiting for started nodes to form the cluster, and explaining which ones
//! did not when the wait times out.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use dsync_api::types::{Health, MemberKind, NodeStatus, Role};
use dsync_api::{routes, Client, ClientConfig};

use crate::context::within;
use crate::local::log_tail;
use crate::progress::Progress;

const POLL_EVERY: Duration = Duration::from_millis(250);
const PER_NODE_TIMEOUT: Duration = Duration::from_secs(2);
const LOG_LINES: usize = 5;
/// How long a node that is already running gets to answer `/health`.
const HEALTH_GRACE: Duration = Duration::from_secs(5);

/// A node being waited for; `child` is set when this process started it, so
/// an early crash is reported at once instead of after the timeout.
pub struct Watched {
    pub id: u64,
    pub addr: String,
    pub log: PathBuf,
    pub child: Option<Child>,
}

impl Watched {
    /// A node of the cluster file, watched through its address only.
    pub fn of(node: &crate::cluster_file::NodeEntry) -> Watched {
        Watched {
            id: node.id,
            addr: node.addr.clone(),
            log: node.log.clone(),
            child: None,
        }
    }
}

/// What one poll found: each node's status or why it could not be read.
pub type Observed = Vec<(u64, Result<NodeStatus, String>)>;

#[derive(Debug, Default, PartialEq)]
pub struct Readiness {
    pub leader: Option<u64>,
    /// Nodes not (yet) where they should be, with the reason.
    pub not_ready: Vec<(u64, String)>,
    /// A cluster-wide shortfall not tied to one node.
    pub problem: Option<String>,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.leader.is_some() && self.not_ready.is_empty() && self.problem.is_none()
    }
}

/// Ready when `id` reports itself leader.
pub fn leader_is(id: u64, observed: &Observed) -> Readiness {
    let mut r = Readiness::default();
    for (node, view) in observed.iter().filter(|(n, _)| *n == id) {
        match view {
            Ok(s) if s.role == Role::Leader => r.leader = Some(*node),
            Ok(s) => r
                .not_ready
                .push((*node, format!("role {}, not leader yet", s.role))),
            Err(e) => r.not_ready.push((*node, e.clone())),
        }
    }
    r
}

/// Ready when every node follows one leader and that leader counts
/// `voters` voters including every watched node.
pub fn all_agree(voters: usize, observed: &Observed) -> Readiness {
    let mut r = Readiness::default();
    // The leader is whoever says so itself; failing that, the most named one.
    let leader = observed
        .iter()
        .find_map(|(id, v)| {
            v.as_ref()
                .ok()
                .filter(|s| s.role == Role::Leader)
                .map(|_| *id)
        })
        .or_else(|| most_named_leader(observed));
    r.leader = leader;
    let leader_status = observed
        .iter()
        .find(|(id, _)| Some(*id) == leader)
        .and_then(|(_, v)| v.as_ref().ok());
    for (id, view) in observed {
        let s = match view {
            Ok(s) => s,
            Err(e) => {
                r.not_ready.push((*id, e.clone()));
                continue;
            }
        };
        let reason = match (s.leader, leader) {
            (None, _) => Some(format!("no leader known (role {})", s.role)),
            (Some(l), Some(expected)) if l != expected => {
                Some(format!("follows {l}, not {expected}"))
            }
            _ => leader_status.and_then(|ls| match ls.members.iter().find(|m| m.id == *id) {
                None => Some("not a member yet".to_string()),
                Some(m) if m.kind != MemberKind::Voter => {
                    Some("learner, not a voter yet".to_string())
                }
                Some(_) => None,
            }),
        };
        if let Some(reason) = reason {
            r.not_ready.push((*id, reason));
        }
    }
    match leader_status {
        Some(ls) => {
            let have = ls
                .members
                .iter()
                .filter(|m| m.kind == MemberKind::Voter)
                .count();
            if have != voters {
                r.problem = Some(format!(
                    "leader {} counts {have} voters, expected {voters}",
                    ls.id
                ));
            }
        }
        None if leader.is_some() => {
            r.problem = Some("the leader's status is not readable yet".into())
        }
        None => r.problem = Some("no leader elected yet".into()),
    }
    r
}

fn most_named_leader(observed: &Observed) -> Option<u64> {
    let mut counts: Vec<(u64, usize)> = Vec::new();
    for l in observed.iter().filter_map(|(_, v)| v.as_ref().ok()?.leader) {
        match counts.iter_mut().find(|(id, _)| *id == l) {
            Some((_, n)) => *n += 1,
            None => counts.push((l, 1)),
        }
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(id, _)| id)
}

/// [`wait_for`] every one of `voters` to follow one leader as a voter.
pub async fn all_follow(
    nodes: &mut [Watched],
    voters: usize,
    timeout: Duration,
    progress: &mut Progress,
    what: &str,
) -> anyhow::Result<Vec<NodeStatus>> {
    wait_for(nodes, timeout, progress, what, |o| all_agree(voters, o)).await
}

/// Polls every node's `/v1/status` until `check` says ready, a started node
/// exits, or `timeout` passes. Returns the last statuses.
pub async fn wait_for(
    nodes: &mut [Watched],
    timeout: Duration,
    progress: &mut Progress,
    what: &str,
    check: impl Fn(&Observed) -> Readiness,
) -> anyhow::Result<Vec<NodeStatus>> {
    let mut config = ClientConfig::new(nodes.iter().map(|n| n.addr.clone()).collect());
    config.request_timeout = PER_NODE_TIMEOUT;
    let client = Client::new(config)?;
    let deadline = Instant::now() + timeout;
    loop {
        for node in nodes.iter_mut() {
            if let Some(status) = node
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                anyhow::bail!(
                    "node {} exited ({status}) while {what}{}",
                    node.id,
                    describe_log(node)
                );
            }
        }
        let observed = observe(&client, nodes).await;
        let readiness = check(&observed);
        if readiness.ready() {
            return Ok(observed.into_iter().filter_map(|(_, v)| v.ok()).collect());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("{}", timeout_report(nodes, timeout, what, &readiness));
        }
        let waiting: Vec<String> = readiness
            .not_ready
            .iter()
            .map(|(id, _)| id.to_string())
            .collect();
        progress.step(if waiting.is_empty() || nodes.len() == 1 {
            what.to_string()
        } else {
            format!("{what} (waiting for node {})", waiting.join(", "))
        });
        tokio::time::sleep(POLL_EVERY).await;
    }
}

async fn observe(client: &Client, nodes: &[Watched]) -> Observed {
    let polls = nodes.iter().map(|n| async move {
        let view = within(PER_NODE_TIMEOUT, client.node_status(&n.addr))
            .await
            .map_err(|e| format!("unreachable: {e}"));
        (n.id, view)
    });
    futures::future::join_all(polls).await
}

/// Whether the node answers `/health` as itself within the grace period.
pub async fn healthy(id: u64, addr: &str) -> bool {
    let mut config = ClientConfig::new(vec![addr.to_string()]);
    config.request_timeout = Duration::from_secs(1);
    let Ok(client) = Client::new(config) else {
        return false;
    };
    let deadline = Instant::now() + HEALTH_GRACE;
    loop {
        let answer = within(
            Duration::from_secs(1),
            client.call_node::<Health>(addr, routes::HEALTH),
        )
        .await;
        if answer.is_ok_and(|h| h.id == id) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn describe_log(node: &Watched) -> String {
    let mut out = format!("\n    log: {}", node.log.display());
    for line in log_tail(&node.log, LOG_LINES) {
        let _ = write!(out, "\n      | {line}");
    }
    out
}

fn timeout_report(nodes: &[Watched], timeout: Duration, what: &str, r: &Readiness) -> String {
    let mut out = format!("timed out after {} s {what}", timeout.as_secs());
    if let Some(p) = &r.problem {
        let _ = write!(out, ": {p}");
    }
    for (id, reason) in &r.not_ready {
        let Some(node) = nodes.iter().find(|n| n.id == *id) else {
            continue;
        };
        let _ = write!(
            out,
            "\n  node {id} ({}) not ready: {reason}{}",
            node.addr,
            describe_log(node)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsync_api::types::MemberStatus;

    fn status(
        id: u64,
        role: Role,
        leader: Option<u64>,
        voters: &[u64],
        learners: &[u64],
    ) -> NodeStatus {
        let member = |id: u64, kind| MemberStatus {
            id,
            addr: format!("127.0.0.1:{}", 7000 + id),
            kind,
            match_index: None,
        };
        NodeStatus {
            id,
            addr: format!("127.0.0.1:{}", 7000 + id),
            version: "0.1.0".into(),
            protocol: 1,
            role,
            term: 2,
            leader,
            last_index: 10,
            commit_index: 10,
            applied_index: 10,
            snapshot_index: 0,
            millis_since_quorum_ack: None,
            members: voters
                .iter()
                .map(|v| member(*v, MemberKind::Voter))
                .chain(learners.iter().map(|l| member(*l, MemberKind::Learner)))
                .collect(),
            peers: vec![],
        }
    }

    #[test]
    fn three_voters_following_one_leader_are_ready() {
        let v = [1, 2, 3];
        let observed = vec![
            (1, Ok(status(1, Role::Leader, Some(1), &v, &[]))),
            (2, Ok(status(2, Role::Follower, Some(1), &v, &[]))),
            (3, Ok(status(3, Role::Follower, Some(1), &v, &[]))),
        ];
        let r = all_agree(3, &observed);
        assert!(r.ready(), "{r:?}");
        assert_eq!(r.leader, Some(1));
    }

    #[test]
    fn learners_and_unreachable_nodes_are_named() {
        let observed = vec![
            (1, Ok(status(1, Role::Leader, Some(1), &[1, 2], &[3]))),
            (2, Ok(status(2, Role::Follower, Some(1), &[1, 2], &[3]))),
            (3, Ok(status(3, Role::Learner, Some(1), &[1, 2], &[3]))),
            (4, Err("unreachable: refused".to_string())),
        ];
        let r = all_agree(4, &observed);
        assert!(!r.ready());
        let ids: Vec<u64> = r.not_ready.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![3, 4]);
        assert!(r.not_ready[0].1.contains("learner"));
        assert!(r.problem.unwrap().contains("2 voters, expected 4"));
    }

    #[test]
    fn disagreement_on_the_leader_is_not_ready() {
        let v = [1, 2];
        let observed = vec![
            (1, Ok(status(1, Role::Leader, Some(1), &v, &[]))),
            (2, Ok(status(2, Role::Follower, Some(2), &v, &[]))),
        ];
        let r = all_agree(2, &observed);
        assert_eq!(r.not_ready, vec![(2, "follows 2, not 1".to_string())]);
    }

    #[test]
    fn no_leader_anywhere_is_a_problem() {
        let observed = vec![(1, Ok(status(1, Role::Candidate, None, &[1], &[])))];
        let r = all_agree(1, &observed);
        assert!(!r.ready());
        assert_eq!(r.problem.as_deref(), Some("no leader elected yet"));
    }

    #[test]
    fn leader_is_waits_for_the_role() {
        let observed = vec![(1, Ok(status(1, Role::Follower, None, &[1], &[])))];
        assert!(!leader_is(1, &observed).ready());
        let observed = vec![(1, Ok(status(1, Role::Leader, Some(1), &[1], &[])))];
        assert!(leader_is(1, &observed).ready());
    }
}
