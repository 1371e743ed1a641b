//! `dsync cluster status`: every node's own view, side by side, and whether a
//! quorum of voters agrees on a leader.

use std::collections::BTreeSet;
use std::time::Duration;

use dsync_api::types::{MemberKind, NodeStatus, Role};
use dsync_api::{Client, ClientConfig};
use serde::Serialize;

use crate::context::{within, GlobalArgs, Target};
use crate::output::Table;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Seconds to wait for each node's answer before calling it unreachable.
    #[arg(long, default_value_t = 2, value_name = "SECONDS")]
    pub timeout: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeRow {
    pub id: Option<u64>,
    pub addr: String,
    /// `ok` or `unreachable`.
    pub status: &'static str,
    pub error: Option<String>,
    pub role: Option<Role>,
    pub term: Option<u64>,
    pub leader: Option<u64>,
    pub last_index: Option<u64>,
    pub commit_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// Leader's commit index minus this node's applied index.
    pub lag: Option<u64>,
    pub version: Option<String>,
    /// Peer wire protocol the node speaks.
    pub protocol: Option<u32>,
}

#[derive(Debug, Serialize)]
struct Report {
    leader: Option<u64>,
    quorum: bool,
    nodes: Vec<NodeRow>,
    /// The queue groups, if the cluster has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<Vec<dsync_api::shards::GroupStatus>>,
    /// Under-replicated groups and unbalanced leaders (see
    /// `status_warnings`): printed on stderr too, and no reason to fail.
    warnings: Vec<String>,
}

pub async fn run(global: &GlobalArgs, args: StatusArgs) -> anyhow::Result<i32> {
    let mut targets = global.targets()?;
    let endpoint_count = targets.len();
    let limit = Duration::from_secs(args.timeout.max(1));
    let mut config = ClientConfig::new(targets.iter().map(|t| t.addr.clone()).collect());
    config.token.clone_from(&global.token);
    config.request_timeout = limit;
    let client = Client::new(config)?;

    let mut views = poll(&client, &targets, limit).await;
    // Members the given endpoints did not name are still part of the quorum.
    let extra: Vec<Target> = membership(&views)
        .into_iter()
        .filter(|(id, addr, _)| {
            !targets
                .iter()
                .any(|t| t.id == Some(*id) || same_addr(&t.addr, addr))
        })
        .filter(|(id, _, _)| {
            !views
                .iter()
                .any(|(_, v)| v.as_ref().is_ok_and(|s| s.id == *id))
        })
        .map(|(id, addr, _)| Target { addr, id: Some(id) })
        .collect();
    if !extra.is_empty() {
        views.extend(poll(&client, &extra, limit).await);
        targets.extend(extra);
    }

    let voters: Option<Vec<u64>> = {
        let m = membership(&views);
        (!m.is_empty()).then(|| {
            m.into_iter()
                .filter(|(_, _, k)| *k == MemberKind::Voter)
                .map(|(id, _, _)| id)
                .collect()
        })
    };
    let statuses: Vec<&NodeStatus> = views.iter().filter_map(|(_, v)| v.as_ref().ok()).collect();
    let (leader, quorum) = assess(voters.as_deref(), endpoint_count, &statuses);
    let leader_commit = statuses
        .iter()
        .find(|s| Some(s.id) == leader && s.role == Role::Leader)
        .map(|s| s.commit_index);
    let mut nodes: Vec<NodeRow> = views
        .iter()
        .map(|(t, v)| row(t, v, leader_commit))
        .collect();
    nodes.sort_by(|a, b| (a.id.is_none(), a.id, &a.addr).cmp(&(b.id.is_none(), b.id, &b.addr)));
    let queue_groups = if quorum {
        super::status_groups::fetch(&client).await
    } else {
        None
    };
    let reachable: BTreeSet<u64> = nodes
        .iter()
        .filter(|n| n.error.is_none())
        .filter_map(|n| n.id)
        .collect();
    let warnings = queue_groups.as_ref().map_or_else(Vec::new, |q| {
        super::status_warnings::warnings(&q.groups, q.replicas, &reachable)
    });
    let report = Report {
        leader,
        quorum,
        nodes,
        groups: queue_groups.map(|q| q.groups),
        warnings,
    };
    global.output.print(&report, || {
        let mut out = table(&report.nodes);
        if let Some(g) = &report.groups {
            out.push('\n');
            out.push_str(&super::status_groups::table(g));
        }
        out
    })?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if !quorum {
        let total = voters.as_ref().map_or(endpoint_count, Vec::len);
        anyhow::bail!(
            "no quorum: fewer than {} of {total} voters are reachable and agree on a leader",
            total / 2 + 1
        );
    }
    let stuck = report
        .groups
        .as_deref()
        .map(super::status_groups::leaderless)
        .unwrap_or_default();
    if !stuck.is_empty() {
        anyhow::bail!("queue groups {stuck:?} have no leader: their topics cannot be served");
    }
    Ok(crate::commands::EXIT_OK)
}

type View = (Target, Result<NodeStatus, String>);

async fn poll(client: &Client, targets: &[Target], limit: Duration) -> Vec<View> {
    let polls = targets.iter().map(|t| async move {
        let v = within(limit, client.node_status(&t.addr))
            .await
            .map_err(|e| e.to_string());
        (t.clone(), v)
    });
    futures::future::join_all(polls).await
}

