//! Queue shards: which group holds a topic, and which nodes hold a group
//! (DESIGN.md §2a).
//!
//! Everything here is a pure function of a [`ShardMap`] and node ids, so a
//! server, a client and the dashboard that hold the same map (same epoch)
//! compute the same answers, in any process and any release:
//!
//! - [`Ring`] / [`ShardMap::group_of`]: topic → queue group, consistent
//!   hashing with [`DEFAULT_VNODES`] virtual nodes per group. Adding a group
//!   moves only the topics the new group takes, about 1/(G+1) of them.
//! - [`place`]: group → its R nodes, rendezvous (highest-random-weight)
//!   hashing; adding a node moves about R/(N+1) of each group's replicas.
//! - [`place_balanced`] (used by [`ShardMap::initial`]): the same preference
//!   with a per-node cap of ⌈G·R/N⌉ replicas, which is what makes the leader
//!   bound below always reachable; [`rebalance`] moves a running map to
//!   new nodes or a new R within that cap, keeping what it can.
//! - [`preferred_leaders`]: one leader per queue group, no node leading more
//!   than ⌈G/N⌉ of them whenever the replica sets allow it.
//!
//! The hashes are XXH3-64 with fixed seeds; the unit tests pin known answers,
//! so a change of hash, seed or byte layout (which would silently reroute
//! every topic of a running cluster) fails the build's tests.

mod balanced;
mod jobs;
mod leaders;
mod map;
mod placement;
mod reshard;
mod ring;
mod status;

pub use balanced::{place_balanced, rebalance};
pub use jobs::{
    moved_replicas, plan_moves, JobState, MovePhase, RebalancePlan, RebalanceRequest, ReplicaMove,
    ShardJob,
};
pub use leaders::preferred_leaders;
pub use map::{GroupInfo, ShardMap, ShardMapError, MAX_GROUPS, MAX_VNODES};
pub use placement::place;
pub use reshard::{reshard_target, route_name, ReshardPlan, ReshardRequest, TopicMove, TopicPhase};
pub use ring::Ring;
pub use status::{GroupMove, GroupStatus, InitShards, ReplicaStatus, ShardsStatus, HEADER_GROUP};

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The control group: locks, KV, the cache directory, membership and the
/// shard map itself. It holds topics only in a map with no queue groups.
pub const CONTROL_GROUP: u64 = 0;

/// Virtual nodes per queue group on the ring unless the map says otherwise.
pub const DEFAULT_VNODES: u32 = 256;

/// Replicas per queue group unless configured otherwise (fewer if the
/// cluster has fewer nodes).
pub const DEFAULT_REPLICAS: usize = 3;

// Distinct seeds keep the topic hash, the ring points and the two
// rendezvous weights independent of each other. Never change them: every
// running cluster's routes depend on them.
const SEED_TOPIC: u64 = 0x6473_796e_6330_7470; // "dsync0tp"
const SEED_VNODE: u64 = 0x6473_796e_6330_766e; // "dsync0vn"
const SEED_PLACE: u64 = 0x6473_796e_6330_706c; // "dsync0pl"
const SEED_LEADER: u64 = 0x6473_796e_6330_6c64; // "dsync0ld"

/// Where a topic falls on the ring.
fn topic_point(topic: &str) -> u64 {
    xxh3_64_with_seed(topic.as_bytes(), SEED_TOPIC)
}

/// Where virtual node `vnode` of `group` sits on the ring.
fn vnode_point(group: u64, vnode: u32) -> u64 {
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&group.to_le_bytes());
    b[8..].copy_from_slice(&vnode.to_le_bytes());
    xxh3_64_with_seed(&b, SEED_VNODE)
}

/// Rendezvous weight of `node` for holding a replica of `group`.
fn place_weight(group: u64, node: u64) -> u64 {
    pair_hash(group, node, SEED_PLACE)
}

/// Rendezvous weight of `node` for leading `group`, independent of the
/// placement weight so the leader is not always the first-placed replica.
fn leader_weight(group: u64, node: u64) -> u64 {
    pair_hash(group, node, SEED_LEADER)
}

fn pair_hash(a: u64, b: u64, seed: u64) -> u64 {
    let mut buf = [0u8; 16];
    buf[..8].copy_from_slice(&a.to_le_bytes());
    buf[8..].copy_from_slice(&b.to_le_bytes());
    xxh3_64_with_seed(&buf, seed)
}

/// Sorted, deduplicated copy of a node list: the functions here treat their
/// node arguments as sets, whatever order or repeats the caller passes.
fn node_set(nodes: &[u64]) -> Vec<u64> {
    let mut v = nodes.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The XXH3 reference vectors: if the crate ever changed its output,
    /// every route would change with it.
    #[test]
    fn xxh3_matches_the_reference_vectors() {
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), 0x2D06_8005_38D3_94C2);
        assert_eq!(xxh3_64_with_seed(b"", 0), 0x2D06_8005_38D3_94C2);
    }

    #[test]
    fn the_hashes_are_pinned() {
        assert_eq!(topic_point("orders"), PINNED_TOPIC);
        assert_eq!(vnode_point(1, 0), PINNED_VNODE);
        assert_eq!(place_weight(1, 2), PINNED_PLACE);
        assert_eq!(leader_weight(1, 2), PINNED_LEADER);
    }

    // Computed with the reference C library too (libxxhash through Python's
    // xxhash, same seeds and little-endian layout), so a client in another
    // language can route the same way.
    const PINNED_TOPIC: u64 = 0x5695_da02_5483_5eba;
    const PINNED_VNODE: u64 = 0x9ac7_8615_64b4_cb30;
    const PINNED_PLACE: u64 = 0x28d9_45cc_57a3_ad31;
    const PINNED_LEADER: u64 = 0x3ddd_9503_4873_be5b;

    #[test]
    fn node_lists_are_sets() {
        assert_eq!(node_set(&[3, 1, 3, 2, 1]), vec![1, 2, 3]);
        assert!(node_set(&[]).is_empty());
    }
}
