//! `R`: record what `top` sees as NDJSON in `hmn watch --json`'s format (`docs/json.md`), for
//! `hmn top --replay` or any NDJSON reader.
