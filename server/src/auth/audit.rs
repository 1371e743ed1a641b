//! The audit log: one JSON line per mutating or admin call and per refused
//! call (who, what, outcome). It never holds tokens, secrets, bodies or
//! query strings: only the method, the path and the status.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::Serialize;
use tokio::sync::mpsc;

/// Lines waiting for the writer; senders wait when it falls behind rather
/// than dropping records.
const QUEUE: usize = 16_384;

#[derive(Debug, Serialize)]
pub struct Record {
    pub ts_ms: u64,
    pub node: u64,
    pub principal: String,
    pub remote: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// `ok`, `denied` (401/403/429) or `failed`.
    pub outcome: &'static str,
}

pub fn outcome_of(status: u16) -> &'static str {
    match status {
        200..=399 => "ok",
        401 | 403 | 429 => "denied",
        _ => "failed",
    }
}

#[derive(Clone)]
pub struct Audit {
    tx: mpsc::Sender<Record>,
}

impl Audit {
    /// Opens (appends to) `path` and starts the writer task.
    pub fn open(path: &Path) -> std::io::Result<Audit> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        // Who did what is for operators only.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::task::spawn_blocking(move || write_lines(file, rx));
        Ok(Audit { tx })
    }

    pub async fn record(&self, r: Record) {
        if self.tx.send(r).await.is_err() {
            tracing::error!("the audit log writer has stopped");
        }
    }
}

fn write_lines(file: std::fs::File, mut rx: mpsc::Receiver<Record>) {
    let mut out = std::io::BufWriter::new(file);
    while let Some(r) = rx.blocking_recv() {
        let mut batch = vec![r];
        while let Ok(r) = rx.try_recv() {
            batch.push(r);
        }
        for r in batch {
            if let Ok(line) = serde_json::to_string(&r) {
                let _ = writeln!(out, "{line}");
            }
        }
        if let Err(e) = out.flush() {
            tracing::error!("cannot write the audit log: {e}");
        }
    }
}

/// Control characters removed, so a name cannot forge lines or terminal
/// escapes in what shows it.
pub fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_become_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit/log.jsonl");
        let audit = Audit::open(&path).unwrap();
        audit
            .record(Record {
                ts_ms: 1,
                node: 2,
                principal: "alice".into(),
                remote: None,
                method: "POST".into(),
                path: "/v1/locks/a/acquire".into(),
                status: 403,
                outcome: outcome_of(403),
            })
            .await;
        drop(audit);
        let text = crate::auth::tests::poll_file(&path, |t| t.lines().count() == 1).await;
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["principal"], "alice");
        assert_eq!(v["outcome"], "denied");
        assert_eq!(printable("a\u{1b}[2Jb\n"), "a[2Jb");
    }
}
