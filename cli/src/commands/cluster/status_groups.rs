//! The queue groups' part of `dsync cluster status`: each group's leader,
//! term, replicas (match index on its leader), topics and depth.

use dsync_api::shards::{GroupStatus, ShardsStatus};
use dsync_api::Client;

use crate::output::Table;

/// The queue groups as one node reports them, and R.
pub struct QueueGroups {
    pub groups: Vec<GroupStatus>,
    /// Replicas per group the shard map asks for: its largest group, as
    /// the rebalance planner counts it.
    pub replicas: usize,
}

/// The cluster's queue groups (`None` for a cluster without any, or if no
/// node answered).
pub async fn fetch(client: &Client) -> Option<QueueGroups> {
    let s: ShardsStatus = client.shards().await.ok()?;
    let replicas = Some(s.map.replica_count()).filter(|r| *r > 0)?;
    let groups: Vec<GroupStatus> = s.groups.into_iter().filter(|g| g.id != 0).collect();
    (!groups.is_empty()).then_some(QueueGroups { groups, replicas })
}

/// Groups that have no leader: their topics cannot be served.
pub fn leaderless(groups: &[GroupStatus]) -> Vec<u64> {
    groups
        .iter()
        .filter(|g| g.leader.is_none())
        .map(|g| g.id)
        .collect()
}

pub fn table(groups: &[GroupStatus]) -> String {
    let mut t = Table::new(["GROUP", "LEADER", "TERM", "REPLICAS", "TOPICS", "DEPTH"]);
    for g in groups {
        let replicas = g
            .replicas
            .iter()
            .map(|r| match r.matched_index {
                Some(m) => format!("{}@{m}", r.id),
                None => r.id.to_string(),
            })
            .collect::<Vec<_>>()
            .join(",");
        t.row([
            g.id.to_string(),
            g.leader.map_or("none".into(), |l| l.to_string()),
            g.term.to_string(),
            replicas,
            g.topics.to_string(),
            g.depth.to_string(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsync_api::shards::ReplicaStatus;
    use dsync_api::types::MemberKind;

    fn group(id: u64, leader: Option<u64>) -> GroupStatus {
        GroupStatus {
            id,
            holds_topics: true,
            leader,
            term: 3,
            last_index: 9,
            replicas: vec![ReplicaStatus {
                id: 2,
                kind: MemberKind::Voter,
                leader: leader == Some(2),
                matched_index: Some(9),
            }],
            topics: 4,
            depth: 17,
        }
    }

    #[test]
    fn leaderless_groups_are_named_and_the_table_shows_match_indexes() {
        let groups = vec![group(1, Some(2)), group(2, None)];
        assert_eq!(leaderless(&groups), vec![2]);
        let t = table(&groups);
        assert!(t.contains("2@9"), "{t}");
        assert!(t.lines().nth(2).unwrap().contains("none"), "{t}");
    }
}
