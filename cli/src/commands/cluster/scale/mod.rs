//! `dsync cluster scale --nodes N`: grow or shrink the cluster one member
//! at a time, never stopping a node before it left the membership. New
//! nodes are processes (local.rs) or containers (compose.rs).

mod compose;
mod local;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use dsync_api::types::MemberKind;
use serde::Serialize;

use super::wait::{all_follow, healthy, Watched};
use crate::cluster_file::ClusterFile;
use crate::commands::shard::rebalance::rebalance_and_follow;
use crate::context::{GlobalArgs, RequestError, RequestExt};

use crate::node_process::owner;
use crate::output::Table;
use crate::process_handle::STOP_GRACE;
use crate::progress::Progress;

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Number of voters the cluster should have, 1 to 9. Odd sizes are
    /// recommended: an even size tolerates no more failures than one fewer.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub nodes: u8,

    /// Seconds to wait for new nodes to catch up and become voters.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub timeout: u64,
}

#[derive(Debug, Serialize)]
struct ScaleReport {
    from: usize,
    to: usize,
    added: Vec<u64>,
    removed: Vec<u64>,
    /// Queue group replicas moved onto new nodes or off leaving ones.
    replicas_moved: usize,
    leader: Option<u64>,
    warning: Option<String>,
}

pub async fn run(global: &GlobalArgs, args: ScaleArgs) -> anyhow::Result<i32> {
    let dir = global.dir()?;
    let Some(mut file) = ClusterFile::load(&dir)? else {
        bail!(
            "no cluster in {} (no cluster.yaml); start one with `dsync cluster up`",
            dir.display()
        );
    };
    if file.runtime != "local" && file.compose.is_none() {
        bail!(
            "scale drives the local and compose runtimes; this cluster uses {}",
            file.runtime
        );
    }
    file.ensure_here(&dir)?;
    let target = args.nodes as usize;
    let from = file.nodes.len();
    let warning = even_size_warning(target);
    if let Some(w) = &warning {
        eprintln!("warning: {w}");
    }
    let timeout = Duration::from_secs(args.timeout);
    let mut progress = Progress::new();
    let mut started = Vec::new();
    let mut moved_off = 0;
    let (added, removed) = if target > from {
        let adds = additions(&file, target)?;
        started = match file.compose.clone() {
            Some(info) => compose::grow(&dir, &info, &mut file, adds, &mut progress)?,
            None => local::grow(&dir, &mut file, adds, &mut progress)?,
        };
        (started.iter().map(|w| w.id).collect(), vec![])
    } else if target < from {
        let removed = shrink(
            global,
            &dir,
            &mut file,
            target,
            &mut progress,
            &mut moved_off,
        )
        .await?;
        (vec![], removed)
    } else {
        progress.note(format!("the cluster already has {from} nodes"));
        (vec![], vec![])
    };
    // Nodes started here are watched through their child handle, so a crash
    // at startup is reported at once.
    let mut watched: Vec<Watched> = file
        .nodes
        .iter()
        .filter(|n| !started.iter().any(|w| w.id == n.id))
        .map(Watched::of)
        .collect();
    watched.append(&mut started);
    let what = "waiting for every member to follow one leader as a voter";
    let statuses = all_follow(&mut watched, target, timeout, &mut progress, what).await?;
    let mut moved = 0;
    if !added.is_empty() && sharded(global).await? {
        progress.step("moving queue group replicas onto the new nodes");
        let client = global.client()?;
        moved = rebalance_and_follow(&client, vec![], timeout * 5, &mut progress).await?;
    }
    progress.finish();
    for s in &statuses {
        if let Some(node) = file.node_mut(s.id) {
            node.version.clone_from(&s.version);
        }
    }
    file.save(&dir)?;
    let report = ScaleReport {
        from,
        to: file.nodes.len(),
        added,
        removed,
        replicas_moved: moved + moved_off,
        leader: statuses.iter().find_map(|s| s.leader),
        warning,
    };
    global.output.print(&report, || {
        let mut t = Table::new(["FROM", "TO", "ADDED", "REMOVED", "REPLICAS MOVED", "LEADER"]);
        let ids = |v: &[u64]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
            }
        };
        t.row([
            report.from.to_string(),
            report.to.to_string(),
            ids(&report.added),
            ids(&report.removed),
            report.replicas_moved.to_string(),
            report.leader.map_or("-".into(), |l| l.to_string()),
        ]);
        t.render()
    })?;
    Ok(crate::commands::EXIT_OK)
}

/// Even sizes buy no extra fault tolerance over one node fewer.
fn even_size_warning(voters: usize) -> Option<String> {
    voters.is_multiple_of(2).then(|| {
        format!(
            "{voters} voters tolerate {} failure(s), no more than {}: prefer an odd size",
            (voters - 1) / 2,
            voters - 1
        )
    })
}

