//! hmn's modules depend on each other without cycles, and nothing imports from `main.rs`.
//!
//! `main.rs` parses the command line and hands it to one command; every command is a module
//! of its own under `cmd/` (a peer of the others), and what they share (the outcome, the
//! driver watchdog, the value parsers, the output) lives in modules below them. A module
//! that imported from the crate root (`crate::Outcome` when it was defined in `main.rs`), or
//! `cli.rs` calling into a command for a parser while the command reads `cli`'s types, makes
//! a cycle: neither side can be read or moved alone. Modules are the top-level files and
//! directories of `src/`, except that each `cmd/<name>` is a module of its own.

use std::collections::BTreeSet;
use std::path::Path;

use test_support::module_graph::{Graph, code_of, crate_paths, cycles, rust_files};

/// Groups of modules whose cycles among themselves are accepted for now, each with why.
/// None today (`cmd::run`, `plot`, `record` and `spill` were one until the shared record and
/// time helpers moved out of `cmd::run`).
const KNOWN_CYCLES: &[(&[&str], &str)] = &[];

/// The module a file belongs to: `cmd/run/descendants.rs` → `cmd::run`, `cmd/mod.rs` →
/// `cmd`, `serve/http.rs` → `serve`, `main.rs` → `main`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let parts: Vec<String> = rel
        .iter()
        .map(|p| {
            let p = p.to_string_lossy();
            p.strip_suffix(".rs").unwrap_or(&p).to_owned()
        })
        .collect();
    match parts.as_slice() {
        [cmd, command, ..] if cmd == "cmd" && command != "mod" => format!("cmd::{command}"),
        [first, ..] => first.clone(),
        [] => unreachable!("a file has a name"),
    }
}

/// The module a `crate::` path names: `cmd::run::X` → `cmd::run`, `cmd::missing_device` →
/// `cmd`, `cli::GlobalArgs` → `cli`; a name that is no module (`crate::Outcome`) is the
/// crate root's, `main`.
fn module_named(path: &[String], modules: &BTreeSet<String>) -> String {
    if let [first, second, ..] = path {
        let command = format!("{first}::{second}");
        if modules.contains(&command) {
            return command;
        }
    }
    match path.first() {
        Some(first) if modules.contains(first) => first.clone(),
        _ => "main".to_owned(),
    }
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = rust_files(&src);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph = Graph::new();
    for file in &files {
        let from = module_of(&src, file);
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for path in crate_paths(&code) {
            let to = module_named(&path, &modules);
            if to != from {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    graph
}

#[test]
fn hmns_modules_import_each_other_without_cycles() {
    let graph = graph();
    assert!(
        graph.get("cmd::ps").is_some_and(|to| to.contains("cli")),
        "the reader found no edges: {graph:#?}"
    );
    let unknown: Vec<String> = cycles(&graph)
        .into_iter()
        .filter(|cycle| {
            let members: BTreeSet<&str> = cycle.iter().map(String::as_str).collect();
            !KNOWN_CYCLES
                .iter()
                .any(|(known, _)| members.iter().all(|m| known.contains(m)))
        })
        .map(|cycle| cycle.join(" → "))
        .collect();
    assert!(
        unknown.is_empty(),
        "import cycles between hmn's modules:\n  {}\n(edges: {graph:#?})",
        unknown.join("\n  ")
    );
}

#[test]
fn nothing_imports_from_the_crate_root() {
    let graph = graph();
    let importers: Vec<&String> = graph
        .iter()
        .filter(|(_, to)| to.contains("main"))
        .map(|(from, _)| from)
        .collect();
    assert!(
        importers.is_empty(),
        "{importers:?} import from main.rs (move what they need into a module of its own)"
    );
}

#[test]
fn the_reader_maps_paths_to_commands_and_finds_a_cycle() {
    let modules: BTreeSet<String> = ["cli", "cmd", "cmd::run", "values"]
        .map(str::to_owned)
        .into();
    let paths = crate_paths(
        "use crate::{cli::RunArgs, values::parse_size};\nlet d = crate::cmd::run::parse(x);\n\
         crate::cmd::missing_device(f, 1); crate::Outcome::Success",
    );
    let named: Vec<String> = paths.iter().map(|p| module_named(p, &modules)).collect();
    assert_eq!(named, ["cli", "values", "cmd::run", "cmd", "main"]);
    let mut graph = Graph::new();
    for (a, b) in [("cli", "cmd::run"), ("cmd::run", "cli"), ("cmd::ps", "cli")] {
        graph.entry(a.to_owned()).or_default().insert(b.to_owned());
    }
    assert_eq!(cycles(&graph), [["cli", "cmd::run", "cli"]]);
}
