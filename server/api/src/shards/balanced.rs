//! Placement of all queue groups at once, with a cap per node.

use std::collections::BTreeMap;

use super::placement::ranked;
use super::{node_set, ShardMap, CONTROL_GROUP};

/// [`place`] for several groups at once, with a cap: no node holds more
/// than ⌈G·R/N⌉ replicas (G groups, R = `min(r, nodes)`, N nodes). Each
/// group still takes its highest-weight nodes that are not at the cap, so
/// where the cap does not bind the answer is [`place`]'s.
///
/// Why the cap: with it, every set of groups has enough distinct replicas
/// among them for [`preferred_leaders`] to give each node at most ⌈G/N⌉
/// leaders (Hall's condition: k groups spread R·k replicas over nodes of
/// at most R·⌈G/N⌉ replicas each, so over at least k/⌈G/N⌉ nodes).
/// Plain rendezvous gives no such bound: with R = 1, three of twelve
/// groups may well hash to one node of nine.
///
/// For a fresh layout only: to follow a change of nodes use [`rebalance`],
/// which keeps what it can. Groups are taken in id order; repeats in
/// `groups` or `nodes` count once.
///
/// [`preferred_leaders`]: super::preferred_leaders
/// [`place`]: super::place
pub fn place_balanced(groups: &[u64], nodes: &[u64], r: usize) -> BTreeMap<u64, Vec<u64>> {
    let groups = node_set(groups).into_iter().map(|g| (g, Vec::new()));
    balanced(groups.collect(), &node_set(nodes), r)
}

/// The replica sets a running map should move to when its nodes or R
/// change, within the same cap as [`place_balanced`] (so the leader bound
/// keeps holding): each group keeps the replicas it has on `nodes` as far
/// as the cap allows, dropping first those on the most crowded nodes, and
/// fills up first on nodes with room to spare after what later groups
/// already hold there (such as a new node), then in rendezvous order.
/// A map already within the cap on the same nodes comes back unchanged.
///
/// It is a greedy pass, not a minimum-move solver. In the unit tests
/// (G up to 100, N up to 9, R up to 3): adding a node moves at most 2
/// replicas more than the nodes over the new cap must shed; removing one
/// moves at most 2 more than it held; raising R keeps every replica but
/// at most one. Re-running [`place_balanced`] instead moves from 1.2
/// (G = 100) to 3.5 (G = 3) times as many. Covers the queue groups of
/// `map` (not the control group); replicas on nodes not in `nodes`, or
/// listed twice, are dropped.
pub fn rebalance(map: &ShardMap, nodes: &[u64], r: usize) -> BTreeMap<u64, Vec<u64>> {
    let nodes = node_set(nodes);
    let mut now: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for g in map.groups.iter().filter(|g| g.id != CONTROL_GROUP) {
        now.entry(g.id).or_insert_with(|| {
            let mut kept: Vec<u64> = Vec::with_capacity(g.replicas.len());
            for n in &g.replicas {
                if nodes.binary_search(n).is_ok() && !kept.contains(n) {
                    kept.push(*n);
                }
            }
            kept
        });
    }
    balanced(now, &nodes, r)
}

