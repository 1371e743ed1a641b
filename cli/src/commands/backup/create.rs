//! `dsync backup create --out FILE`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use dsync_server::backup::{BackupHeader, BackupSummary};
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
}

#[derive(Debug, Serialize)]
pub struct Created {
    pub file: PathBuf,
    pub bytes: usize,
    pub header: BackupHeader,
    pub summary: BackupSummary,
}

pub async fn run(global: &GlobalArgs, args: CreateArgs) -> anyhow::Result<i32> {
    let mut progress = Progress::new();
    let created = take(global, &args.out, &mut progress).await?;
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
    let bytes = client.backup().await.api().context("backup failed")?;
    progress.step(format!("received {} bytes; verifying", bytes.len()));
    let (header, snap) = dsync_server::backup::decode(&bytes, "the backup received")
        .map_err(|e| anyhow::anyhow!("the cluster sent a damaged backup: {e}"))?;
    progress.step(format!("writing {}", out.display()));
    super::write_atomic(out, &bytes)?;
    progress.note(format!(
        "wrote {} ({} bytes, index {}, term {})",
        out.display(),
        bytes.len(),
        header.index,
        header.term
    ));
    Ok(Created {
        file: std::path::absolute(out)?,
        bytes: bytes.len(),
        summary: dsync_server::backup::summarize(&snap),
        header,
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
