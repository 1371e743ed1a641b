//! `dsync backup inspect FILE`.

use std::path::PathBuf;

use dsync_server::backup::{BackupHeader, BackupSummary};
use serde::Serialize;

use crate::context::GlobalArgs;
use crate::duration::format_ms;

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The backup file.
    pub file: PathBuf,
}

#[derive(Debug, Serialize)]
struct Inspected {
    file: PathBuf,
    valid: bool,
    header: BackupHeader,
    summary: BackupSummary,
}

pub fn run(global: &GlobalArgs, args: InspectArgs) -> anyhow::Result<i32> {
    let backup = super::load(&args.file)?;
    let report = Inspected {
        file: args.file,
        valid: true,
        summary: dsync_server::backup::summarize_all(&backup),
        header: backup.header,
    };
    global.output.print(&report, || {
        let h = &report.header;
        let s = &report.summary;
        let age = crate::cluster_file::now_ms().saturating_sub(h.created_at_ms);
        format!(
            "file:          {}\nvalid:         yes (SHA-256 {})\nformat:        {}\n\
             dsync version: {}\ncluster id:    {}\nindex / term:  {} / {}\n\
             created:       {} ms since the epoch ({} ago)\nkv keys:       {}\n\
             locks:         {} held, {} waiting\nqueues:        {} topics, {} ready, {} in flight, {} dead-lettered\n\
             queue groups:  {}\nrevision:      {}\n",
            report.file.display(),
            h.body_sha256,
            h.format,
            h.dsync_version,
            h.cluster_id.as_deref().unwrap_or("-"),
            h.index,
            h.term,
            h.created_at_ms,
            format_ms(age),
            s.kv_keys,
            s.locks_held,
            s.locks_waiting,
            s.topics,
            s.messages_ready,
            s.messages_in_flight,
            s.messages_dead_lettered,
            match h.groups.len() {
                0 => "none (every topic in the control group)".to_string(),
                n => format!("{n}, each verified"),
            },
            s.revision,
        )
    })?;
    Ok(crate::commands::EXIT_OK)
}
