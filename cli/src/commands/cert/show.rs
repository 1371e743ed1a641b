//! `dsync cert show`: what the certificates in a TLS folder are for and
//! when they expire.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use time::OffsetDateTime;

use super::x509::{display, read_pem};
use crate::commands::EXIT_OK;
use crate::context::GlobalArgs;
use crate::output::Table;

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Folder of the certificates [default: <DIR>/tls].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Shown {
    file: PathBuf,
    name: Option<String>,
    hosts: Vec<String>,
    valid_from: String,
    valid_until: String,
    /// Whole days until expiry; negative once expired.
    days_left: i64,
}

pub fn run(global: &GlobalArgs, args: ShowArgs) -> anyhow::Result<i32> {
    let out = match args.out {
        Some(o) => o,
        None => global.dir()?.join("tls"),
    };
    let entries =
        std::fs::read_dir(&out).with_context(|| format!("cannot read {}", out.display()))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .collect();
    files.sort();
    let now = OffsetDateTime::now_utc();
    let mut shown = Vec::new();
    for file in files {
        let info = read_pem(&file)?;
        shown.push(Shown {
            name: info.common_name,
            hosts: info.hosts,
            valid_from: display(info.not_before),
            valid_until: display(info.not_after),
            days_left: (info.not_after - now).whole_days(),
            file,
        });
    }
    global.output.print(&shown, || {
        let mut t = Table::new(["FILE", "NAME", "VALID UNTIL", "DAYS LEFT", "HOSTS"]);
        for s in &shown {
            let file = s.file.file_name().unwrap_or_default().to_string_lossy();
            let left = match s.days_left {
                d if d < 0 => "expired".to_string(),
                d => d.to_string(),
            };
            t.row([
                file.into_owned(),
                s.name.clone().unwrap_or_else(|| "-".into()),
                s.valid_until.clone(),
                left,
                s.hosts.join(","),
            ]);
        }
        t.render()
    })?;
    Ok(EXIT_OK)
}
