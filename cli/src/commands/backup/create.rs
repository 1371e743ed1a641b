//! `dsync backup create --out FILE`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use dsync_server::backup::{BackupHeader, BackupSummary};
use indicatif::HumanBytes;
use serde::Serialize;

use crate::context::{GlobalArgs, RequestExt};
use crate::output::Table;
use crate::progress::Progress;

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// File to write (replaced atomically if it exists). `-o` is the global
    /// --output, so the file is given with --out.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// Disaster recovery, no quorum needed: build the backup offline from a
    /// STOPPED node's data folder (its snapshot plus its whole log) instead
    /// of asking the cluster. The log's tail past the commit point may hold
    /// writes that were never acknowledged; the report shows both indexes.
    #[arg(long, value_name = "DIR")]
    pub from_data_dir: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Created {
    pub file: PathBuf,
    pub bytes: usize,
    pub header: BackupHeader,
    pub summary: BackupSummary,
    /// Set for offline backups taken with --from-data-dir.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub salvaged: Option<dsync_server::backup::Salvaged>,
}

pub async fn run(global: &GlobalArgs, args: CreateArgs) -> anyhow::Result<i32> {
    let mut progress = Progress::new();
    let created = match &args.from_data_dir {
        Some(dir) => salvage(dir, &args.out, &mut progress).await?,
        None => take(global, &args.out, &mut progress).await?,
    };
    progress.finish();
    global.output.print(&created, || table(&created))?;
    Ok(crate::commands::EXIT_OK)
}

/// Fetches a backup from the leader, verifies it and writes it to `out`.
pub async fn take(
    global: &GlobalArgs,
    out: &Path,
    progress: &mut Progress,
) -> anyhow::Result<Created> {
    let client = global.client()?;
    progress.step("asking the leader for a consistent snapshot");
    let mut shown = None;
    let bytes = client
        .backup(|total, got| {
            // One update per tenth, so piped output stays a few lines.
            let (step, text) = match total.filter(|t| *t > 0) {
                Some(t) => (
                    Some(got * 10 / t),
                    format!(
                        "downloading the backup: {} of {}",
                        HumanBytes(got),
                        HumanBytes(t)
                    ),
                ),
                None => (None, format!("downloading the backup: {}", HumanBytes(got))),
            };
            if step.is_none() || step != shown {
                shown = step;
                progress.step(text);
            }
        })
        .await
        .api()
        .context("backup failed")?;
    progress.step(format!("received {} bytes; verifying", bytes.len()));
    let backup = dsync_server::backup::decode_all(&bytes, "the backup received")
        .map_err(|e| anyhow::anyhow!("the cluster sent a damaged backup: {e}"))?;
    let summary = dsync_server::backup::summarize_all(&backup);
    let header = backup.header;
    progress.step(format!("writing {}", out.display()));
    super::write_atomic(out, &bytes)?;
    progress.note(format!(
        "wrote {} ({} bytes, index {}, term {}, {} queue groups)",
        out.display(),
        bytes.len(),
        header.index,
        header.term,
        header.groups.len()
    ));
    Ok(Created {
        file: std::path::absolute(out)?,
        bytes: bytes.len(),
        summary,
        header,
        salvaged: None,
    })
}

/// Builds a backup from a stopped node's data folder.
async fn salvage(dir: &Path, out: &Path, progress: &mut Progress) -> anyhow::Result<Created> {
    progress.step(format!("reading the snapshot and log in {}", dir.display()));
    let (snap, found) = dsync_server::backup::salvage(dir)
        .await
        .with_context(|| format!("cannot salvage {}", dir.display()))?;
    let mut groups = Vec::new();
    let mut missing = Vec::new();
    for g in &snap.data.shards.groups {
        let gdir = dsync_server::groups::group_dir(dir, g.id);
        if !gdir.exists() {
            missing.push(g.id);
            continue;
        }
        progress.step(format!(
            "reading queue group {} in {}",
            g.id,
            gdir.display()
        ));
        let (gsnap, _) = dsync_server::backup::salvage(&gdir)
            .await
            .with_context(|| format!("cannot salvage {}", gdir.display()))?;
        groups.push((g.id, gsnap));
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "this node held no replica of queue groups {missing:?}, so a backup from its \
             folder alone would lose their messages; nothing was written (salvage a node \
             that holds them, or take a backup from the running cluster)"
        );
    }
    let bytes =
        dsync_server::backup::encode_with_groups(&snap, &groups, crate::cluster_file::now_ms())?;
    let backup = dsync_server::backup::decode_all(&bytes, "the salvaged backup")?;
    super::write_atomic(out, &bytes)?;
    if found.last_index > found.committed_index {
        progress.note(format!(
            "note: entries {}..={} were in the log past the last recorded commit ({}); \
             they may not have been acknowledged",
            found.committed_index + 1,
            found.last_index,
            found.committed_index
        ));
    }
    progress.note(format!(
        "wrote {} from {} (snapshot at {}, log up to {})",
        out.display(),
        dir.display(),
        found.snapshot_index,
        found.last_index
    ));
    Ok(Created {
        file: std::path::absolute(out)?,
        bytes: bytes.len(),
        summary: dsync_server::backup::summarize_all(&backup),
        header: backup.header,
        salvaged: Some(found),
    })
}

fn table(c: &Created) -> String {
    let mut t = Table::new(["FILE", "BYTES", "INDEX", "TERM", "CLUSTER", "SHA256"]);
    t.row([
        c.file.display().to_string(),
        c.bytes.to_string(),
        c.header.index.to_string(),
        c.header.term.to_string(),
        c.header.cluster_id.clone().unwrap_or_else(|| "-".into()),
        c.header.body_sha256.clone(),
    ]);
    t.render()
}