/// The membership as the leader reports it, else as any reachable node does.
fn membership(views: &[View]) -> Vec<(u64, String, MemberKind)> {
    let ok = || views.iter().filter_map(|(_, v)| v.as_ref().ok());
    ok().find(|s| s.role == Role::Leader && !s.members.is_empty())
        .or_else(|| ok().find(|s| !s.members.is_empty()))
        .map(|s| {
            s.members
                .iter()
                .map(|m| (m.id, m.addr.clone(), m.kind))
                .collect()
        })
        .unwrap_or_default()
}

/// The leader most voters follow, and whether those voters are a majority.
/// Without a known membership, every endpoint counts as a voter.
pub fn assess(
    voters: Option<&[u64]>,
    endpoint_count: usize,
    statuses: &[&NodeStatus],
) -> (Option<u64>, bool) {
    let total = voters.map_or(endpoint_count, <[u64]>::len);
    let mut tally: Vec<(u64, usize)> = Vec::new();
    for s in statuses
        .iter()
        .filter(|s| voters.is_none_or(|v| v.contains(&s.id)))
    {
        let Some(l) = s.leader else { continue };
        match tally.iter_mut().find(|(id, _)| *id == l) {
            Some((_, n)) => *n += 1,
            None => tally.push((l, 1)),
        }
    }
    match tally.into_iter().max_by_key(|(_, n)| *n) {
        Some((leader, n)) => (Some(leader), total > 0 && n * 2 > total),
        None => (None, false),
    }
}

fn row(t: &Target, v: &Result<NodeStatus, String>, leader_commit: Option<u64>) -> NodeRow {
    match v {
        Ok(s) => NodeRow {
            id: Some(s.id),
            addr: s.addr.clone(),
            status: "ok",
            error: None,
            role: Some(s.role),
            term: Some(s.term),
            leader: s.leader,
            last_index: Some(s.last_index),
            commit_index: Some(s.commit_index),
            applied_index: Some(s.applied_index),
            lag: leader_commit.map(|c| c.saturating_sub(s.applied_index)),
            version: Some(s.version.clone()),
            protocol: Some(s.protocol),
        },
        Err(e) => NodeRow {
            id: t.id,
            addr: t.addr.clone(),
            status: "unreachable",
            error: Some(e.clone()),
            role: None,
            term: None,
            leader: None,
            last_index: None,
            commit_index: None,
            applied_index: None,
            lag: None,
            version: None,
            protocol: None,
        },
    }
}

fn table(nodes: &[NodeRow]) -> String {
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let mut t = Table::new([
        "ID", "ADDR", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "LAG", "VERSION", "STATUS",
    ]);
    for n in nodes {
        t.row([
            opt(n.id),
            n.addr.clone(),
            n.role.map_or("-".to_string(), |r| r.to_string()),
            opt(n.term),
            opt(n.leader),
            opt(n.commit_index),
            opt(n.applied_index),
            opt(n.lag),
            n.version.clone().unwrap_or_else(|| "-".into()),
            match &n.error {
                Some(e) => format!("unreachable: {e}"),
                None => "ok".into(),
            },
        ]);
    }
    t.render()
}

fn same_addr(a: &str, b: &str) -> bool {
    dsync_api::client::base_url(a) == dsync_api::client::base_url(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: u64, role: Role, leader: Option<u64>) -> NodeStatus {
        NodeStatus {
            id,
            addr: format!("127.0.0.1:{}", 7000 + id),
            version: "0.1.0".into(),
            protocol: 1,
            role,
            term: 3,
            leader,
            last_index: 20,
            commit_index: 20,
            applied_index: 15,
            snapshot_index: 0,
            millis_since_quorum_ack: None,
            members: vec![],
            peers: vec![],
        }
    }

    #[test]
    fn two_of_three_voters_agreeing_is_a_quorum() {
        let (a, b) = (
            status(1, Role::Leader, Some(1)),
            status(2, Role::Follower, Some(1)),
        );
        assert_eq!(assess(Some(&[1, 2, 3]), 3, &[&a, &b]), (Some(1), true));
    }

    #[test]
    fn one_of_three_is_not_a_quorum() {
        let a = status(1, Role::Leader, Some(1));
        assert_eq!(assess(Some(&[1, 2, 3]), 3, &[&a]), (Some(1), false));
    }

    #[test]
    fn learners_do_not_count_towards_the_quorum() {
        let (a, c) = (
            status(1, Role::Leader, Some(1)),
            status(3, Role::Learner, Some(1)),
        );
        assert_eq!(assess(Some(&[1, 2]), 3, &[&a, &c]), (Some(1), false));
    }

    #[test]
    fn without_membership_endpoints_count() {
        let (a, b) = (
            status(1, Role::Follower, None),
            status(2, Role::Candidate, None),
        );
        assert_eq!(assess(None, 2, &[&a, &b]), (None, false));
        let (a, b) = (
            status(1, Role::Leader, Some(1)),
            status(2, Role::Follower, Some(1)),
        );
        assert_eq!(assess(None, 3, &[&a, &b]), (Some(1), true));
    }

    #[test]
    fn rows_show_lag_and_unreachable_reasons() {
        let t = Target {
            addr: "127.0.0.1:7002".into(),
            id: Some(2),
        };
        let ok = row(&t, &Ok(status(2, Role::Follower, Some(1))), Some(20));
        assert_eq!(ok.lag, Some(5));
        let down = row(&t, &Err("refused".into()), Some(20));
        assert_eq!((down.id, down.status), (Some(2), "unreachable"));
        let text = table(&[ok, down]);
        assert!(text.contains("unreachable: refused"), "{text}");
        assert!(text.starts_with("ID  ADDR"), "{text}");
    }
}