/// Groups in id order, each taking R of `nodes` within the cap of
/// ⌈G·R/N⌉ per node: its current replicas first (`now`: distinct, all in
/// `nodes`), then nodes with room to spare after the current replicas of
/// the groups still to come, then the rest, each part in rendezvous order.
fn balanced(now: BTreeMap<u64, Vec<u64>>, nodes: &[u64], r: usize) -> BTreeMap<u64, Vec<u64>> {
    let r = r.min(nodes.len());
    if r == 0 {
        return now.into_keys().map(|g| (g, Vec::new())).collect();
    }
    let cap = (now.len() * r).div_ceil(nodes.len());
    let mut room: BTreeMap<u64, usize> = nodes.iter().map(|&n| (n, cap)).collect();
    let mut claims: BTreeMap<u64, usize> = BTreeMap::new();
    for n in now.values().flatten() {
        *claims.entry(*n).or_default() += 1;
    }
    let mut out = BTreeMap::new();
    for (done, (&group, current)) in now.iter().enumerate() {
        let mut order = current.clone();
        for n in current {
            *claims.get_mut(n).expect("counted above") -= 1;
        }
        order.sort_by_key(|n| room[n] <= claims[n]);
        let mut rest: Vec<u64> = ranked(group, nodes)
            .into_iter()
            .filter(|n| !order.contains(n))
            .collect();
        // Stable: within each part the rendezvous order stays.
        rest.sort_by_key(|n| room[n] <= claims.get(n).copied().unwrap_or(0));
        order.extend(rest);
        let picked = pick(order, r, now.len() - done, &room);
        for n in &picked {
            *room.get_mut(n).expect("picked from nodes") -= 1;
        }
        out.insert(group, picked);
    }
    out
}

/// One group's R nodes in its order of preference, taken so that the
/// `left - 1` groups after it can still each get R distinct nodes within
/// the room.
///
/// Those k = `left` groups fit iff Σ min(room, k) ≥ k·R (max-flow/min-cut
/// with equal demands). A node with room ≥ k loses one from that sum when
/// it is not picked, every other node loses nothing, and the R picked lose
/// one each; so the pick keeps the condition iff it includes all but
/// `slack` of the nodes with room ≥ k. The condition holds at the start
/// (room = ⌈G·R/N⌉ ≤ G on each of N nodes) and so for every group.
fn pick(order: Vec<u64>, r: usize, left: usize, room: &BTreeMap<u64, usize>) -> Vec<u64> {
    let total: usize = room.values().map(|&c| c.min(left)).sum();
    let slack = total - left * r;
    let tight = room.values().filter(|&&c| c >= left).count();
    let mut must = tight.saturating_sub(slack);
    let mut picked = Vec::with_capacity(r);
    for n in order {
        if picked.len() == r {
            break;
        }
        let c = room[&n];
        if c == 0 {
            continue;
        }
        if c >= left {
            must = must.saturating_sub(1);
            picked.push(n);
        } else if r - picked.len() > must {
            picked.push(n);
        }
    }
    debug_assert_eq!(picked.len(), r, "the room condition guarantees a full pick");
    picked
}

#[cfg(test)]
mod tests {
    use super::super::placement::tests::ids;
    use super::super::{place, preferred_leaders};
    use super::*;

    #[test]
    fn balanced_placement_fills_every_group_within_the_cap() {
        for n in 1..=9 {
            let nodes = ids(n);
            for g in 0..=40u64 {
                let groups: Vec<u64> = (1..=g).collect();
                for r in 1..=4 {
                    let placed = place_balanced(&groups, &nodes, r);
                    let rr = r.min(n);
                    let cap = (g as usize * rr).div_ceil(n);
                    assert_eq!(placed.keys().copied().collect::<Vec<_>>(), groups);
                    let mut load: BTreeMap<u64, usize> = BTreeMap::new();
                    for (id, reps) in &placed {
                        assert_eq!(reps.len(), rr, "N {n} G {g} R {r}: group {id}");
                        assert_eq!(node_set(reps).len(), rr, "distinct replicas");
                        for x in reps {
                            *load.entry(*x).or_default() += 1;
                        }
                    }
                    let max = load.values().copied().max().unwrap_or(0);
                    assert!(max <= cap, "N {n} G {g} R {r}: a node holds {max} > {cap}");
                    assert_eq!(place_balanced(&groups, &nodes, r), placed);
                }
            }
        }
    }

