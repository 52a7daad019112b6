//! `docs/ARCHITECTURE.md`'s crate graph is the workspace's: every normal dependency between
//! the workspace's crates (optional ones marked `?`) as `cargo metadata` reports it, no more
//! and no fewer, and every crate of the workspace has a line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Crate → its workspace dependencies (`name` or `name?` for optional ones).
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The graph in the first fenced block after the "## Crate graph" heading: lines
/// `crate -> dep, dep?, ...   (external crates)`, continued on indented lines.
fn documented(doc: &str) -> Graph {
    let section = doc
        .split("## Crate graph")
        .nth(1)
        .expect("docs/ARCHITECTURE.md has a \"## Crate graph\" section");
    let block = section
        .split("```")
        .nth(1)
        .expect("the section has a fenced block");
    let mut graph = Graph::new();
    let mut current: Option<String> = None;
    for line in block.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let deps_text = if line.starts_with(char::is_whitespace) {
            line
        } else {
            let (name, rest) = line
                .split_once("->")
                .unwrap_or_else(|| panic!("a graph line without `->`: {line:?}"));
            let name = name.trim().to_string();
            graph.entry(name.clone()).or_default();
            current = Some(name);
            rest
        };
        let deps_text = deps_text.split('(').next().unwrap_or_default();
        let name = current
            .clone()
            .expect("a continuation line after a crate line");
        let deps = graph.entry(name).or_default();
        for dep in deps_text
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            deps.insert(dep.to_string());
        }
    }
    graph
}

/// The graph `cargo metadata` reports for the workspace.
fn actual(root: &Path) -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(String::from))
        .collect();
    let mut graph = Graph::new();
    for p in packages {
        let name = p["name"].as_str().expect("a package name").to_string();
        let deps = graph.entry(name).or_default();
        for d in p["dependencies"].as_array().expect("dependencies") {
            let dep = d["name"].as_str().expect("a dependency name");
            if names.contains(dep) && d["kind"].is_null() {
                let optional = d["optional"].as_bool().unwrap_or(false);
                deps.insert(format!("{dep}{}", if optional { "?" } else { "" }));
            }
        }
    }
    graph
}

#[test]
fn architecture_crate_graph_matches_cargo_metadata() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).expect("the doc");
    let (doc_graph, real) = (documented(&doc), actual(root));
    for (name, deps) in &real {
        match doc_graph.get(name) {
            None => panic!("docs/ARCHITECTURE.md has no line for crate {name}"),
            Some(d) => assert_eq!(d, deps, "the dependencies of {name}: documented vs cargo"),
        }
    }
    for name in doc_graph.keys() {
        assert!(
            real.contains_key(name),
            "docs/ARCHITECTURE.md names a crate {name} that does not exist"
        );
    }
}

#[test]
fn the_parser_reads_continuation_lines_and_ignores_external_crates() {
    let doc = "## Crate graph\n\n```\na -> b, c?   (serde)\nd ->        (x, y)\ne -> a,\n     d    (z)\n```\n";
    let g = documented(doc);
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(g["a"], set(&["b", "c?"]));
    assert!(g["d"].is_empty());
    assert_eq!(g["e"], set(&["a", "d"]));
}
