//! Reading a crate's module graph from its source, to prove it has no import cycles.
//!
//! A cycle between modules means neither can be read, tested or moved alone. A crate's test
//! lists its `src/**/*.rs` ([`rust_files`]), reads each file's code without comments and
//! without its `#[cfg(test)] mod tests` block ([`code_of`]), takes the `crate::` paths in it
//! ([`crate_paths`], grouped `use crate::{a::X, b::Y}` expanded), maps each to a module of its
//! own choosing, and asks [`cycles`] for one cycle through each group of modules that import
//! each other. (The same reading as `crates/hypomnesis/tests/module_graph.rs`, kept here so
//! every crate's test shares it.)

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// Which module imports which.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every `.rs` file under `dir`, recursively, sorted.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The code of a file without comments and without its `#[cfg(test)] mod tests { … }` block.
pub fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    let mut previous_was_cfg_test = false;
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if previous_was_cfg_test && trimmed.starts_with("mod tests") && trimmed.ends_with('{') {
            let mut depth = 1_i32;
            for inner in lines.by_ref() {
                depth += brace_balance(inner);
                if depth <= 0 {
                    break;
                }
            }
            previous_was_cfg_test = false;
            continue;
        }
        previous_was_cfg_test = trimmed.starts_with("#[cfg(test)]");
        if trimmed.starts_with("//") {
            continue;
        }
        // A `//` inside a string literal ("http://") cuts the line short: rare, and it can
        // only hide an edge that the `use` lines show anyway.
        out.push_str(line.find("//").map_or(line, |at| &line[..at]));
        out.push('\n');
    }
    out
}

fn brace_balance(line: &str) -> i32 {
    line.chars()
        .map(|c| match c {
            '{' => 1,
            '}' => -1,
            _ => 0,
        })
        .sum()
}

/// The leading `a::b::c` of `s`, as segments (stops at the first character that is neither
/// an identifier's nor `::`).
fn path_at(s: &str) -> Vec<String> {
    let mut segments = Vec::new();
    let mut rest = s;
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        segments.push(rest[..end].to_owned());
        match rest[end..].strip_prefix("::") {
            Some(next) => rest = next,
            None => break,
        }
    }
    segments
}

/// Every path after `crate::`, as its segments (`crate::cmd::run::X` → `[cmd, run, X]`),
/// grouped imports expanded one level (`crate::{a::X, b}` → `[a, X]`, `[b]`).
pub fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if !preceded_by_ident {
            match after.strip_prefix('{') {
                Some(group) => {
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
                                found.push(path_at(&group[i..]));
                                item_start = false;
                            }
                            _ => {}
                        }
                    }
                }
                None => found.push(path_at(after)),
            }
        }
        rest = after;
    }
    found
}

/// One cycle through each strongly connected group of modules, as a path back to its start
/// (`[a, b, a]`).
pub fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut found: Vec<Vec<String>> = Vec::new();
    let mut covered: BTreeSet<String> = BTreeSet::new();
    for start in graph.keys() {
        if covered.contains(start) {
            continue;
        }
        // The shortest path from `start` back to itself (breadth first).
        let mut parent: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = VecDeque::from([start.clone()]);
        let mut closing = None;
        'search: while let Some(node) = queue.pop_front() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    closing = Some(node.clone());
                    break 'search;
                }
                if !parent.contains_key(next) {
                    parent.insert(next.clone(), node.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        let Some(mut node) = closing else {
            continue;
        };
        let mut back = Vec::new();
        while node != *start {
            back.push(node.clone());
            node = parent[&node].clone();
        }
        back.reverse();
        let mut path = vec![start.clone()];
        path.extend(back);
        path.push(start.clone());
        covered.extend(path.iter().cloned());
        found.push(path);
    }
    found
}
