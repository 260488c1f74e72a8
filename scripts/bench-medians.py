#!/usr/bin/env python3
"""Print criterion's median for every benchmark under target/criterion (after `cargo bench`)."""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
for estimates in sorted(root.glob("**/new/estimates.json")):
    bench = estimates.parent.parent
    benchmark = json.loads((bench / "new" / "benchmark.json").read_text())
    median_ns = json.loads(estimates.read_text())["median"]["point_estimate"]
    if median_ns >= 1e6:
        figure = f"{median_ns / 1e6:9.2f} ms"
    else:
        figure = f"{median_ns / 1e3:9.2f} µs"
    name = benchmark.get("function_id") or ""
    if benchmark.get("value_str"):
        name = f"{name}/{benchmark['value_str']}"
    print(f"{benchmark['group_id']:32} {name:56} median {figure}")
