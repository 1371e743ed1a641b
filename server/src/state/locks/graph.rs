//! The wait-for graph as an explicit map, and cycle search over it: the
//! reference the lock table's implicit search is tested against.

use std::collections::{BTreeMap, BTreeSet};

/// owner → owners it waits for.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// If adding edges `from → t` for every `t` in `targets` would close a cycle,
/// returns it as `[from, t, …]` (each waits for the next, the last for
/// `from`). Depth-first from each target, in order, so the result is
/// deterministic.
pub fn closing_cycle(graph: &Graph, from: &str, targets: &[String]) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    for t in targets {
        let mut path = vec![t.clone()];
        if t == from || dfs(graph, t, from, &mut seen, &mut path) {
            let mut cycle = vec![from.to_string()];
            if t != from {
                cycle.extend(path);
                cycle.pop(); // drop the trailing `from`
            }
            return Some(cycle);
        }
    }
    None
}

fn dfs(
    graph: &Graph,
    at: &str,
    goal: &str,
    seen: &mut BTreeSet<String>,
    path: &mut Vec<String>,
) -> bool {
    if !seen.insert(at.to_string()) {
        return false;
    }
    let Some(next) = graph.get(at) else {
        return false;
    };
    for n in next {
        path.push(n.clone());
        if n == goal || dfs(graph, n, goal, seen, path) {
            return true;
        }
        path.pop();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn graph(edges: &[(u8, u8)]) -> Graph {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
        }
        g
    }

    /// Brute force: transitive closure by repeated relaxation.
    fn reaches(edges: &[(u8, u8)], from: u8, to: u8) -> bool {
        let mut r = [[false; 6]; 6];
        for &(a, b) in edges {
            r[a as usize][b as usize] = true;
        }
        for k in 0..6 {
            for i in 0..6 {
                for j in 0..6 {
                    if r[i][k] && r[k][j] {
                        r[i][j] = true;
                    }
                }
            }
        }
        from == to || r[from as usize][to as usize]
    }

    #[test]
    fn finds_two_and_three_owner_cycles() {
        let g = graph(&[(1, 2)]);
        assert_eq!(
            closing_cycle(&g, "2", &["1".into()]),
            Some(vec!["2".into(), "1".into()])
        );
        let g = graph(&[(1, 2), (2, 3)]);
        assert_eq!(
            closing_cycle(&g, "3", &["1".into()]),
            Some(vec!["3".into(), "1".into(), "2".into()])
        );
        assert_eq!(closing_cycle(&g, "4", &["1".into()]), None);
    }

    proptest! {
        #[test]
        fn matches_brute_force(edges in proptest::collection::vec((0u8..6, 0u8..6), 0..14), from in 0u8..6, targets in proptest::collection::vec(0u8..6, 1..3)) {
            // Only acyclic graphs are reachable in the lock table: refused
            // requests never add their edges.
            let mut acyclic: Vec<(u8, u8)> = Vec::new();
            for (a, b) in edges {
                if !reaches(&acyclic, b, a) {
                    acyclic.push((a, b));
                }
            }
            let g = graph(&acyclic);
            let ts: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
            let expected = targets.iter().any(|&t| reaches(&acyclic, t, from));
            let got = closing_cycle(&g, &from.to_string(), &ts);
            prop_assert_eq!(got.is_some(), expected);
            if let Some(cycle) = got {
                // Every consecutive pair is a real wait, closing back at `from`.
                prop_assert_eq!(&cycle[0], &from.to_string());
                let mut with_new = acyclic.clone();
                for &t in &targets { with_new.push((from, t)); }
                for w in 0..cycle.len() {
                    let a: u8 = cycle[w].parse().unwrap();
                    let b: u8 = cycle[(w + 1) % cycle.len()].parse().unwrap();
                    prop_assert!(with_new.contains(&(a, b)) || (cycle.len() == 1 && a == b), "{:?} not an edge", (a, b));
                }
            }
        }
    }
}
