//! Resharding (`POST /v1/shards/reshard`): changing the number of queue
//! groups, which moves the topics whose ring position changes from the
//! group that holds them to the one the new ring names.

use serde::{Deserialize, Serialize};

use super::{rebalance, GroupInfo, ShardMap, ShardMapError, DEFAULT_VNODES, MAX_GROUPS};
use crate::queue::DLQ_SUFFIX;

/// `POST /v1/shards/reshard` (admin).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReshardRequest {
    /// Queue groups wanted, 1 to 1,024. The same number as today only
    /// moves topics that sit in another group than the ring names.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1024))]
    pub groups: u64,
    /// Print the plan, move nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer to a reshard: the map it leads to, the topics that move, and
/// the job carrying it out (`None` for a dry run).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReshardPlan {
    pub groups_before: u64,
    pub groups_after: u64,
    /// Topics the cluster held when planned.
    pub topics_total: u64,
    /// The topics that move (a dry run lists them; a job finds them again
    /// once writers of new topics wait, see `TopicMove`).
    pub topics: Vec<TopicMove>,
    #[serde(default)]
    pub job: Option<u64>,
}

/// Where one topic's move is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicPhase {
    /// Not begun: the source group serves it.
    Pending,
    /// The source refuses its requests (they wait in the server) while
    /// its state is copied into the target.
    Frozen,
    /// The target holds the whole state; routes still name the source.
    Copied,
    /// Routes name the target; the source still has its (frozen) copy.
    Switched,
    /// The source deleted its copy.
    Done,
}

/// One topic (with its dead letters) moving between queue groups.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMove {
    /// The topic; `{topic}.dlq` moves with it.
    pub topic: String,
    pub from: u64,
    pub to: u64,
    pub phase: TopicPhase,
}

/// The name a topic is routed by: dead-letter topics (`{topic}.dlq`, and
/// theirs) live with their topic.
pub fn route_name(topic: &str) -> &str {
    let mut t = topic;
    while let Some(base) = t.strip_suffix(DLQ_SUFFIX) {
        t = base;
    }
    t
}

/// The map a reshard of `map` to `groups` queue groups leads to: the
/// groups that stay keep their replicas and vnodes; new ones take ids
/// after the highest of `map` and `used` (the highest the cluster ever
/// had) and are placed over `nodes` with `r` replicas within the balanced
/// cap where they can be; the highest ids go first when the number
/// shrinks. Its epoch is left to the caller.
pub fn reshard_target(
    map: &ShardMap,
    used: u64,
    nodes: &[u64],
    groups: u64,
    r: usize,
) -> Result<ShardMap, ShardMapError> {
    if groups == 0 || groups > MAX_GROUPS {
        return Err(ShardMapError::TooManyGroups { groups });
    }
    if nodes.is_empty() {
        return Err(ShardMapError::NoNodes);
    }
    if r == 0 {
        return Err(ShardMapError::NoReplicas);
    }
    let mut kept: Vec<GroupInfo> = map.groups.clone();
    kept.sort_by_key(|g| g.id);
    kept.truncate(groups as usize);
    let mut next_id = map.groups.iter().map(|g| g.id).max().unwrap_or(0).max(used) + 1;
    let mut grown = ShardMap {
        epoch: map.epoch,
        groups: kept,
    };
    let mut fresh = Vec::new();
    while (grown.groups.len() as u64) < groups {
        grown.groups.push(GroupInfo {
            id: next_id,
            replicas: Vec::new(),
            vnodes: DEFAULT_VNODES,
        });
        fresh.push(next_id);
        next_id += 1;
    }
    let placed = rebalance(&grown, nodes, r);
    for g in grown.groups.iter_mut().filter(|g| fresh.contains(&g.id)) {
        g.replicas = placed.get(&g.id).cloned().unwrap_or_default();
    }
    grown.validate()?;
    Ok(grown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_route_with_their_topic() {
        assert_eq!(route_name("orders"), "orders");
        assert_eq!(route_name("orders.dlq"), "orders");
        assert_eq!(route_name("orders.dlq.dlq"), "orders");
        assert_eq!(route_name(".dlq"), "");
        assert_eq!(route_name("dlq"), "dlq");
    }

    #[test]
    fn growing_keeps_every_group_and_places_the_new_ones() {
        let map = ShardMap::initial(&[1, 2, 3], 2, 3).unwrap();
        let t = reshard_target(&map, 0, &[1, 2, 3], 5, 3).unwrap();
        assert_eq!(t.groups.len(), 5);
        assert_eq!(t.groups[..2], map.groups[..]);
        for g in &t.groups[2..] {
            assert_eq!(g.replicas.len(), 3, "{g:?}");
        }
        let ids: Vec<u64> = t.groups.iter().map(|g| g.id).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn shrinking_drops_the_highest_ids() {
        let map = ShardMap::initial(&[1, 2, 3, 4, 5], 5, 3).unwrap();
        let t = reshard_target(&map, 0, &[1, 2, 3, 4, 5], 3, 3).unwrap();
        assert_eq!(t.groups, map.groups[..3].to_vec());
        assert!(reshard_target(&map, 0, &[1], 0, 3).is_err());
        assert!(reshard_target(&map, 0, &[], 3, 3).is_err());
        assert!(reshard_target(&map, 0, &[1], MAX_GROUPS + 1, 3).is_err());
        // Growing again never reuses a retired group's id.
        let again = reshard_target(&t, 5, &[1, 2, 3, 4, 5], 5, 3).unwrap();
        let ids: Vec<u64> = again.groups.iter().map(|g| g.id).collect();
        assert_eq!(ids, vec![1, 2, 3, 6, 7]);
    }

    #[test]
    fn the_share_of_topics_that_moves_is_the_rings() {
        let before = ShardMap::initial(&[1, 2, 3], 2, 3).unwrap();
        let after = reshard_target(&before, 0, &[1, 2, 3], 5, 3).unwrap();
        let topics: Vec<String> = (0..2000).map(|i| format!("t-{i}")).collect();
        let moved = topics
            .iter()
            .filter(|t| before.group_of(t) != after.group_of(t))
            .count() as f64
            / topics.len() as f64;
        // 1 - G/G' = 0.6 of them, give or take the ring's unevenness.
        assert!((0.5..0.7).contains(&moved), "{moved}");
    }
}
