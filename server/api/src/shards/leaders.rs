//! Which replica of each queue group should lead it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use super::{leader_weight, node_set, ShardMap, CONTROL_GROUP};

/// The preferred leader of each queue group: a replica of the group that
/// is in `nodes` (pass the nodes fit to lead, e.g. all but a draining one).
/// Groups with no replica in `nodes` get no entry.
///
/// No node is preferred for more groups than it must be: the answer
/// minimises the largest count, so it keeps to ⌈G/N⌉ (G groups with an
/// entry, N = `nodes`) whenever any choice among the replicas can. That is
/// always so for a map from [`ShardMap::initial`] led by all its nodes
/// (see [`place_balanced`](super::place_balanced)). It may not be for
/// other maps, e.g. twelve one-replica groups of which three sit on one
/// node of nine: then that node gets the three, the least any choice
/// allows, and the rest stay as spread as they can.
///
/// Each group first takes its least-loaded candidate (ties by a
/// rendezvous weight of its own, so not always the first-placed replica);
/// a group that finds all its candidates at the limit moves earlier groups
/// along augmenting paths. The limit is found by bisection, so the cost is
/// O(log G · G · E) for E replica entries, and nothing is hashed more than
/// once per candidate. Deterministic for the same map and node set.
pub fn preferred_leaders(map: &ShardMap, nodes: &[u64]) -> BTreeMap<u64, u64> {
    let nodes: BTreeSet<u64> = node_set(nodes).into_iter().collect();
    let mut candidates: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for g in map.groups.iter().filter(|g| g.id != CONTROL_GROUP) {
        let mut c: Vec<u64> = node_set(&g.replicas)
            .into_iter()
            .filter(|n| nodes.contains(n))
            .collect();
        if c.is_empty() {
            continue;
        }
        c.sort_by_key(|&n| (Reverse(leader_weight(g.id, n)), n));
        // A group listed twice (an invalid map) keeps its first entry.
        candidates.entry(g.id).or_insert(c);
    }
    if candidates.is_empty() {
        return BTreeMap::new();
    }
    // At `candidates.len()` every group fits on any one candidate.
    let (mut lo, mut hi) = (candidates.len().div_ceil(nodes.len()), candidates.len());
    let mut best = assign(&candidates, hi).expect("a limit of G always fits");
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match assign(&candidates, mid) {
            Some(a) => {
                best = a;
                hi = mid;
            }
            None => lo = mid + 1,
        }
    }
    best
}

/// A leader for every group with no node over `limit`, if there is one
/// (Kuhn's augmenting paths: a group that cannot be placed now cannot be
/// in any assignment with the groups placed before it).
fn assign(candidates: &BTreeMap<u64, Vec<u64>>, limit: usize) -> Option<BTreeMap<u64, u64>> {
    let mut s = State {
        candidates,
        limit,
        leader: BTreeMap::new(),
        led: BTreeMap::new(),
    };
    for &g in candidates.keys() {
        if !s.place(g, &mut BTreeSet::new()) {
            return None;
        }
    }
    Some(s.leader)
}

struct State<'a> {
    candidates: &'a BTreeMap<u64, Vec<u64>>,
    limit: usize,
    leader: BTreeMap<u64, u64>,
    /// Groups each node leads, in the order it took them.
    led: BTreeMap<u64, Vec<u64>>,
}

