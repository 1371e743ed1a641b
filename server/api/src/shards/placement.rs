//! Group → nodes: rendezvous (highest-random-weight) hashing.

use super::{node_set, place_weight};
use std::cmp::Reverse;

/// The `min(r, nodes)` nodes that should hold `group`: those with the
/// highest rendezvous weight for it, highest first. Order and repeats in
/// `nodes` do not matter.
///
/// Each node's weight for a group depends on the two ids alone, so adding
/// a node changes a group's set only if the new node outranks one of its R
/// (chance R/(N+1)), and then by that one swap; removing a node changes
/// only the groups it held.
pub fn place(group: u64, nodes: &[u64], r: usize) -> Vec<u64> {
    let mut ranked = ranked(group, nodes);
    ranked.truncate(r);
    ranked
}

/// All nodes, highest weight for `group` first; ties (never seen in
/// practice) by lower id, so the order is total.
pub(super) fn ranked(group: u64, nodes: &[u64]) -> Vec<u64> {
    let mut v = node_set(nodes);
    v.sort_by_key(|&n| (Reverse(place_weight(group, n)), n));
    v
}

#[cfg(test)]
pub(in crate::shards) mod tests {
    use super::*;

    pub(in crate::shards) fn ids(n: usize) -> Vec<u64> {
        // Not 1..=n, so nothing rests on ids being small or dense.
        (0..n as u64).map(|i| 3 + 7 * i * i).collect()
    }

    #[test]
    fn place_takes_min_r_distinct_nodes_whatever_the_input_order() {
        let nodes = ids(5);
        let mut shuffled = nodes.clone();
        shuffled.reverse();
        shuffled.push(nodes[2]);
        for g in 1..50 {
            for r in 0..=7 {
                let p = place(g, &nodes, r);
                assert_eq!(p.len(), r.min(5));
                assert_eq!(node_set(&p).len(), p.len());
                assert!(p.iter().all(|n| nodes.contains(n)));
                assert_eq!(place(g, &shuffled, r), p);
                // The first R of a larger R: growing R never reshuffles.
                assert_eq!(place(g, &nodes, 5)[..p.len()], p[..]);
            }
        }
        assert!(place(1, &[], 3).is_empty());
    }

    #[test]
    fn place_is_pinned() {
        let got: Vec<Vec<u64>> = (1..=4).map(|g| place(g, &[1, 2, 3, 4, 5], 3)).collect();
        assert_eq!(got, PINNED_PLACE);
    }

    const PINNED_PLACE: [[u64; 3]; 4] = [[5, 1, 3], [2, 4, 1], [4, 1, 2], [4, 1, 3]];

    /// Adding node N+1 changes about R/(N+1) of the groups, each by one
    /// swap for the new node.
    #[test]
    fn adding_a_node_moves_about_r_over_n_plus_one() {
        let groups: Vec<u64> = (1..=2_000).collect();
        for r in 1..=3 {
            for n in r..=8 {
                let all = ids(n + 1);
                let (old, new) = (&all[..n], all[n]);
                let mut changed = 0;
                for &g in &groups {
                    let (a, b) = (place(g, old, r), place(g, &all, r));
                    if a != b {
                        changed += 1;
                        let gone: Vec<_> = a.iter().filter(|x| !b.contains(x)).collect();
                        let came: Vec<_> = b.iter().filter(|x| !a.contains(x)).collect();
                        assert_eq!((gone.len(), came), (1, vec![&new]), "group {g}");
                    }
                }
                let share = changed as f64 / groups.len() as f64;
                let expect = r as f64 / (n + 1) as f64;
                assert!(
                    (0.5 * expect..=1.6 * expect).contains(&share),
                    "R {r}, N {n} → {}: {share:.3} of groups changed, about {expect:.3} expected",
                    n + 1
                );
            }
        }
    }
}
