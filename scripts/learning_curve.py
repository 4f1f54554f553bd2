#!/usr/bin/env python
"""Learning curve of ``ZooClassifier("bn_cnn")``: the old training-length defaults against ``"auto"``.

For each training-set size N (default 300, 1,000, 5,000 and 50,000) it fits
``ZooClassifier("bn_cnn", random_state=0)``, every other parameter at its
default, twice: with the defaults before issue 18 (``batch_size=128,
epochs=20``, "old") and with ``batch_size="auto", epochs="auto"`` ("new",
the defaults now; see ``zoo.estimator.resolve_auto``). Each fit trains on the
first N images of the Fashion-MNIST train split (``zoo.datasets.load``: the
official training images less the last 10,000, so 50,000 is the whole split;
the first N are close to balanced, and each record gives its smallest and
largest class count) and is scored on the whole official test split (10,000
images). A record holds the test accuracy and log loss, the batch size, the
maximum and the run epochs, the best epoch (whose weights are kept), the
optimisation steps, wall and CPU seconds of the fit, and the
``TrainingWarning`` messages the fit raised.

Resumable: the results file is rewritten atomically (``kze.files.atomic_path``)
after every fit, and a rerun skips the (size, defaults) pairs it already
holds unless ``--force``; a killed run loses at most the fit in progress.
A file written with another setup (builder, seed, dataset) is refused.

Usage: ``python scripts/learning_curve.py [--sizes 300 1000 5000 50000] [--variants old new] [--force]``;
``--table`` prints the markdown table of the file without fitting.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "learning_curve.json"
BUILDER = "bn_cnn"
DATASET = "fashion_mnist"
SEED = 0
VARIANTS = {"old": {"batch_size": 128, "epochs": 20}, "new": {"batch_size": "auto", "epochs": "auto"}}
_SETUP = {
    "builder": BUILDER,
    "random_state": SEED,
    "dataset": DATASET,
    "train": "the first N images of the train split",
    "test": "the whole official test split",
    "variants": VARIANTS,
}


def _parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 1000, 5000, 50000], metavar="N", help="training-set sizes (default 300 1000 5000 50000)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), help="defaults to compare (default old new)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results file (default {RESULTS.relative_to(RESULTS.parents[2])})")
    parser.add_argument("--force", action="store_true", help="fit again the pairs the file already holds")
    parser.add_argument("--table", action="store_true", help="print the file's table and exit")
    return parser.parse_args(argv)


def _read(path: Path) -> dict:
    if not path.exists():
        return {"setup": _SETUP, "runs": []}
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("setup") != json.loads(json.dumps(_SETUP)):
        raise SystemExit(f"{path} was written with another setup ({data.get('setup')!r}); use --out for a new file")
    return data


def _write(path: Path, data: dict) -> None:
    from kze.files import atomic_path

    data["runs"].sort(key=lambda r: (r["n"], list(VARIANTS).index(r["variant"])))
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _fit(n: int, variant: str, X, y, X_test, y_test) -> dict:
    """Fit one (size, defaults) pair and score it on the test split."""
    import keras
    import numpy as np
    import sklearn

    from zoo import ZooClassifier
    from zoo.estimator import TrainingWarning
    from zoo.models import scores

    X_n, y_n = X[:n], y[:n]
    if len(X_n) < n:
        raise SystemExit(f"the train split has {len(X)} images, fewer than {n}")
    counts = np.bincount(y_n)
    clf = ZooClassifier(BUILDER, random_state=SEED, **VARIANTS[variant])
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrainingWarning)
        clf.fit(X_n, y_n)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    test = scores(y_test, clf.predict_proba(X_test))
    n_fit = n - clf.spec_["recipe"]["early_stopping_size"]  # the slice is left out of training
    epochs_run = len(clf.history_["loss"])
    return {
        "n": n,
        "variant": variant,
        "examples_trained_on": int(n_fit),
        "class_counts": {"min": int(counts.min()), "max": int(counts.max())},
        "batch_size": int(clf.batch_size_),
        "max_epochs": int(clf.epochs_),
        "epochs_run": epochs_run,
        "best_epoch": int(clf.best_epoch_),
        "steps": math.ceil(n_fit / clf.batch_size_) * epochs_run,
        "test_accuracy": round(test["accuracy"], 4),
        "test_log_loss": round(test["log_loss"], 4),
        "early_stopping_accuracy": round(clf.early_stopping_scores_["accuracy"], 4),
        "fit_wall_seconds": round(wall, 1),
        "fit_cpu_seconds": round(cpu, 1),
        "training_warnings": [str(w.message) for w in caught if issubclass(w.category, TrainingWarning)],
        "versions": f"keras {keras.__version__}, scikit-learn {sklearn.__version__}",
        "date": time.strftime("%Y-%m-%d"),
    }


def table(data: dict) -> str:
    """The markdown table of a results file's runs."""
    lines = [
        f"`ZooClassifier(\"{BUILDER}\", random_state={SEED})` on the first N Fashion-MNIST training images, "
        "scored on the 10,000 test images; old: `batch_size=128, epochs=20`, new: `\"auto\"` (a tenth of N is the early-stopping slice).",
        "",
        "| N | defaults | batch | max epochs | epochs run | best epoch | steps | test accuracy | test log loss | fit s (wall) | TrainingWarning |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in data["runs"]:
        warned = "; ".join(w.split(":")[0] for w in r["training_warnings"]) or "-"
        lines.append(f"| {r['n']:,} | {r['variant']} | {r['batch_size']} | {r['max_epochs']} | {r['epochs_run']} | {r['best_epoch']} | "
                     f"{r['steps']:,} | {r['test_accuracy']:.4f} | {r['test_log_loss']:.4f} | {r['fit_wall_seconds']:.0f} | {warned} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = _parse(argv)
    data = _read(args.out)
    if args.table:
        print(table(data))
        return 0
    recorded = {(r["n"], r["variant"]) for r in data["runs"]}
    todo = [(n, v) for n in args.sizes for v in args.variants if args.force or (n, v) not in recorded]
    for n, variant in sorted(set(recorded) - set(todo)):
        if n in args.sizes and variant in args.variants:
            print(f"N={n} {variant}: recorded, skipped (--force fits it again)", flush=True)
    if todo:
        from zoo import datasets

        X, y = datasets.load(DATASET, "train")
        X_test, y_test = datasets.load(DATASET, "test")
    for n, variant in todo:
        print(f"N={n} {variant}: fitting...", flush=True)
        record = _fit(n, variant, X, y, X_test, y_test)
        data["runs"] = [r for r in data["runs"] if (r["n"], r["variant"]) != (n, variant)] + [record]
        _write(args.out, data)
        print(f"N={n} {variant}: test accuracy {record['test_accuracy']:.4f}, {record['epochs_run']} epochs "
              f"(best {record['best_epoch']}), {record['steps']} steps, {record['fit_wall_seconds']:.0f} s", flush=True)
    print()
    print(table(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
