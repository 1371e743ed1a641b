//! `dsync backup`: consistent snapshots of a cluster's state, checked on
//! every read, and restores that seed a new cluster from one.

pub mod create;
pub mod inspect;
pub mod restore;
pub mod schedule;

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::Subcommand;

use crate::context::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a backup: a consistent snapshot streamed from the leader.
    ///
    /// The leader confirms its leadership (ReadIndex) and serializes its
    /// state at that point; the file starts with a readable header (format,
    /// dsync version, cluster id, Raft index and term, time, SHA-256 of the
    /// body). The file is verified before it is written, through a temporary
    /// file and a rename.
    Create(create::CreateArgs),
    /// Verify a backup file and show its header and what it holds.
    ///
    /// Exits 1 if the file is damaged (SHA-256, length or structure).
    Inspect(inspect::InspectArgs),
    /// Seed a new cluster's data folders from a backup (like etcdutl snapshot restore).
    ///
    /// Writes <INTO>/node-<i>/{node.yaml,data/} for N voters on free local
    /// ports and <INTO>/cluster.yaml; start it with
    /// `dsync cluster up --dir <INTO>`. The new cluster gets a new cluster id
    /// and holds the KV, locks and queues exactly as of the backup. A damaged
    /// backup is refused before anything is written.
    Restore(restore::RestoreArgs),
    /// Take a backup every interval and keep the newest K (runs until stopped).
    Schedule(schedule::ScheduleArgs),
}

pub async fn run(global: &GlobalArgs, cmd: BackupCommand) -> anyhow::Result<i32> {
    match cmd {
        BackupCommand::Create(args) => create::run(global, args).await,
        BackupCommand::Inspect(args) => inspect::run(global, args),
        BackupCommand::Restore(args) => restore::run(global, args),
        BackupCommand::Schedule(args) => schedule::run(global, args).await,
    }
}

/// Writes `bytes` to `path` through a fsynced temporary file and a rename,
/// so a crash never leaves a half-written backup under the final name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    {
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

/// Reads and fully verifies a backup file (every queue group's part too).
pub fn load(path: &Path) -> anyhow::Result<dsync_server::backup::Backup> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    dsync_server::backup::decode_all(&bytes, &path.display().to_string())
        .map_err(|e| anyhow::anyhow!("refusing a damaged backup: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_leave_no_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("b.backup");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn garbage_is_refused_with_the_file_named() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("junk");
        std::fs::write(&path, b"not a backup\n").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("damaged") && err.contains("junk"), "{err}");
    }
}
