//! Crash points for the fault tests. A debug build whose
//! `data_dir/failpoints/<name>` file exists exits at once when it reaches
//! the point `<name>`, as `kill -9` would at that instant, and only once:
//! the file is removed first, so the restarted node carries on. Arming one
//! file on one node hits one step of a multi-step operation exactly, which
//! a sweep over timings cannot promise. Release builds never look.

use std::path::Path;

/// Exits the process here if `name` is armed under `data_dir`.
pub fn crash_point(data_dir: &Path, name: &str) {
    if cfg!(debug_assertions) {
        let armed = data_dir.join("failpoints").join(name);
        if std::fs::remove_file(&armed).is_ok() {
            tracing::error!(point = name, "failpoint armed: exiting as if killed");
            // No destructors, no flushing of anything but stderr: a crash.
            std::process::exit(137);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unarmed_point_returns() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("failpoints")).unwrap();
        std::fs::write(dir.path().join("failpoints").join("other"), b"").unwrap();
        crash_point(dir.path(), "this-one");
        assert!(dir.path().join("failpoints").join("other").exists());
    }
}
