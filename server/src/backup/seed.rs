//! Seeding a new cluster from a backup: new members, a new cluster id, and
//! the queue groups placed again over the new nodes.

use std::collections::{BTreeMap, BTreeSet};

use dsync_api::shards::place_balanced;
use openraft::{BasicNode, CommittedLeaderId, LogId, Membership, StoredMembership};

use super::Backup;
use crate::raft::snapshot::SnapshotFile;
use crate::raft::SnapshotMeta;

/// The snapshot a node of a new cluster starts from: the backup's state
/// under a new membership (`members`: id → address, all voters) and a new
/// cluster id. Its log id keeps the index (so revisions and fencing tokens
/// continue upward) but takes term 0: the new cluster's first election is
/// term 1, and a leader's term must not be below the last log entry's.
pub fn seed_for_new_cluster(
    mut snap: SnapshotFile,
    members: &BTreeMap<u64, String>,
    cluster_id: String,
) -> SnapshotFile {
    let index = snap.meta.last_log_id.map_or(0, |l| l.index);
    let log_id = LogId::new(CommittedLeaderId::new(0, 0), index);
    let voters: BTreeSet<u64> = members.keys().copied().collect();
    let nodes: BTreeMap<u64, BasicNode> = members
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr.clone())))
        .collect();
    let membership = Membership::new(vec![voters], nodes);
    snap.meta = SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: StoredMembership::new(Some(log_id), membership),
        snapshot_id: format!("restored-{index}"),
    };
    snap.data.cluster_id = Some(cluster_id);
    snap
}

/// A queue group's snapshot for the new cluster, and the nodes that hold it.
pub struct SeededGroup {
    pub id: u64,
    pub replicas: Vec<u64>,
    pub snapshot: SnapshotFile,
}

/// The control group's seeded snapshot and each queue group's. The groups
/// keep their ids and vnodes, so every topic routes to the group that
/// holds its messages; their replicas are placed again over `members`
/// (as many per group as before, at most the node count), and the map's
/// epoch moves on.
pub fn seed_groups(
    backup: Backup,
    members: &BTreeMap<u64, String>,
    cluster_id: String,
) -> (SnapshotFile, Vec<SeededGroup>) {
    let mut control = seed_for_new_cluster(backup.control, members, cluster_id.clone());
    let nodes: Vec<u64> = members.keys().copied().collect();
    let map = &mut control.data.shards;
    let r = map.replica_count().min(nodes.len());
    let ids: Vec<u64> = map.groups.iter().map(|g| g.id).collect();
    let mut placed = place_balanced(&ids, &nodes, r);
    for g in &mut map.groups {
        g.replicas = placed.remove(&g.id).unwrap_or_default();
    }
    if !map.groups.is_empty() {
        map.epoch += 1;
    }
    let groups = backup
        .groups
        .into_iter()
        .map(|(id, snap)| {
            let replicas = map
                .group(id)
                .map(|g| g.replicas.clone())
                .unwrap_or_default();
            let group_members: BTreeMap<u64, String> = replicas
                .iter()
                .filter_map(|n| members.get(n).map(|a| (*n, a.clone())))
                .collect();
            SeededGroup {
                id,
                replicas,
                snapshot: seed_for_new_cluster(snap, &group_members, cluster_id.clone()),
            }
        })
        .collect();
    (control, groups)
}
