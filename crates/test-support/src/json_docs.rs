//! docs/json.md agrees with what hmn emits: the field names a table documents, and the keys a
//! JSON value has, compared as sets by the tests of each record kind.

use std::collections::BTreeSet;

use serde_json::Value;

/// `field` names of the table under `### heading` inside `## section` of docs/json.md (the
/// first cell of each row, in backquotes).
pub fn documented(section: &str, heading: &str) -> BTreeSet<String> {
    let doc = std::fs::read_to_string(crate::workspace_root().join("docs/json.md")).unwrap();
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with(section))
        .unwrap_or_else(|| panic!("no section {section}"));
    let part = section
        .split("\n### ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("no heading {heading} in {section}"));
    part.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

/// Every key of `value`, nested ones as `a.b`, and keys of objects in arrays as `a[].b`.
pub fn emitted(value: &Value) -> BTreeSet<String> {
    fn walk(prefix: &str, value: &Value, out: &mut BTreeSet<String>) {
        if let Value::Object(map) = value {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(key.clone());
                match v {
                    Value::Object(_) => walk(&key, v, out),
                    Value::Array(items) => {
                        if let Some(first) = items.iter().find(|i| i.is_object()) {
                            walk(&format!("{key}[]"), first, out);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk("", value, &mut out);
    out
}
