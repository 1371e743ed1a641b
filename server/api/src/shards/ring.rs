//! Topic → group: a consistent-hash ring with virtual nodes.

use super::{route_name, topic_point, vnode_point, ShardMap, CONTROL_GROUP};

/// The ring of one [`ShardMap`]: every vnode point of every queue group,
/// sorted. Build it once per map epoch and route with [`Ring::group_of`].
///
/// A group's points depend only on its id and vnode count, never on the
/// other groups, so adding a group only inserts its points: the topics
/// that move are exactly those that now land on one of them, and they all
/// move to the new group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    epoch: u64,
    /// (point, group), sorted; equal points keep the lower group first.
    points: Vec<(u64, u64)>,
}

impl Ring {
    /// Hashes and sorts every vnode: O(P log P) for P = G·V points
    /// (2,048 for 8 groups of 256), 16 bytes each. Vnodes are capped per
    /// group; the number of groups is the map's, which
    /// [`ShardMap::validate`] bounds.
    pub fn new(map: &ShardMap) -> Self {
        let mut points: Vec<(u64, u64)> = map
            .ring_groups()
            .flat_map(|(group, vnodes)| (0..vnodes).map(move |i| (vnode_point(group, i), group)))
            .collect();
        points.sort_unstable();
        Ring {
            epoch: map.epoch,
            points,
        }
    }

