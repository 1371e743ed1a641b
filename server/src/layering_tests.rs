//! The modules of this crate form no import cycle: a service gets the
//! handles it uses (e.g. `cache::Host`), never a module that uses it back.
//! Read from the source, as `crate::<module>` paths outside test code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            sources(&e.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// The text before a file's `#[cfg(test)]` test module, if it is not a
/// test file itself.
fn non_test_code(path: &Path) -> String {
    let name = path.file_name().unwrap().to_string_lossy();
    if name.ends_with("_tests.rs") || name == "tests.rs" {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn uses(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let name: String = code[i + 7..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        if modules.contains(&name) {
            out.insert(name);
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    for e in std::fs::read_dir(&src).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if name == "lib" || name == "main" || name.ends_with("_tests") {
            continue;
        }
        let mut files = vec![];
        sources(&path, &mut files);
        modules.entry(name).or_insert_with(Vec::new).extend(files);
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .into_iter()
        .map(|(m, files)| {
            let mut deps = BTreeSet::new();
            for f in files {
                deps.extend(uses(&non_test_code(&f), &names));
            }
            deps.remove(&m);
            (m, deps)
        })
        .collect()
}

/// A path from `from` back to `to`, if any.
fn path_to(
    g: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    for next in &g[from] {
        if next == to {
            return Some(vec![from.to_string(), to.to_string()]);
        }
        if seen.insert(next.clone()) {
            if let Some(mut p) = path_to(g, next, to, seen) {
                p.insert(0, from.to_string());
                return Some(p);
            }
        }
    }
    None
}

#[test]
fn no_module_of_the_server_imports_one_that_imports_it_back() {
    let g = graph();
    assert!(
        g.contains_key("node") && g["http"].contains("node"),
        "{g:?}"
    );
    for m in g.keys() {
        if let Some(cycle) = path_to(&g, m, m, &mut BTreeSet::new()) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_cache_runs_against_its_host_not_the_node() {
    let g = graph();
    assert!(!g["cache"].contains("node"), "{:?}", g["cache"]);
    assert!(!g["auth"].contains("node") && !g["auth"].contains("http"));
}
