//! `cluster up --shards`: the first shard map once the nodes have formed
//! the cluster, then a leader for every queue group.

use std::path::Path;
use std::time::Duration;

use dsync_api::{Client, ClientConfig};

use crate::cluster_file::ClusterFile;
use crate::commands::shard::init::{ensure, MapReport};
use crate::commands::shard::wait::wait_led;
use crate::context::{GlobalArgs, RequestExt};
use crate::progress::Progress;
use crate::secrets::Secrets;

/// Nothing for G = 0. Otherwise commits a map of G groups (or accepts the
/// one the cluster already has, if it has G groups) and waits until every
/// group has a leader.
pub(super) async fn ensure_groups(
    global: &GlobalArgs,
    dir: &Path,
    file: &ClusterFile,
    (groups, replicas): (u64, Option<u64>),
    timeout: Duration,
    progress: &mut Progress,
) -> anyhow::Result<Option<MapReport>> {
    if groups == 0 {
        return Ok(None);
    }
    let mut config = ClientConfig::new(file.endpoints());
    // A cluster this command just created with --auth token has its admin
    // token only now, after `run` looked for one.
    config.token = global.token.clone().or_else(|| Secrets::admin_token(dir));
    let client = Client::new(config).api()?;
    progress.step(format!("committing the shard map ({groups} queue groups)"));
    let ensured = ensure(&client, groups, replicas).await?;
    if let Some(note) = &ensured.note {
        progress.note(note);
    }
    progress.note(if ensured.created {
        format!(
            "committed shard map epoch {}: {groups} queue group(s)",
            ensured.map.epoch
        )
    } else {
        format!(
            "the cluster already has these {groups} queue group(s) (shard map epoch {})",
            ensured.map.epoch
        )
    });
    let nodes: Vec<(u64, String)> = file.nodes.iter().map(|n| (n.id, n.addr.clone())).collect();
    let leaders = wait_led(&client, &nodes, &ensured.map, timeout, progress).await?;
    Ok(Some(MapReport::new(ensured, leaders)))
}
