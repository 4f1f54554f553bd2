#!/usr/bin/env python
"""Regenerate the README's result tables from the registry and measured results.

* the zoo table comes from ``registry.yaml`` (what each recipe produced);
* the ensemble table comes from ``scripts/results/ensemble_results.json``,
  written by ``scripts/ensemble_results.py`` from real runs.

Tables sit between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers.
Usage: ``python scripts/update_readme.py [--check]`` (``--check`` exits 1 if
the README is out of date instead of writing it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "scripts" / "results" / "ensemble_results.json"


def zoo_table() -> str:
    import zoo

    lines = [
        "| model | dataset | architecture | parameters | val acc | test acc | test log loss | epochs | train time |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in zoo.list_models():
        e = zoo.info(name)
        m, t = e["metrics"], e["training"]
        lines.append(
            f"| `{name}` | {e['dataset']} | {e['builder']} | {e['parameters']:,} | {m['validation']['accuracy']:.2%} "
            f"| {m['test']['accuracy']:.2%} | {m['test']['log_loss']:.4f} | {t['epochs_run']} | {t['seconds'] / 60:.1f} min |"
        )
    return "\n".join(lines)


def ensemble_table() -> str:
    if not RESULTS.exists():
        return "_No ensemble results yet: run `python scripts/ensemble_results.py`._"
    results = json.loads(RESULTS.read_text())
    parts = []
    for ds in results["datasets"]:
        parts.append(f"**{ds['dataset']}** — weights and meta-learners fitted on the validation split only; test split below.\n")
        parts.append("| model | kind | test acc | test log loss | gain over best member |")
        parts.append("|---|---|---:|---:|---:|")
        for row in ds["rows"]:
            gain = "" if row["kind"] == "member" else f"{row['gain_points']:+.2f} pts"
            parts.append(f"| {row['name']} | {row['kind']} | {row['accuracy']:.2%} | {row['log_loss']:.4f} | {gain} |")
        parts.append("")
    parts.append(f"_Produced by `{results['command']}` on {results['date']} ({results['versions']})._")
    return "\n".join(parts)


def render(readme: str) -> str:
    for marker, content in (("zoo-table", zoo_table()), ("ensemble-table", ensemble_table())):
        pattern = re.compile(rf"(<!-- {marker}:start -->\n)(?:.*?\n)?(<!-- {marker}:end -->)", re.DOTALL)
        if not pattern.search(readme):
            raise SystemExit(f"README.md lacks the <!-- {marker}:start/end --> markers")
        readme = pattern.sub(lambda m, text=content: m.group(1) + text + "\n" + m.group(2), readme)
    return readme


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    args = parser.parse_args()
    path = ROOT / "README.md"
    old = path.read_text(encoding="utf-8")
    new = render(old)
    if args.check:
        if new != old:
            print("README.md tables are out of date: run python scripts/update_readme.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
