//! `dsync backup schedule --every D --keep K --out-dir DIR`: periodic
//! backups with rotation.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::context::GlobalArgs;
use crate::duration::parse_duration;
use crate::progress::Progress;

const PREFIX: &str = "dsync-";
const SUFFIX: &str = ".backup";

#[derive(Debug, clap::Args)]
pub struct ScheduleArgs {
    /// Interval between backups, e.g. 30s, 15m, 1h.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub every: Duration,

    /// Backups to keep in --out-dir; older ones are deleted.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,

    /// Folder for the backup files (`--dir` is the global cluster folder).
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,

    /// Stop after this many backups (default: run until interrupted).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// After every attempt, write the schedule's state here in the
    /// Prometheus text format, for node_exporter's textfile collector (a
    /// *.prom file in its folder): when the newest backup in --out-dir was
    /// taken, the interval and the failed attempts. The alert
    /// DsyncBackupScheduleMissed (compose/prometheus/alerts.yml) reads it.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

/// One line per backup attempt (JSON lines with `--output json`).
#[derive(Debug, Serialize)]
struct Tick {
    ok: bool,
    file: Option<PathBuf>,
    index: Option<u64>,
    bytes: Option<usize>,
    deleted: Vec<PathBuf>,
    error: Option<String>,
}

pub async fn run(global: &GlobalArgs, args: ScheduleArgs) -> anyhow::Result<i32> {
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    let mut failures = 0u64;
    let mut done = 0u64;
    let mut next = Instant::now();
    loop {
        let name = format!("{PREFIX}{:013}{SUFFIX}", crate::cluster_file::now_ms());
        let path = args.out_dir.join(name);
        let mut progress = Progress::new();
        let tick = match super::create::take(global, &path, &mut progress).await {
            Ok(c) => Tick {
                ok: true,
                file: Some(c.file),
                index: Some(c.header.index),
                bytes: Some(c.bytes),
                deleted: rotate(&args.out_dir, args.keep as usize)?,
                error: None,
            },
            Err(e) => {
                failures += 1;
                Tick {
                    ok: false,
                    file: None,
                    index: None,
                    bytes: None,
                    deleted: vec![],
                    error: Some(format!("{e:#}")),
                }
            }
        };
        progress.finish();
        print_tick(global, &tick)?;
        if let Some(file) = &args.metrics_file {
            // Backups matter more than their monitoring: a stale file
            // shows up as a missed schedule anyway.
            if let Err(e) = write_metrics(file, &args.out_dir, args.every, failures) {
                eprintln!("warning: {e:#}");
            }
        }
        done += 1;
        if args.count.is_some_and(|c| done >= c) {
            break;
        }
        next += args.every;
        tokio::time::sleep_until(next.max(Instant::now()).into()).await;
    }
    Ok(if failures > 0 {
        crate::commands::EXIT_ERROR
    } else {
        crate::commands::EXIT_OK
    })
}

fn print_tick(global: &GlobalArgs, t: &Tick) -> anyhow::Result<()> {
    match global.output {
        crate::output::Output::Json => println!("{}", serde_json::to_string(t)?),
        _ => global.output.print(t, || match (&t.file, &t.error) {
            (Some(f), _) => format!(
                "backup {} (index {}){}\n",
                f.display(),
                t.index.unwrap_or(0),
                if t.deleted.is_empty() {
                    String::new()
                } else {
                    format!(", deleted {} old", t.deleted.len())
                }
            ),
            (_, Some(e)) => format!("backup failed: {e}\n"),
            _ => String::new(),
        })?,
    }
    Ok(())
}

/// Writes the textfile-collector metrics. The last success is the newest
/// backup in the folder (its name holds the time it was taken), so it
/// survives a restart of the schedule.
fn write_metrics(
    file: &Path,
    out_dir: &Path,
    every: Duration,
    failures: u64,
) -> anyhow::Result<()> {
    let newest_ms = ours(out_dir)?
        .last()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .and_then(|n| {
            n.strip_prefix(PREFIX)?
                .strip_suffix(SUFFIX)?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    // One label per folder, so several schedules on a host stay apart.
    let folder = std::path::absolute(out_dir)?
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    let l = format!("{{out_dir=\"{folder}\"}}");
    let text = format!(
        "# HELP dsync_backup_last_success_timestamp_seconds When the newest backup in the folder was taken (0: none yet).\n\
         # TYPE dsync_backup_last_success_timestamp_seconds gauge\n\
         dsync_backup_last_success_timestamp_seconds{l} {}\n\
         # HELP dsync_backup_interval_seconds The schedule's --every.\n\
         # TYPE dsync_backup_interval_seconds gauge\n\
         dsync_backup_interval_seconds{l} {}\n\
         # HELP dsync_backup_failures_total Backups this schedule failed to take since it started.\n\
         # TYPE dsync_backup_failures_total counter\n\
         dsync_backup_failures_total{l} {failures}\n",
        newest_ms as f64 / 1000.0,
        every.as_secs_f64(),
    );
    super::write_atomic(file, text.as_bytes())
        .with_context(|| format!("cannot write the metrics file {}", file.display()))
}

/// The backups this command wrote into `dir`, oldest first (by name, which
/// sorts by time); other files in the folder are not ours.
fn ours(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut ours: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy())
                .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
        })
        .collect();
    ours.sort();
    Ok(ours)
}

