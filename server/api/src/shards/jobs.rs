//! Shard jobs (`GET /v1/shards/jobs`): rebalances recorded in the control
//! group, each a list of replica moves carried out one at a time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{rebalance, ShardMap, TopicMove, TopicPhase};

/// `POST /v1/shards/rebalance` (admin).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebalanceRequest {
    /// Print the plan, move nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Nodes to move every replica off (they are about to leave).
    #[serde(default)]
    pub exclude: Vec<u64>,
}

/// The answer to a rebalance: the plan, and the job carrying it out
/// (`None` for a dry run or an empty plan).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebalancePlan {
    pub moves: Vec<ReplicaMove>,
    #[serde(default)]
    pub job: Option<u64>,
}

/// Where one move of a job is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovePhase {
    /// Not begun.
    Pending,
    /// `to` opens the group and the leader adds it as a learner, which
    /// catches up.
    CatchingUp,
    /// `to` is a voter and `from` is out of the group's membership; the
    /// shard map says so; `from` deletes its copy.
    Done,
    /// Given up before `to` became a voter; the learner was removed.
    RolledBack,
}

impl MovePhase {
    pub fn finished(self) -> bool {
        matches!(self, MovePhase::Done | MovePhase::RolledBack)
    }
}

/// One replica of a queue group moving from one node to another.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaMove {
    pub group: u64,
    /// The node giving up its replica (`None`: the group gains one).
    #[serde(default)]
    pub from: Option<u64>,
    /// The node taking a replica (`None`: the group loses one).
    #[serde(default)]
    pub to: Option<u64>,
    pub phase: MovePhase,
    /// Why the plan has this move.
    pub why: String,
    #[serde(default)]
    pub error: Option<String>,
}

/// A job's state as a whole.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Done,
    /// Ended with at least one move rolled back.
    Failed,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardJob {
    pub id: u64,
    /// `rebalance` or `reshard`.
    pub kind: String,
    pub state: JobState,
    pub moves: Vec<ReplicaMove>,
    /// A reshard's topic moves, one at a time (empty until listed).
    #[serde(default)]
    pub topics: Vec<TopicMove>,
    /// A reshard's destination: the shard map once every topic moved.
    #[serde(default)]
    pub target: Option<ShardMap>,
    /// A reshard has found its topics (every source group refuses new
    /// topics that the target ring puts elsewhere), and routes follow the
    /// target ring for every topic not in `topics` still to switch.
    #[serde(default)]
    pub listed: bool,
    /// Leader clock, ms since the Unix epoch.
    pub started_ms: u64,
    #[serde(default)]
    pub finished_ms: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
}

impl ShardJob {
    /// A job just started: running, nothing listed or finished yet.
    pub fn running(id: u64, kind: &str, moves: Vec<ReplicaMove>, started_ms: u64) -> ShardJob {
        ShardJob {
            id,
            kind: kind.to_string(),
            state: JobState::Running,
            moves,
            topics: Vec::new(),
            target: None,
            listed: false,
            started_ms,
            finished_ms: None,
            error: None,
        }
    }

    /// The move being carried out (the first one not finished).
    pub fn current(&self) -> Option<(usize, &ReplicaMove)> {
        self.moves
            .iter()
            .enumerate()
            .find(|(_, m)| !m.phase.finished())
    }

    /// Moves finished, of all (replicas or topics).
    pub fn progress(&self) -> (usize, usize) {
        let done = self.moves.iter().filter(|m| m.phase.finished()).count();
        let topics = self
            .topics
            .iter()
            .filter(|t| t.phase == TopicPhase::Done)
            .count();
        (done + topics, self.moves.len() + self.topics.len())
    }

    /// The topic move being carried out (the first one not done).
    pub fn current_topic(&self) -> Option<(usize, &TopicMove)> {
        self.topics
            .iter()
            .enumerate()
            .find(|(_, t)| t.phase != TopicPhase::Done)
    }
}

/// The replica moves that take `map` to the balanced placement over
/// `nodes` with `r` replicas per group, as `rebalance` computes it: for
/// each group, each node that gains a replica paired with one that loses
/// one (either side may be missing when the group's size changes).
pub fn plan_moves(map: &ShardMap, nodes: &[u64], r: usize) -> Vec<ReplicaMove> {
    let mut target: BTreeMap<u64, Vec<u64>> = rebalance(map, nodes, r);
    even_out(&mut target, nodes);
    let mut moves = Vec::new();
    for g in &map.groups {
        let Some(want) = target.get(&g.id) else {
            continue;
        };
        let gone: Vec<u64> = g
            .replicas
            .iter()
            .copied()
            .filter(|n| !want.contains(n))
            .collect();
        let new: Vec<u64> = want
            .iter()
            .copied()
            .filter(|n| !g.replicas.contains(n))
            .collect();
        for i in 0..gone.len().max(new.len()) {
            let (from, to) = (gone.get(i).copied(), new.get(i).copied());
            let why = match (from, to) {
                (Some(f), Some(_)) if !nodes.contains(&f) => format!("node {f} is leaving"),
                (Some(f), Some(t)) => {
                    format!("node {f} holds more than its share; node {t} has room")
                }
                (None, Some(_)) => format!("group {} has fewer than {r} replicas", g.id),
                (Some(_), None) => format!("group {} has more than {r} replicas", g.id),
                (None, None) => unreachable!("i is below one of the lengths"),
            };
            moves.push(ReplicaMove {
                group: g.id,
                from,
                to,
                phase: MovePhase::Pending,
                why,
                error: None,
            });
        }
    }
    moves
}