impl State<'_> {
    fn load(&self, n: u64) -> usize {
        self.led.get(&n).map_or(0, Vec::len)
    }

    fn take(&mut self, g: u64, n: u64) {
        if let Some(old) = self.leader.insert(g, n) {
            self.led.entry(old).or_default().retain(|&x| x != g);
        }
        self.led.entry(n).or_default().push(g);
    }

    /// Gives `g` a leader under the limit, moving other groups if need be;
    /// `seen` holds the nodes this search already tried to free.
    fn place(&mut self, g: u64, seen: &mut BTreeSet<u64>) -> bool {
        let cands = &self.candidates[&g];
        let free = cands
            .iter()
            .enumerate()
            .filter(|&(_, &n)| self.load(n) < self.limit && self.leader.get(&g) != Some(&n))
            .min_by_key(|&(rank, &n)| (self.load(n), rank))
            .map(|(_, &n)| n);
        if let Some(n) = free {
            self.take(g, n);
            return true;
        }
        for &n in cands {
            if self.leader.get(&g) == Some(&n) || !seen.insert(n) {
                continue;
            }
            let held = self.led.get(&n).cloned().unwrap_or_default();
            for h in held {
                if self.place(h, seen) {
                    self.take(g, n);
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::super::{GroupInfo, DEFAULT_VNODES};
    use super::*;

    fn ids(n: usize) -> Vec<u64> {
        (0..n as u64).map(|i| 100 + 13 * i).collect()
    }

    fn group(id: u64, replicas: &[u64]) -> GroupInfo {
        GroupInfo {
            id,
            replicas: replicas.to_vec(),
            vnodes: DEFAULT_VNODES,
        }
    }

    fn max_load(leaders: &BTreeMap<u64, u64>) -> usize {
        let mut load: BTreeMap<u64, usize> = BTreeMap::new();
        for n in leaders.values() {
            *load.entry(*n).or_default() += 1;
        }
        load.values().copied().max().unwrap_or(0)
    }

    #[test]
    fn initial_maps_keep_to_the_ceiling() {
        for n in 1..=9 {
            let nodes = ids(n);
            for g in 0..=12u64 {
                for r in 1..=3 {
                    let map = ShardMap::initial(&nodes, g, r).unwrap();
                    let leaders = preferred_leaders(&map, &nodes);
                    assert_eq!(leaders.len() as u64, g, "N {n} G {g} R {r}");
                    for (id, l) in &leaders {
                        assert!(map.group(*id).unwrap().replicas.contains(l));
                    }
                    let ceil = (g as usize).div_ceil(n);
                    let max = max_load(&leaders);
                    assert!(max <= ceil, "N {n} G {g} R {r}: {max} > {ceil}");
                    assert_eq!(preferred_leaders(&map, &nodes), leaders);
                }
            }
        }
    }

    /// Whichever of the two nodes the shared group prefers, the group
    /// pinned to one node must get it and the shared one must move over.
    #[test]
    fn a_full_node_hands_a_group_on() {
        for pinned in [1, 2] {
            let map = ShardMap {
                epoch: 1,
                groups: vec![group(1, &[1, 2]), group(2, &[pinned])],
            };
            let leaders = preferred_leaders(&map, &[1, 2]);
            assert_eq!(leaders[&2], pinned);
            assert_eq!(leaders[&1], 3 - pinned);
        }
    }

    /// A chain: each group's only free way out runs through the next.
    #[test]
    fn augmenting_paths_run_through_several_nodes() {
        for order in [[1, 2, 3, 4], [4, 3, 2, 1], [2, 4, 1, 3]] {
            let map = ShardMap {
                epoch: 1,
                groups: vec![
                    group(order[0], &[1, 2]),
                    group(order[1], &[2, 3]),
                    group(order[2], &[3, 4]),
                    group(order[3], &[1]),
                ],
            };
            assert_eq!(max_load(&preferred_leaders(&map, &[1, 2, 3, 4])), 1);
        }
    }

    /// When the replicas make ⌈G/N⌉ impossible, the answer is still the
    /// least-crowded one.
    #[test]
    fn crowded_replicas_give_the_least_crowded_answer() {
        let map = ShardMap {
            epoch: 1,
            groups: (1..=6)
                .map(|id| group(id, if id <= 3 { &[7] } else { &[7, 8, 9] }))
                .collect(),
        };
        let leaders = preferred_leaders(&map, &[7, 8, 9]);
        assert_eq!(leaders.len(), 6);
        assert_eq!(max_load(&leaders), 3);
        assert!((4..=6).all(|g| leaders[&g] != 7));
    }

    #[test]
    fn only_the_given_nodes_lead() {
        let map = ShardMap {
            epoch: 1,
            groups: vec![group(1, &[1, 2]), group(2, &[2]), group(3, &[3, 1])],
        };
        let leaders = preferred_leaders(&map, &[1, 3, 1]);
        assert_eq!(leaders, BTreeMap::from([(1, 1), (3, 3)]));
        assert!(preferred_leaders(&map, &[]).is_empty());
        assert!(preferred_leaders(&ShardMap::default(), &[1, 2]).is_empty());
    }

    #[test]
    fn the_control_group_gets_no_preferred_leader() {
        let map = ShardMap {
            epoch: 1,
            groups: vec![group(0, &[1]), group(1, &[1])],
        };
        assert_eq!(preferred_leaders(&map, &[1]), BTreeMap::from([(1, 1)]));
    }
}