    /// The first group meets full room everywhere, so it gets exactly its
    /// rendezvous nodes; later ones too wherever the cap does not bind.
    #[test]
    fn balanced_placement_starts_as_plain_rendezvous() {
        for n in 1..=6 {
            let nodes = ids(n);
            for g in 1..=10u64 {
                let groups: Vec<u64> = (1..=g).collect();
                for r in 1..=3 {
                    let placed = place_balanced(&groups, &nodes, r);
                    assert_eq!(placed[&1], place(1, &nodes, r), "N {n} G {g} R {r}");
                }
            }
        }
    }

    #[test]
    fn no_nodes_or_no_replicas_place_nothing() {
        let empty = place_balanced(&[1, 2], &[], 3);
        assert!(empty.values().all(Vec::is_empty));
        let zero = place_balanced(&[1, 2], &[1, 2, 3], 0);
        assert_eq!(zero.len(), 2);
        assert!(zero.values().all(Vec::is_empty));
        assert!(place_balanced(&[], &[1], 1).is_empty());
    }

    /// Every group on R distinct nodes of `nodes`, no node over the cap;
    /// the load of each node.
    fn check(placed: &BTreeMap<u64, Vec<u64>>, nodes: &[u64], r: usize) -> BTreeMap<u64, usize> {
        let rr = r.min(nodes.len());
        let cap = (placed.len() * rr).div_ceil(nodes.len().max(1));
        let mut load: BTreeMap<u64, usize> = BTreeMap::new();
        for (id, reps) in placed {
            assert_eq!(reps.len(), rr, "group {id}: {reps:?}");
            assert_eq!(node_set(reps).len(), rr, "group {id}: {reps:?}");
            for x in reps {
                assert!(nodes.contains(x), "group {id} on {x}, not a node");
                *load.entry(*x).or_default() += 1;
            }
        }
        assert!(load.values().all(|&l| l <= cap), "{load:?} over {cap}");
        load
    }

    fn with(map: &ShardMap, placed: &BTreeMap<u64, Vec<u64>>) -> ShardMap {
        let mut m = map.clone();
        for g in &mut m.groups {
            g.replicas = placed[&g.id].clone();
        }
        m
    }

    fn moved(map: &ShardMap, placed: &BTreeMap<u64, Vec<u64>>) -> usize {
        map.groups
            .iter()
            .map(|g| {
                placed[&g.id]
                    .iter()
                    .filter(|n| !g.replicas.contains(n))
                    .count()
            })
            .sum()
    }

    fn leaders_within_ceiling(map: &ShardMap, nodes: &[u64]) {
        let leaders = preferred_leaders(map, nodes);
        let mut load: BTreeMap<u64, usize> = BTreeMap::new();
        for n in leaders.values() {
            *load.entry(*n).or_default() += 1;
        }
        let ceil = map.groups.len().div_ceil(nodes.len());
        assert!(load.values().all(|&l| l <= ceil), "{load:?} over {ceil}");
    }

    #[test]
    fn rebalance_leaves_a_map_within_the_cap_alone() {
        for n in 1..=9 {
            let nodes = ids(n);
            for g in 0..=20 {
                for r in 1..=3 {
                    let map = ShardMap::initial(&nodes, g, r).unwrap();
                    let placed = rebalance(&map, &nodes, r);
                    assert_eq!(with(&map, &placed), map, "N {n} G {g} R {r}");
                }
            }
        }
    }

    /// The lower bound on moves: the replicas over the cap, with `r` per
    /// group on `nodes`, of the loads in `map`.
    fn forced(map: &ShardMap, nodes: usize, r: usize) -> usize {
        let cap = (map.groups.len() * r).div_ceil(nodes);
        let mut load: BTreeMap<u64, usize> = BTreeMap::new();
        for n in map.groups.iter().flat_map(|g| &g.replicas) {
            *load.entry(*n).or_default() += 1;
        }
        load.values().map(|&l| l.saturating_sub(cap)).sum()
    }

