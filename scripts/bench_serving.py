#!/usr/bin/env python
"""Serving an ensemble as one model: ensemble, fused Keras model, SavedModel, student and best member, side by side.

For each dataset, on the official test split, in one run: accuracy, log loss,
seconds to predict 10,000 examples (the best of ``--repeats`` timed passes
over the whole split, after a warm-up call; ratios to the best member, since
these machines are noisy) and size on disk. The best member is the
ensemble's candidate with the highest validation accuracy, as recorded in the
bundle's metadata when it was fitted (issue "Serve", item 3). The student is
the distilled entry shipped in ``students/<dataset>``.

The fused model and the SavedModel are rows only where the ensemble can be
fused (``to_keras()``); otherwise the row says why not. Results go to
``scripts/results/serving_results.json``; ``python scripts/update_readme.py``
turns them into the README's table.

Usage: ``python scripts/bench_serving.py [fashion_mnist imdb] [--repeats 2]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "scripts" / "results" / "serving_results.json"
STUDENTS = {"fashion_mnist": "fashion_mnist_student", "imdb": "imdb_student"}


def _size(path: Path) -> int:
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _timed(predict, X, repeats: int) -> tuple[np.ndarray, float]:
    """``predict(X)`` and the best of ``repeats`` wall times over all of ``X``, after a warm-up on 64 rows."""
    predict(X[:64])
    best, proba = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        proba = predict(X)
        best = min(best, time.perf_counter() - started)
    return np.asarray(proba, dtype=np.float64), best


def _scores(y_index: np.ndarray, proba: np.ndarray) -> dict:
    from sklearn.metrics import log_loss

    proba = proba / proba.sum(axis=1, keepdims=True)
    return {"accuracy": float((proba.argmax(1) == y_index).mean()),
            "log_loss": float(log_loss(y_index, proba, labels=np.arange(proba.shape[1])))}


def _bundle_size(version: Path, manifest: dict) -> int:
    """The bundle's files plus the shipped zoo weights its zoo members name (they are not copied into it)."""
    import zoo

    size = _size(version)
    for member in (manifest.get("metadata") or {}).get("members", []):
        if member.get("kind") == "zoo" and member["name"] in zoo.list_models():
            size += _size(Path(zoo.__file__).parent / "weights" / zoo.info(member["name"])["weights"]["file"])
    return size


def _member_model(name: str, dataset: str, teacher):
    """The best member as a standalone model: ``(predict_proba, size in bytes)``."""
    import zoo

    library = ROOT / "libraries" / dataset
    if name in zoo.list_models() or (library / "registry.yaml").is_file() and name in zoo.Registry(library):
        registry = None if name in zoo.list_models() else library
        model = zoo.load(name, registry=registry)
        weights = zoo.Registry(registry).entry(name)["weights"]["file"]
        folder = Path(zoo.__file__).parent / "weights" if registry is None else library / "weights"
        return (lambda X: zoo.predict_proba(model, X)), _size(folder / weights)
    member = teacher.named_estimators_[name]  # a scikit-learn member, saved inside the bundle
    with tempfile.TemporaryDirectory() as tmp:
        import skops.io

        skops.io.dump(member, Path(tmp) / "member.skops")
        return member.predict_proba, _size(Path(tmp) / "member.skops")


def measure(dataset: str, repeats: int) -> dict:
    import ensemble
    import zoo
    from ensemble.persistence import read_manifest
    from zoo import datasets

    path = ROOT / "ensembles" / dataset
    manifest, version = read_manifest(path)
    candidates = (manifest.get("metadata") or {}).get("members", [])
    best = max(candidates, key=lambda m: m["validation"]["accuracy"])["name"]
    teacher = ensemble.load(path).set_params(memory=None)
    X, y = datasets.load(dataset, "test")
    y_index = np.searchsorted(teacher.classes_, y)
    per_10k = 10_000 / len(X)
    rows = []

    def row(label, predict, size, note=""):
        proba, seconds = _timed(predict, X, repeats)
        rows.append({"model": label, **_scores(y_index, proba), "seconds_per_10k": round(seconds * per_10k, 3),
                     "size_bytes": int(size), "note": note})
        print(f"{dataset:14s} {label:28s} acc {rows[-1]['accuracy']:.4f}  {rows[-1]['seconds_per_10k']:7.2f} s/10k", flush=True)

    row("ensemble", teacher.predict_proba, _bundle_size(version, manifest))
    try:
        fused = teacher.to_keras()
    except ValueError as exc:
        why = str(exc).split("\n")[0]
        rows.append({"model": "fused Keras model", "note": f"not fusable: {why}"})
        rows.append({"model": "SavedModel", "note": "not exported: the ensemble cannot be fused"})
    else:
        with tempfile.TemporaryDirectory() as tmp:
            fused.save(Path(tmp) / "fused.keras")
            row("fused Keras model", lambda Z: zoo.predict_proba(fused, Z), _size(Path(tmp) / "fused.keras"))
            import tensorflow as tf

            exported = ensemble.export_saved_model(teacher, Path(tmp) / "saved_model")
            served = tf.saved_model.load(str(exported))

            def serve(Z):
                return np.concatenate([served.serve(Z[i:i + 512]).numpy() for i in range(0, len(Z), 512)])

            row("SavedModel", serve, _size(exported))
    student_lib = ROOT / "students" / dataset
    student = zoo.load(STUDENTS[dataset], registry=student_lib)
    entry = zoo.Registry(student_lib).entry(STUDENTS[dataset])
    row(f"student ({entry['builder']})", lambda Z: zoo.predict_proba(student, Z), _size(student_lib / "weights" / entry["weights"]["file"]))
    predict, size = _member_model(best, dataset, teacher)
    row(f"best member ({best})", predict, size)

    by = {r["model"]: r for r in rows if "accuracy" in r}
    member = rows[-1]
    ensemble_gain = by["ensemble"]["accuracy"] - member["accuracy"]
    student_row = next(r for r in rows if r["model"].startswith("student"))
    student_gain = student_row["accuracy"] - member["accuracy"]
    for r in rows:
        if "seconds_per_10k" in r:
            r["time_vs_best_member"] = round(r["seconds_per_10k"] / member["seconds_per_10k"], 2)
    return {
        "dataset": dataset, "best_member": best, "rows": rows,
        "student": {"name": STUDENTS[dataset], "distilled_from": entry.get("distilled_from"),
                    "kept_gain": round(student_gain / ensemble_gain, 3) if ensemble_gain > 0 else None,
                    "targets_met": bool(ensemble_gain > 0 and student_gain >= ensemble_gain / 2
                                        and student_row["time_vs_best_member"] <= 1.2)},
    }


def main() -> int:
    from kze.startup import quiet_tensorflow_start

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="*", default=list(STUDENTS))
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per model; the best is kept (default 2)")
    args = parser.parse_args()
    quiet_tensorflow_start()
    import keras
    import sklearn

    previous = json.loads(RESULTS.read_text())["datasets"] if RESULTS.exists() else []
    results = {r["dataset"]: r for r in previous}
    for dataset in args.datasets:
        results[dataset] = measure(dataset, args.repeats)
    out = {"date": date.today().isoformat(), "versions": {"keras": keras.__version__, "scikit-learn": sklearn.__version__},
           "command": "python scripts/bench_serving.py " + " ".join(sys.argv[1:]),
           "datasets": [results[d] for d in sorted(results)]}
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}; run python scripts/update_readme.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
