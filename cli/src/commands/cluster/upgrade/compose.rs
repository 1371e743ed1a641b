//! The compose runtime's half of `cluster upgrade --image IMAGE`: one
//! node's service is pointed at the new image and its container recreated
//! on the same volume and published port, the others left running.

use std::collections::HashMap;

use anyhow::{bail, Context};

use super::{caught_up, drain, CatchUp, Ctx, NodeResult, Release, Step};
use crate::cluster_file::ClusterFile;
use crate::commands::cluster::wait::{wait_for, Watched};
use crate::compose::{container_image_id, start_nodes, ComposeDoc, ComposeInfo};
use crate::progress::Progress;

/// Which nodes already run `reference` (image `id`): their service names it
/// and their container was created from it.
pub(super) fn on_image(
    info: &ComposeInfo,
    file: &ClusterFile,
    reference: &str,
    id: &str,
) -> anyhow::Result<HashMap<u64, bool>> {
    let doc = ComposeDoc::load(&info.file)?;
    let mut on = HashMap::new();
    for n in &file.nodes {
        let named = doc.image(n.id).as_deref() == Some(reference);
        let running = container_image_id(info, n.id)?;
        on.insert(n.id, named && running.as_deref() == Some(id));
    }
    Ok(on)
}

/// Drain, recreate on the new image, wait; on failure the previous image
/// comes back.
pub(super) async fn upgrade_node(
    ctx: &Ctx<'_>,
    file: &mut ClusterFile,
    step: &Step,
    progress: &mut Progress,
) -> anyhow::Result<NodeResult> {
    let Release::Image { reference, id } = ctx.release else {
        bail!("not an image upgrade");
    };
    let info = file
        .compose
        .clone()
        .context("compose cluster without compose info")?;
    let node = step.id;
    let addr = file
        .nodes
        .iter()
        .find(|n| n.id == node)
        .map(|n| n.addr.clone())
        .context("node missing from the cluster file")?;
    let old = ComposeDoc::load(&info.file)?
        .image(node)
        .unwrap_or_else(|| info.image.clone());
    if let Err(res) = drain(&addr, step, ctx, progress).await {
        return Ok(res);
    }
    progress.step(format!(
        "node {node}: replacing its container ({old} → {reference})"
    ));
    let version = ctx.target.version.as_str();
    let replaced = replace(
        ctx,
        file,
        &info,
        node,
        reference,
        Some(id),
        version,
        progress,
    )
    .await;
    let Err(why) = replaced else {
        progress.note(format!("node {node}: upgraded to {reference} ({version})"));
        return Ok(NodeResult::upgraded(step, version));
    };
    progress.note(format!("node {node}: {why:#}; rolling back to {old}"));
    let back = replace(
        ctx,
        file,
        &info,
        node,
        &old,
        None,
        &step.from_version,
        progress,
    )
    .await;
    Ok(match back {
        Ok(()) => NodeResult::failed(
            step,
            "rolled_back",
            format!("{why:#}; the previous image runs again"),
        ),
        Err(e) => NodeResult::failed(
            step,
            "failed",
            format!("{why:#}; rollback failed too: {e:#}"),
        ),
    })
}

/// Points node `id`'s service at `image`, lets compose recreate its
/// container (SIGTERM, then the stop grace period), and waits until the
/// node runs `version`, follows the leader as a voter and has caught up.
#[allow(clippy::too_many_arguments)]
async fn replace(
    ctx: &Ctx<'_>,
    file: &mut ClusterFile,
    info: &ComposeInfo,
    id: u64,
    image: &str,
    image_id: Option<&str>,
    version: &str,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let mut doc = ComposeDoc::load(&info.file)?;
    doc.set_image(id, image)?;
    doc.save(&info.file)?;
    start_nodes(info, &[id])?;
    if let Some(want) = image_id {
        let got = container_image_id(info, id)?;
        if got.as_deref() != Some(want) {
            bail!("its container runs image {got:?}, not {want}");
        }
    }
    let n = file.nodes.len();
    let mut watched: Vec<Watched> = file.nodes.iter().map(Watched::of).collect();
    let what = format!("waiting for node {id} to run {version} and catch up");
    let catch_up = CatchUp::default();
    wait_for(&mut watched, ctx.timeout, progress, &what, |o| {
        caught_up(id, Some(version), n, o, &catch_up)
    })
    .await?;
    if let Some(node) = file.node_mut(id) {
        node.version = version.to_string();
    }
    file.save(&ctx.dir)?;
    Ok(())
}