/// Deletes all but the newest `keep` backups this command wrote; other
/// files in the folder are left alone.
fn rotate(dir: &Path, keep: usize) -> anyhow::Result<Vec<PathBuf>> {
    let ours = ours(dir)?;
    let excess = ours.len().saturating_sub(keep);
    let old: Vec<PathBuf> = ours.into_iter().take(excess).collect();
    for p in &old {
        std::fs::remove_file(p).with_context(|| format!("cannot delete {}", p.display()))?;
    }
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_newest_and_ignores_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        for t in [3, 1, 2, 4] {
            std::fs::write(tmp.path().join(format!("dsync-{t:013}.backup")), "").unwrap();
        }
        std::fs::write(tmp.path().join("notes.txt"), "").unwrap();
        let deleted = rotate(tmp.path(), 2).unwrap();
        assert_eq!(deleted.len(), 2);
        let mut left: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                "dsync-0000000000003.backup",
                "dsync-0000000000004.backup",
                "notes.txt"
            ]
        );
    }

    #[test]
    fn metrics_name_the_newest_backup_the_interval_and_failures() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("backups");
        std::fs::create_dir(&out).unwrap();
        let prom = tmp.path().join("dsync-backup.prom");
        write_metrics(&prom, &out, Duration::from_secs(3600), 2).unwrap();
        let text = std::fs::read_to_string(&prom).unwrap();
        let l = format!("{{out_dir=\"{}\"}}", out.display());
        assert!(
            text.contains(&format!(
                "dsync_backup_last_success_timestamp_seconds{l} 0\n"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("dsync_backup_interval_seconds{l} 3600\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("dsync_backup_failures_total{l} 2\n")),
            "{text}"
        );

        for t in ["1700000000500", "1700000100250"] {
            std::fs::write(out.join(format!("dsync-{t}.backup")), "").unwrap();
        }
        std::fs::write(out.join("dsync-9999999999999.backup.tmp"), "").unwrap();
        write_metrics(&prom, &out, Duration::from_secs(60), 0).unwrap();
        let text = std::fs::read_to_string(&prom).unwrap();
        assert!(
            text.contains(&format!(
                "dsync_backup_last_success_timestamp_seconds{l} 1700000100.25\n"
            )),
            "{text}"
        );
        assert!(text.ends_with('\n') && text.lines().count() == 9, "{text}");
    }
}
