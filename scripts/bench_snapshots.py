#!/usr/bin/env python
"""Snapshot ensemble vs independent runs vs one run, on Fashion-MNIST (test accuracy, time).

Three ways to spend a budget of ``E`` epochs on the first ``--examples``
training images (10 % of them carved out as the early-stopping slice, the same
slice for every run):

- ``snapshots``: one ``ZooClassifier(snapshots=M)`` fit of ``E`` epochs, ``M``
  cycles of cyclic cosine annealing; the ``M`` snapshots are the members.
- ``independent``: ``M`` fits of ``E / M`` epochs each, seeds ``seed .. seed +
  M - 1`` (other initialisations and batch orders, the same slice: the
  slice is carved with ``--seed``'s split by giving every run that seed for
  the split... see below), each with the plain cosine schedule (one cycle).
- ``single``: one fit of ``E`` epochs with the cosine schedule.

``lr_schedule="cosine"`` everywhere (warm-up in the first cycle of each fit),
the same learning rate and batch size. ``patience`` is ``E`` (early stopping
rarely ends a run; it restores the best epoch when it does), so every
method trains its whole budget. Each independent run has its own
``random_state``, which also draws its slice: their slices differ, the
price of different seeds in this estimator (the test split used for the
table is the same for all). The table shows, per method, the test accuracy
and log loss of the mean of the members' probabilities, the best single
member's test accuracy, and the wall-clock and CPU seconds (all of the
process's threads) of the training.

Usage: ``python scripts/bench_snapshots.py [--examples 5000] [--epochs 6]
[--snapshots 3] [--builder bn_cnn] [--param filters=[16,32]]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings


def _parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=5000, help="training images used, slice included (default 5000)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of the budget E (default 6)")
    parser.add_argument("--snapshots", type=int, default=3, help="snapshots M, also the number of independent runs (default 3)")
    parser.add_argument("--builder", default="bn_cnn", help="architecture (default bn_cnn)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=JSON", help="a builder hyperparameter, e.g. filters=[16,32] (repeatable)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--test", type=int, default=None, help="test images used (default: all 10000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.epochs % args.snapshots:
        parser.error(f"--epochs {args.epochs} must be a multiple of --snapshots {args.snapshots}")
    params = {}
    for item in args.param:
        name, _, value = item.partition("=")
        try:
            params["builder__" + name] = json.loads(value)
        except json.JSONDecodeError:
            params["builder__" + name] = value
    args.builder_params = params
    return args


def _fit(args, X, y, epochs: int, seed: int, snapshots: int = 1):
    from zoo.estimator import TrainingWarning, ZooClassifier

    clf = ZooClassifier(args.builder, epochs=epochs, batch_size=args.batch_size, learning_rate=args.learning_rate, lr_schedule="cosine",
                        patience=args.epochs, snapshots=snapshots, random_state=seed, **args.builder_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingWarning)
        clf.fit(X, y)
    return clf


def _row(name: str, members: list, epochs_each: int, X_test, y_test, wall: float, cpu: float) -> dict:
    import numpy as np

    from zoo.models import scores

    probas = [m.predict_proba(X_test) for m in members]
    singles = [float(np.mean(p.argmax(axis=1) == y_test)) for p in probas]
    mean = scores(y_test, np.mean(probas, axis=0))
    return {"method": name, "members": len(members), "epochs each": epochs_each, "ensemble acc": mean["accuracy"],
            "ensemble log loss": mean["log_loss"], "best single acc": max(singles), "wall s": wall, "CPU s": cpu}


def main(argv=None) -> int:
    args = _parse(argv)
    from kze.startup import quiet_tensorflow_start

    quiet_tensorflow_start()
    from zoo import datasets

    X, y = datasets.load("fashion_mnist", "train")
    X, y = X[: args.examples], y[: args.examples]
    X_test, y_test = datasets.load("fashion_mnist", "test")
    if args.test is not None:
        X_test, y_test = X_test[: args.test], y_test[: args.test]
    M, E = args.snapshots, args.epochs
    rows = []

    wall, cpu = time.perf_counter(), time.process_time()
    snap = _fit(args, X, y, E, args.seed, snapshots=M)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rows.append(_row("snapshots", snap.snapshot_estimators(), E // M, X_test, y_test, wall, cpu))

    wall, cpu = time.perf_counter(), time.process_time()
    runs = [_fit(args, X, y, E // M, args.seed + i) for i in range(M)]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rows.append(_row("independent", runs, E // M, X_test, y_test, wall, cpu))

    wall, cpu = time.perf_counter(), time.process_time()
    one = _fit(args, X, y, E, args.seed)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rows.append(_row("single", [one], E, X_test, y_test, wall, cpu))

    described = ", ".join(f"{k.removeprefix('builder__')}={v}" for k, v in args.builder_params.items())
    print(f"Fashion-MNIST, {args.builder}{f' ({described})' if described else ''}: {args.examples} training images (10 % slice), "
          f"E={E} epochs, M={M}, batch {args.batch_size}, lr {args.learning_rate}, test images {len(y_test)}")
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = [f"{v:.4f}" if isinstance(v, float) and k.endswith(("acc", "loss")) else f"{v:.1f}" if isinstance(v, float) else str(v)
                 for k, v in row.items()]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
