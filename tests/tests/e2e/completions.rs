//! Issue 21: `dsync completions` drives a real bash completion, and
//! `dsync man` writes a valid page for every command `--help` lists.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use dsync_tests::dsync_bin;

/// What bash offers for `line` (the cursor at its end) once the script of
/// `dsync completions bash` is sourced, through the function it registered.
fn bash_completions(line: &str) -> Vec<String> {
    let script = r#"
        set -eu
        source <("$DSYNC" completions bash)
        spec=$(complete -p dsync)
        fn=${spec##*-F }; fn=${fn%% *}
        read -ra COMP_WORDS <<< "$LINE"
        # A trailing blank means a new, empty word is being completed.
        case "$LINE" in *" ") COMP_WORDS+=("") ;; esac
        COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
        COMP_LINE=$LINE
        COMP_POINT=${#LINE}
        COMPREPLY=()
        "$fn" dsync "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("DSYNC", dsync_bin())
        .env("LINE", line)
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "bash completion of {line:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_subcommands_from_the_sourced_script() {
    let words = bash_completions("dsync cluster s");
    for want in ["scale", "status"] {
        assert!(words.iter().any(|w| w == want), "no {want} in {words:?}");
    }
    assert!(
        words.iter().all(|w| w.starts_with('s')),
        "completing `s` offered {words:?}"
    );
    let words = bash_completions("dsync lo");
    assert_eq!(words, vec!["lock"], "completing `dsync lo`");
    let words = bash_completions("dsync ");
    for want in ["cluster", "completions", "man", "queue"] {
        assert!(words.iter().any(|w| w == want), "no {want} in {words:?}");
    }
}

#[test]
fn every_shell_gets_a_script() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = Command::new(dsync_bin())
            .args(["completions", shell])
            .output()
            .expect("run dsync");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "completions {shell}");
        assert!(
            text.contains("dsync") && text.contains("cluster") && text.contains("keepalive"),
            "{shell} script names no commands"
        );
    }
    let out = Command::new(dsync_bin())
        .args(["completions", "tcsh"])
        .output()
        .expect("run dsync");
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

/// The subcommands `dsync PATH.. --help` lists (without `help`).
fn listed_subcommands(path: &[String]) -> Vec<String> {
    let out = Command::new(dsync_bin())
        .args(path)
        .arg("--help")
        .output()
        .expect("run dsync --help");
    assert!(out.status.success(), "dsync {} --help", path.join(" "));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let Some((_, rest)) = text.split_once("\nCommands:\n") else {
        return vec![];
    };
    rest.lines()
        .take_while(|l| l.starts_with("  "))
        // Entries start at two spaces; wrapped help text is indented deeper.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// The page name of every command reachable from `path`, `path` included.
fn expected_pages(path: Vec<String>, pages: &mut BTreeSet<String>) {
    let mut name = vec!["dsync".to_string()];
    name.extend(path.iter().cloned());
    pages.insert(format!("{}.1", name.join("-")));
    for sub in listed_subcommands(&path) {
        let mut next = path.clone();
        next.push(sub);
        expected_pages(next, pages);
    }
}

#[test]
fn man_writes_a_valid_page_for_every_listed_command() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out_dir = tmp.path().join("man1");
    let out = Command::new(dsync_bin())
        .arg("man")
        .arg("--out-dir")
        .arg(&out_dir)
        .output()
        .expect("run dsync man");
    assert!(
        out.status.success(),
        "dsync man: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut want = BTreeSet::new();
    expected_pages(vec![], &mut want);
    assert!(
        want.contains("dsync-cluster-status.1") && want.len() > 40,
        "the --help walk found too little: {want:?}"
    );
    let written: BTreeSet<String> = std::fs::read_dir(&out_dir)
        .expect("man dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, want, "pages written vs commands --help lists");

    for page in &written {
        let text = std::fs::read_to_string(out_dir.join(page)).expect("page");
        assert!(
            (text.starts_with(".ie") || text.starts_with(".TH")) && text.contains("\n.TH "),
            "{page} has no roff header"
        );
        assert!(text.contains(".SH NAME"), "{page} has no NAME section");
    }
    render_with_man(&out_dir.join("dsync-cluster-status.1"));
}

/// `man -l` renders the page, where man is installed (it is not in CI's
/// minimal images, and the roff header checks above stand without it).
fn render_with_man(page: &Path) {
    let Ok(out) = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
    else {
        println!("man is not installed; skipped rendering {}", page.display());
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "man -l {}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("NAME") && text.contains("dsync-cluster-status") && text.contains("quorum"),
        "man -l rendered:\n{text}"
    );
}
