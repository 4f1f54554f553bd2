#!/usr/bin/env python
"""Regenerate the README's result tables from the registry and measured results.

* the zoo table comes from ``registry.yaml`` (what each recipe produced);
* the ensemble table comes from ``scripts/results/ensemble_results.json``,
  written by ``scripts/ensemble_results.py`` from real runs;
* the search table comes from ``scripts/results/search_results.json``,
  written by ``scripts/search_results.py`` (the shipped libraries and ensembles);
* the serving table comes from ``scripts/results/serving_results.json``,
  written by ``scripts/bench_serving.py`` (ensemble, fused model, SavedModel,
  student and best member, measured in one run);
* the builder table comes from the builders of ``zoo.architectures``: each
  hyperparameter's default from ``inspect.signature`` (the code, so it cannot
  drift) and its meaning from the ``Parameters`` section of the builder's
  numpydoc docstring (a hyperparameter without one is an error, so a new
  hyperparameter cannot be left undocumented).

Tables sit between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers.
Usage: ``python scripts/update_readme.py [--check]`` (``--check`` exits 1 if
the README is out of date instead of writing it).
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "scripts" / "results" / "ensemble_results.json"
SEARCH_RESULTS = ROOT / "scripts" / "results" / "search_results.json"
SERVING_RESULTS = ROOT / "scripts" / "results" / "serving_results.json"


def zoo_table() -> str:
    import zoo

    lines = [
        "| model | dataset | architecture | parameters | val acc | test acc | test log loss | epochs | s/epoch | train time |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in zoo.list_models():
        e = zoo.info(name)
        m, t = e["metrics"], e["training"]
        lines.append(
            f"| `{name}` | {e['dataset']} | {e['builder']} | {e['parameters']:,} | {m['validation']['accuracy']:.2%} "
            f"| {m['test']['accuracy']:.2%} | {m['test']['log_loss']:.4f} | {t['epochs_run']} | {t['seconds'] / t['epochs_run']:.0f} "
            f"| {t['seconds'] / 60:.1f} min |"
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


def search_table() -> str:
    if not SEARCH_RESULTS.exists():
        return "_No search results yet: run `python scripts/search_results.py`._"
    results = json.loads(SEARCH_RESULTS.read_text())
    parts = []
    for ds in results["datasets"]:
        parts.append(f"**{ds['dataset']}** — `{ds['ensemble']}` ({ds['label']}; weights fitted on the validation split only)\n")
        if ds["studies"]:
            parts.append("| study | complete | pruned | failed | wall time | best trial: val acc | hand recipe: val acc |")
            parts.append("|---|---:|---:|---:|---:|---:|---:|")
            for s in ds["studies"]:
                best = "" if s["best_validation_accuracy"] is None else f"`{s['best_entry']}`: {s['best_validation_accuracy']:.2%}"
                hand = "" if not s["hand_recipe"] else f"`{s['hand_recipe']['name']}`: {s['hand_recipe']['validation_accuracy']:.2%}"
                parts.append(f"| {s['study']} | {s['complete']} | {s['pruned']} | {s['failed']} | {s['wall_seconds'] / 60:.0f} min | {best} | {hand} |")
            parts.append("")
        parts.append("| member | kind | weight | val acc | test acc | test log loss |")
        parts.append("|---|---|---:|---:|---:|---:|")
        for m in sorted(ds["members"], key=lambda m: -(m["weight"] or 0.0)):
            val = "" if m["validation_accuracy"] is None else f"{m['validation_accuracy']:.2%}"
            star = " (best candidate)" if m["name"] == ds["best_candidate"] else ""
            parts.append(f"| `{m['name']}`{star} | {m['kind']} | {m['weight']:.3f} | {val} | {m['test_accuracy']:.2%} | {m['test_log_loss']:.4f} |")
        parts.append(f"| **ensemble** | | | | **{ds['test_accuracy']:.2%}** | {ds['test_log_loss']:.4f} |")
        timing = ds.get("predict_seconds")
        line = f"\nGain over the best single candidate (best validation accuracy) on test: **{ds['gain_points']:+.2f} points**."
        if timing:
            line += f" Predicting the test split: ensemble {timing['ensemble']:.1f} s, best candidate {timing['best_member']:.1f} s ({timing['ensemble'] / timing['best_member']:.1f}x)."
        parts.append(line + "\n")
    runs = dict.fromkeys((d["measured_by"]["command"], d["measured_by"]["date"]) for d in results["datasets"] if "measured_by" in d)
    produced = "; ".join(f"`{command}` on {date}" for command, date in runs) or f"`{results['command']}` on {results['date']}"
    parts.append(f"_Produced by {produced} ({results['versions']}); wall times on the 2-core development machine._")
    return "\n".join(parts)


def _docstring_parameters(fn) -> dict[str, str]:
    """The ``Parameters`` section of a numpydoc docstring: name -> description (one line)."""
    lines = inspect.getdoc(fn).splitlines()
    try:
        start = lines.index("Parameters") + 2  # skip the title and its underline
    except ValueError:
        return {}
    params: dict[str, str] = {}
    name = None
    for line in lines[start:]:
        if line and not line.startswith(" "):
            if " : " not in line:  # the next section's title
                break
            name = line.split(" : ")[0].strip()
            params[name] = ""
        elif line.strip() and name is not None:
            params[name] = f"{params[name]} {line.strip()}".strip()
    return params


def builder_table() -> str:
    from zoo.architectures import BUILDERS

    lines = ["| builder | hyperparameter | default | meaning |", "|---|---|---|---|"]
    for builder, fn in BUILDERS.items():
        documented = _docstring_parameters(fn)
        for name, parameter in inspect.signature(fn).parameters.items():
            if name not in documented:
                raise SystemExit(f"zoo.architectures.{builder}: hyperparameter {name!r} is not in its docstring's Parameters section")
            meaning = documented[name].replace("``", "`").replace("|", "\\|")
            lines.append(f"| `{builder}` | `{name}` | `{parameter.default!r}` | {meaning} |")
    return "\n".join(lines)


def serving_table() -> str:
    if not SERVING_RESULTS.exists():
        return "_No serving results yet: run `python scripts/bench_serving.py`._"
    results = json.loads(SERVING_RESULTS.read_text())
    parts = []
    for ds in results["datasets"]:
        student = ds["student"]
        parts.append(f"**{ds['dataset']}** — test split; best member by validation accuracy: `{ds['best_member']}`\n")
        parts.append("| model | test acc | test log loss | predict s / 10k | vs best member | size on disk |")
        parts.append("|---|---:|---:|---:|---:|---:|")
        for row in ds["rows"]:
            if "accuracy" not in row:
                parts.append(f"| {row['model']} | | | | | {row['note']} |")
                continue
            size = row["size_bytes"] / 1e6
            parts.append(f"| {row['model']} | {row['accuracy']:.2%} | {row['log_loss']:.4f} | {row['seconds_per_10k']:.2f} | "
                         f"{row['time_vs_best_member']:.2f}x | {size:.1f} MB |")
        kept = student["kept_gain"]
        kept = ("" if kept is None else f"keeps {kept:.0%} of the ensemble's gain over the best member; " if kept >= 0
                else "is below the best member; ")
        parts.append(f"\nStudent `{student['name']}`: {kept}targets (at least half the gain, at most 1.2x the member's time) "
                     f"{'met' if student['targets_met'] else '**not met**'}.\n")
    versions = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    parts.append(f"_Produced by `{results['command']}` on {results['date']} ({versions}); "
                 "best of two timed passes each, on the 2-core development machine._")
    return "\n".join(parts)


def render(readme: str) -> str:
    tables = (("zoo-table", zoo_table()), ("builder-table", builder_table()), ("ensemble-table", ensemble_table()), ("search-table", search_table()),
              ("serving-table", serving_table()))
    for marker, content in tables:
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
