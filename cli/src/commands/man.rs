//! `dsync man [--out-dir D]`: roff man pages for `dsync` and every subcommand,
//! generated from the clap definition (so `--help` and the pages agree).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Folder to write the pages into (created if missing); each command
    /// gets one, named by its path: dsync.1, dsync-cluster.1,
    /// dsync-cluster-status.1, ... (`--dir` is the global cluster folder).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out_dir: PathBuf,
}

pub fn run(args: ManArgs) -> anyhow::Result<i32> {
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    for page in write_pages(&args.out_dir)? {
        println!("{}", page.display());
    }
    Ok(crate::commands::EXIT_OK)
}

/// Writes one page per command and returns their paths, parents first.
pub fn write_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    // Built once from the top so each subcommand's display name is its full
    // path (dsync-cluster-status) and global flags show on every page; the
    // `help` pseudo-command has nothing a page would add.
    let mut root = crate::Cli::command().disable_help_subcommand(true);
    root.build();
    let mut pages = Vec::new();
    let mut todo = vec![root];
    while let Some(cmd) = todo.pop() {
        todo.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
        // Every page names the package, not the subcommand, as its source.
        let man = clap_mangen::Man::new(cmd).source(format!("dsync {}", env!("CARGO_PKG_VERSION")));
        let path = man
            .generate_to(dir)
            .with_context(|| format!("cannot write a man page into {}", dir.display()))?;
        pages.push(path);
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_gets_a_page_named_by_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let pages = write_pages(tmp.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for want in [
            "dsync.1",
            "dsync-cluster.1",
            "dsync-cluster-status.1",
            "dsync-man.1",
        ] {
            assert!(names.iter().any(|n| n == want), "no {want} in {names:?}");
        }
        let status = std::fs::read_to_string(tmp.path().join("dsync-cluster-status.1")).unwrap();
        assert!(
            status.starts_with(".ie") || status.starts_with(".TH"),
            "{status}"
        );
        assert!(status.contains("dsync\\-cluster\\-status"), "{status}");
    }
}