    /// A new node takes replicas from the nodes over the new cap and
    /// little else: within 2 moves of that lower bound (the greedy pass is
    /// not exact), and fewer than placing afresh for every G.
    #[test]
    fn adding_a_node_moves_about_what_the_cap_forces() {
        for g in [3, 6, 12, 24, 100] {
            let (mut ours, mut afresh) = (0, 0);
            for r in 1..=3 {
                for n in r..=8 {
                    let all = ids(n + 1);
                    let map = ShardMap::initial(&all[..n], g, r).unwrap();
                    let placed = rebalance(&map, &all, r);
                    check(&placed, &all, r);
                    let (m, f) = (moved(&map, &placed), forced(&map, n + 1, r));
                    assert!(m <= f + 2, "G {g} R {r} N {n}: {m} moved, {f} forced");
                    leaders_within_ceiling(&with(&map, &placed), &all);
                    ours += m;
                    let ids: Vec<u64> = (1..=g).collect();
                    afresh += moved(&map, &place_balanced(&ids, &all, r));
                }
            }
            assert!(ours < afresh, "G {g}: {ours} moves against {afresh} afresh");
        }
    }

    /// The removed node's replicas move, and at most two more where the
    /// cap leaves a group only nodes it already has.
    #[test]
    fn removing_a_node_moves_its_replicas_and_little_else() {
        for g in [3, 6, 12, 24, 100] {
            for r in 1..=3 {
                for n in (r + 1)..=9 {
                    let all = ids(n);
                    let map = ShardMap::initial(&all, g, r).unwrap();
                    let gone = all[n / 2];
                    let rest: Vec<u64> = all.iter().copied().filter(|&x| x != gone).collect();
                    let placed = rebalance(&map, &rest, r);
                    check(&placed, &rest, r);
                    let held = map
                        .groups
                        .iter()
                        .filter(|x| x.replicas.contains(&gone))
                        .count();
                    let m = moved(&map, &placed);
                    assert!(
                        m >= held && m <= held + 2,
                        "G {g} R {r} N {n}: {m}, {held} held"
                    );
                    leaders_within_ceiling(&with(&map, &placed), &rest);
                }
            }
        }
    }

    /// R up: each group gains one replica and keeps the others, all but
    /// a move or so; R down: groups drop one, and take a new node only where
    /// the cap makes them (a few in a hundred).
    #[test]
    fn changing_r_keeps_what_it_can() {
        for g in [3, 6, 12, 24, 100] {
            for r in 1..=3 {
                for n in (r + 1)..=9 {
                    let nodes = ids(n);
                    let map = ShardMap::initial(&nodes, g, r).unwrap();
                    let up = rebalance(&map, &nodes, r + 1);
                    check(&up, &nodes, r + 1);
                    let m = moved(&map, &up);
                    assert!(m <= g as usize + 1, "G {g} R {r}→{} N {n}: {m}", r + 1);
                    if r > 1 {
                        let down = rebalance(&map, &nodes, r - 1);
                        check(&down, &nodes, r - 1);
                        let m = moved(&map, &down);
                        let few = (g as usize * (r - 1)).div_ceil(20).max(2);
                        assert!(m <= few, "G {g} R {r}→{} N {n}: {m} > {few}", r - 1);
                    }
                }
            }
        }
    }

    /// Replicas on unknown nodes or listed twice are dropped, not kept.
    #[test]
    fn rebalance_repairs_a_broken_map() {
        let map = ShardMap {
            epoch: 3,
            groups: vec![
                super::super::GroupInfo {
                    id: 1,
                    replicas: vec![9, 9, 1],
                    vnodes: 1,
                },
                super::super::GroupInfo {
                    id: 2,
                    replicas: vec![],
                    vnodes: 1,
                },
            ],
        };
        let placed = rebalance(&map, &[1, 2, 3], 2);
        check(&placed, &[1, 2, 3], 2);
        assert!(placed[&1].contains(&1));
        assert!(rebalance(&map, &[], 2).values().all(Vec::is_empty));
    }
}