/// Gives every node at least ⌊G·R/N⌋ replicas, moving them from the
/// nodes that hold the most. `rebalance` only enforces the cap ⌈G·R/N⌉,
/// under which a new node may stay empty (3 groups of 3 on 4 nodes: the
/// cap is 3, which the old nodes already meet); this never raises a node
/// above the cap, so the leader bound still holds.
fn even_out(target: &mut BTreeMap<u64, Vec<u64>>, nodes: &[u64]) {
    if nodes.is_empty() {
        return;
    }
    let total: usize = target.values().map(Vec::len).sum();
    let floor = total / nodes.len();
    loop {
        let mut count: BTreeMap<u64, usize> = nodes.iter().map(|&n| (n, 0)).collect();
        for n in target.values().flatten() {
            if let Some(c) = count.get_mut(n) {
                *c += 1;
            }
        }
        // Fewest first, then lowest id; most first, then highest id.
        let Some((&lo, &lo_n)) = count.iter().min_by_key(|(n, c)| (**c, **n)) else {
            return;
        };
        if lo_n >= floor {
            return;
        }
        let mut donors: Vec<(u64, usize)> = count
            .iter()
            .filter(|(_, &c)| c > floor)
            .map(|(&n, &c)| (n, c))
            .collect();
        donors.sort_by_key(|(n, c)| (std::cmp::Reverse(*c), std::cmp::Reverse(*n)));
        let swap = donors.iter().find_map(|(hi, _)| {
            target
                .iter()
                .find(|(_, r)| r.contains(hi) && !r.contains(&lo))
                .map(|(g, _)| (*g, *hi))
        });
        let Some((group, hi)) = swap else {
            return;
        };
        let replicas = target.get_mut(&group).expect("found above");
        for n in replicas.iter_mut() {
            if *n == hi {
                *n = lo;
            }
        }
    }
}

/// Applies a finished move to a group's replica list: `to` takes the place
/// of `from` (or joins at the end, or `from` just leaves).
pub fn moved_replicas(replicas: &[u64], from: Option<u64>, to: Option<u64>) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::with_capacity(replicas.len() + 1);
    for &n in replicas {
        if Some(n) == from {
            if let Some(t) = to.filter(|t| !replicas.contains(t)) {
                out.push(t);
            }
        } else {
            out.push(n);
        }
    }
    if let Some(t) = to {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_node_gets_its_share_even_where_the_cap_allows_it_none() {
        let map = ShardMap::initial(&[1, 2, 3], 3, 3).unwrap();
        let moves = plan_moves(&map, &[1, 2, 3, 4], 3);
        // 9 replicas over 4 nodes: node 4 takes 2, nothing else moves.
        assert_eq!(moves.len(), 2, "{moves:?}");
        assert!(moves.iter().all(|m| m.to == Some(4)), "{moves:?}");
        let groups: std::collections::BTreeSet<u64> = moves.iter().map(|m| m.group).collect();
        assert_eq!(groups.len(), 2, "one replica per group: {moves:?}");
    }

    #[test]
    fn adding_nodes_moves_a_share_of_the_replicas_to_them() {
        let map = ShardMap::initial(&[1, 2, 3], 3, 3).unwrap();
        let moves = plan_moves(&map, &[1, 2, 3, 4, 5], 3);
        // 9 replicas over 5 nodes: at most 2 each, so 3 or 4 move, all to
        // the new nodes.
        assert!((3..=4).contains(&moves.len()), "{moves:?}");
        for m in &moves {
            assert!(matches!(m.to, Some(4 | 5)), "{m:?}");
            assert!(m.from.is_some(), "{m:?}");
        }
        assert!(plan_moves(&map, &[1, 2, 3], 3).is_empty());
    }

    #[test]
    fn excluded_nodes_lose_every_replica() {
        let map = ShardMap::initial(&[1, 2, 3, 4, 5], 4, 3).unwrap();
        let moves = plan_moves(&map, &[1, 2, 3], 3);
        let mut after = map.clone();
        for m in &moves {
            let g = after.groups.iter_mut().find(|g| g.id == m.group).unwrap();
            g.replicas = moved_replicas(&g.replicas, m.from, m.to);
            assert!(m.why.contains("leaving"), "{m:?}");
        }
        for g in &after.groups {
            let mut r = g.replicas.clone();
            r.sort();
            assert_eq!(r, vec![1, 2, 3]);
        }
    }

    #[test]
    fn moved_replicas_replaces_in_place() {
        assert_eq!(moved_replicas(&[1, 2, 3], Some(2), Some(4)), vec![1, 4, 3]);
        assert_eq!(moved_replicas(&[1, 2], None, Some(4)), vec![1, 2, 4]);
        assert_eq!(moved_replicas(&[1, 2, 3], Some(3), None), vec![1, 2]);
        assert_eq!(moved_replicas(&[1, 2], Some(2), Some(1)), vec![1]);
    }
}
