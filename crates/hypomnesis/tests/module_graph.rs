//! The library's top-level modules depend on each other without cycles.
//!
//! A cycle (`error` naming a `snapshot` type while `snapshot` returns `error`'s type; a data
//! record calling back into the `probe` that fills it) means neither module can be read,
//! tested or moved alone. This test reads `src/**/*.rs`, takes every `crate::<module>` path
//! (in `use` lines and inline, grouped `use crate::{a::X, b::Y}` included; a path through a
//! root re-export such as `crate::HostMemory` counts for the module it comes from) outside
//! comments and `#[cfg(test)] mod tests`, and fails naming every cycle it finds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

// The source reader and the cycle finder are shared with hmn's module-graph test.
use test_support::module_graph::{code_of, cycles, rust_files};

/// Cycles accepted for now, each with why. None today; a future exception names its modules
/// (`&["snapshot", "telemetry"]`) and says why it cannot be removed yet.
const KNOWN_CYCLES: &[&[&str]] = &[];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level module a file belongs to (`gpu/drm/mod.rs` → `gpu`); `None` for `lib.rs`.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    match first.strip_suffix(".rs") {
        Some("lib") => None,
        Some(stem) => Some(stem.to_owned()),
        None => Some(first),
    }
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Every first segment after `crate::`, grouped imports expanded.
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if !preceded_by_ident {
            if let Some(group) = after.strip_prefix('{') {
                let mut depth = 1;
                let mut item_start = true;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        ',' if depth == 1 => item_start = true,
                        c if depth == 1 && item_start && !c.is_whitespace() => {
                            found.push(ident_at(&group[i..]).to_owned());
                            item_start = false;
                        }
                        _ => {}
                    }
                }
            } else {
                found.push(ident_at(after).to_owned());
            }
        }
        rest = after;
    }
    found
}

/// Names the crate root re-exports, mapped to the module they come from (`HostMemory` →
/// `host`), read from `lib.rs`'s `pub use module::{…}` lines.
fn root_reexports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let code = code_of(lib);
    let mut rest = code.as_str();
    while let Some(at) = rest.find("pub use ") {
        let after = &rest[at + "pub use ".len()..];
        let end = after.find(';').unwrap_or(after.len());
        let stmt = &after[..end];
        let module = ident_at(stmt).to_owned();
        if modules.contains(&module) {
            for name in stmt
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
            {
                map.entry(name.to_owned()).or_insert_with(|| module.clone());
            }
        }
        rest = &after[end..];
    }
    map
}

fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = src_dir();
    let files = rust_files(&src);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(&src, f)).collect();
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let reexports = root_reexports(&lib, &modules);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = top_module(&src, file) else {
            continue;
        };
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for first in crate_paths(&code) {
            let to = if modules.contains(&first) {
                Some(first)
            } else {
                reexports.get(&first).cloned()
            };
            if let Some(to) = to
                && to != from
            {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    graph
}

fn is_known(cycle: &[String]) -> bool {
    let members: BTreeSet<&str> = cycle.iter().map(String::as_str).collect();
    KNOWN_CYCLES
        .iter()
        .any(|known| known.iter().copied().collect::<BTreeSet<_>>() == members)
}

#[test]
fn the_librarys_top_level_modules_import_each_other_without_cycles() {
    let graph = edges();
    assert!(
        graph.contains_key("probe"),
        "the reader found no edges at all: {graph:?}"
    );
    let unknown: Vec<String> = cycles(&graph)
        .into_iter()
        .filter(|c| !is_known(c))
        .map(|c| c.join(" → "))
        .collect();
    assert!(
        unknown.is_empty(),
        "import cycles between top-level modules:\n  {}\n(edges: {graph:#?})",
        unknown.join("\n  ")
    );
}

#[test]
fn the_vocabulary_and_the_os_layer_import_nothing_above_them() {
    let graph = edges();
    let imports = |module: &str| graph.get(module).cloned().unwrap_or_default();
    assert!(
        imports("model").is_empty(),
        "model imports {:?}",
        imports("model")
    );
    let above: Vec<String> = imports("os")
        .into_iter()
        .filter(|m| m != "error" && m != "model")
        .collect();
    assert!(above.is_empty(), "the OS layer imports {above:?}");
}

#[test]
fn the_cycle_finder_names_a_cycle_and_passes_a_chain() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry((*a).to_owned())
                .or_default()
                .insert((*b).to_owned());
        }
        g
    };
    assert!(cycles(&graph(&[("a", "b"), ("b", "c")])).is_empty());
    assert_eq!(
        cycles(&graph(&[
            ("error", "snapshot"),
            ("snapshot", "error"),
            ("x", "error")
        ])),
        vec![vec!["error", "snapshot", "error"]]
    );
    assert_eq!(
        crate_paths(
            "use crate::{error::X, snapshot::{A, B}, HostMemory};\nlet p = crate::probe::global();"
        ),
        ["error", "snapshot", "HostMemory", "probe"]
    );
    assert_eq!(
        code_of("use crate::a::X;\n// crate::b\n#[cfg(test)]\nmod tests {\n    use crate::c;\n}\n"),
        "use crate::a::X;\n#[cfg(test)]\n"
    );
}