/// How long moving every replica off the leaving nodes may take.
const MOVE_OFF_TIMEOUT: Duration = Duration::from_secs(600);

/// Whether the cluster has queue groups (whose replicas must follow the
/// nodes).
async fn sharded(global: &GlobalArgs) -> anyhow::Result<bool> {
    Ok(!global.client()?.shards().await.api()?.map.groups.is_empty())
}

/// Removes members from the highest id down, skipping the leader, and
/// stops each node (process or container) only once the membership
/// without it has committed.
async fn shrink(
    global: &GlobalArgs,
    dir: &Path,
    file: &mut ClusterFile,
    target: usize,
    progress: &mut Progress,
    moved_off: &mut usize,
) -> anyhow::Result<Vec<u64>> {
    let client = global.client()?;
    let leader = client.status().await.api()?.leader;
    let mut candidates = Vec::new();
    for n in file.nodes.iter().filter(|n| Some(n.id) != leader) {
        candidates.push((n.id, healthy(n.id, &n.addr).await));
    }
    let victims = pick_victims(candidates, file.nodes.len() - target);
    if sharded(global).await? {
        // A node leaves only once no queue group keeps a replica on it.
        progress.step(format!("moving queue group replicas off nodes {victims:?}"));
        *moved_off =
            rebalance_and_follow(&client, victims.clone(), MOVE_OFF_TIMEOUT, progress).await?;
    }
    let mut removed = Vec::new();
    for (k, id) in victims.iter().copied().enumerate() {
        // Leadership may have moved since the victims were picked: a leader
        // hands off to a node that stays before it is removed.
        if client.status().await.api()?.leader == Some(id) {
            let to = file
                .nodes
                .iter()
                .map(|n| n.id)
                .find(|n| !victims[k..].contains(n));
            progress.step(format!("node {id} leads: transferring leadership first"));
            client.leader_transfer(to).await.api()?;
        }
        progress.step(format!("removing node {id} from the membership"));
        match client.remove_member(id).await {
            Ok(after) => {
                if after
                    .members
                    .iter()
                    .any(|m| m.id == id && m.kind == MemberKind::Voter)
                {
                    bail!("node {id} is still a voter after its removal was acknowledged");
                }
            }
            // A retried removal whose first attempt went through.
            Err(e) if e.code() == Some(dsync_api::ErrorCode::NotFound) => {}
            Err(e) => {
                return Err(RequestError(e)).with_context(|| {
                    format!("cannot remove node {id}; nodes removed so far: {removed:?}")
                })
            }
        }
        let node = file
            .nodes
            .iter()
            .find(|n| n.id == id)
            .cloned()
            .context("node missing from the cluster file")?;
        progress.step(format!("stopping node {id}"));
        // Its log still names it a member of the old configuration: delete
        // it so a future node with this id cannot start from it.
        match file.compose.clone() {
            Some(info) => compose::remove(&info, file, id)?,
            None => {
                if let Some(handle) = owner(dir, &node).ours() {
                    handle.stop(STOP_GRACE).await?;
                }
                std::fs::remove_dir_all(&node.dir)
                    .with_context(|| format!("cannot remove {}", node.dir.display()))?;
            }
        }
        file.nodes.retain(|n| n.id != id);
        file.save(dir)?;
        progress.note(format!("removed node {id}"));
        removed.push(id);
    }
    Ok(removed)
}

/// Which members to remove: nodes that are down first (removing them costs
/// no redundancy), then the highest ids.
fn pick_victims(mut candidates: Vec<(u64, bool)>, count: usize) -> Vec<u64> {
    candidates.sort_by_key(|(id, up)| (*up, std::cmp::Reverse(*id)));
    candidates
        .into_iter()
        .take(count)
        .map(|(id, _)| id)
        .collect()
}

/// The ids and free loopback ports of the nodes that grow `file` to
/// `target`: ids follow the highest there is, never reusing a removed one's.
fn additions(file: &ClusterFile, target: usize) -> anyhow::Result<Vec<(u64, u16)>> {
    let ports = crate::local::free_ports(target - file.nodes.len())?;
    let first = file.nodes.iter().map(|n| n.id).max().unwrap_or(0) + 1;
    Ok((first..).zip(ports).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_that_are_down_are_removed_first_then_the_highest_ids() {
        let c = vec![(2, true), (3, false), (4, true), (5, true)];
        assert_eq!(pick_victims(c.clone(), 2), vec![3, 5]);
        assert_eq!(pick_victims(c, 1), vec![3]);
        assert_eq!(pick_victims(vec![(2, true), (3, true)], 2), vec![3, 2]);
    }

    #[test]
    fn even_sizes_are_warned_about() {
        assert_eq!(even_size_warning(3), None);
        assert_eq!(even_size_warning(1), None);
        let w = even_size_warning(4).unwrap();
        assert!(w.contains("tolerate 1 failure(s), no more than 3"), "{w}");
    }
}