    /// The epoch of the map this ring was built from: rebuild when the
    /// map's epoch moves on.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The group that holds `topic` (dead letters with their topic, see
    /// [`route_name`]): the first point at or after the topic's hash, wrapping around; the control group if the map has no
    /// queue groups. One XXH3 of the topic and a binary search,
    /// O(log(G·V)), no allocation.
    pub fn group_of(&self, topic: &str) -> u64 {
        let h = topic_point(route_name(topic));
        let i = self.points.partition_point(|&(p, _)| p < h);
        match self.points.get(i).or(self.points.first()) {
            Some(&(_, group)) => group,
            None => CONTROL_GROUP,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::{GroupInfo, DEFAULT_VNODES};
    use super::*;

    fn map_of(groups: u64, vnodes: u32) -> ShardMap {
        ShardMap {
            epoch: groups,
            groups: (1..=groups)
                .map(|id| GroupInfo {
                    id,
                    replicas: vec![1],
                    vnodes,
                })
                .collect(),
        }
    }

    /// Names shaped like real ones: a few prefixes, then counters.
    fn topics(n: usize) -> Vec<String> {
        const PREFIX: [&str; 4] = ["orders", "billing.events", "jobs/", "t"];
        (0..n)
            .map(|i| format!("{}-{}", PREFIX[i % PREFIX.len()], i / PREFIX.len()))
            .collect()
    }

    fn counts(ring: &Ring, topics: &[String]) -> BTreeMap<u64, usize> {
        let mut c = BTreeMap::new();
        for t in topics {
            *c.entry(ring.group_of(t)).or_default() += 1;
        }
        c
    }

    /// Largest relative distance of a group's count from the mean.
    fn worst_spread(groups: u64, vnodes: u32, n: usize) -> f64 {
        let c = counts(&Ring::new(&map_of(groups, vnodes)), &topics(n));
        assert_eq!(
            c.keys().copied().collect::<Vec<_>>(),
            (1..=groups).collect::<Vec<_>>()
        );
        let mean = n as f64 / groups as f64;
        c.values()
            .map(|&k| (k as f64 - mean).abs() / mean)
            .fold(0.0, f64::max)
    }

    #[test]
    fn topics_spread_within_a_quarter_of_the_mean() {
        for n in [1_000, 10_000] {
            for g in [3, 4, 6, 8] {
                let worst = worst_spread(g, DEFAULT_VNODES, n);
                assert!(worst <= 0.25, "{n} topics over {g} groups: {worst:.3}");
            }
        }
    }

    #[test]
    fn adding_a_group_moves_only_its_share_and_only_to_it() {
        let names = topics(10_000);
        for g in 1..=11u64 {
            let before = Ring::new(&map_of(g, DEFAULT_VNODES));
            let after = Ring::new(&map_of(g + 1, DEFAULT_VNODES));
            let mut moved = 0;
            for t in &names {
                let (a, b) = (before.group_of(t), after.group_of(t));
                if a != b {
                    assert_eq!(b, g + 1, "{t} moved from {a} to {b}, not the new group");
                    moved += 1;
                }
            }
            let share = moved as f64 / names.len() as f64;
            let expect = 1.0 / (g + 1) as f64;
            assert!(
                (0.5 * expect..=1.6 * expect).contains(&share),
                "G {g} → {}: {share:.3} moved, about {expect:.3} expected",
                g + 1
            );
        }
    }

    #[test]
    fn no_queue_groups_route_to_the_control_group() {
        let ring = Ring::new(&ShardMap::default());
        assert_eq!(ring.group_of("orders"), CONTROL_GROUP);
        assert_eq!(ring.group_of(""), CONTROL_GROUP);
        let one = Ring::new(&map_of(1, DEFAULT_VNODES));
        assert!(topics(100).iter().all(|t| one.group_of(t) == 1));
    }

    #[test]
    fn the_map_and_the_ring_agree() {
        for (g, v) in [(1, 1), (3, 2), (4, DEFAULT_VNODES), (7, 64)] {
            let map = map_of(g, v);
            let ring = Ring::new(&map);
            assert_eq!(ring.epoch(), map.epoch);
            for t in topics(2_000) {
                assert_eq!(map.group_of(&t), ring.group_of(&t), "{t} over {g}×{v}");
            }
        }
    }

    /// What the lookup cost rests on: one point per vnode, sorted (so a
    /// binary search finds the successor), and no more than the cap
    /// however large a map's vnode counts.
    #[test]
    fn the_ring_is_one_sorted_point_per_vnode() {
        let ring = Ring::new(&map_of(8, DEFAULT_VNODES));
        assert_eq!(ring.points.len(), 8 * DEFAULT_VNODES as usize);
        assert!(ring.points.windows(2).all(|w| w[0] <= w[1]));
        let huge = Ring::new(&map_of(2, u32::MAX));
        assert_eq!(huge.points.len(), 2 * super::super::MAX_VNODES as usize);
    }

    /// Past the last point the search wraps to the first one.
    #[test]
    fn the_ring_wraps_around() {
        let ring = Ring::new(&map_of(3, 1));
        let (first, last) = (ring.points[0], *ring.points.last().unwrap());
        let past_last = topics(100_000)
            .into_iter()
            .find(|t| topic_point(t) > last.0)
            .expect("some topic hashes past the last of three points");
        assert_eq!(ring.group_of(&past_last), first.1);
        assert_ne!(first.1, last.1);
    }

    /// Known answers: a change of hash, seed, byte layout or search rule
    /// reroutes topics of running clusters, and must fail here first.
    #[test]
    fn known_topics_keep_their_groups() {
        let ring = Ring::new(&map_of(8, DEFAULT_VNODES));
        let got: Vec<(&str, u64)> = PINNED.iter().map(|&(t, _)| (t, ring.group_of(t))).collect();
        assert_eq!(got, PINNED);
        let four = Ring::new(&map_of(4, DEFAULT_VNODES));
        let got: Vec<u64> = PINNED.iter().map(|&(t, _)| four.group_of(t)).collect();
        assert_eq!(got, PINNED_OVER_4);
    }

    const PINNED: [(&str, u64); 8] = [
        ("orders", 6),
        ("billing.events", 8),
        ("jobs/resize", 7),
        ("t", 7),
        ("", 8),
        ("émoji-🦀", 6),
        ("tenant-42.audit", 2),
        ("a", 8),
    ];
    // Also what the reference C xxh3 with a sorted table and the same
    // search gives.
    const PINNED_OVER_4: [u64; 8] = [2, 1, 4, 2, 2, 2, 2, 4];
}
