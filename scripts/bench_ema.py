#!/usr/bin/env python
"""Weight averaging (``ZooClassifier(ema=m)``) vs none, on Fashion-MNIST (test accuracy, seconds per epoch).

The first ``--examples`` training images (10 % of them the early-stopping
slice, the same for every run: same ``random_state``), one ``bn_cnn`` fit per
setting and seed with the cosine schedule (``--schedule plateau``: a constant
rate, halved when the slice's loss stalls), ``--epochs`` epochs (``patience``
as long, so early stopping only picks the best epoch), the same batch size
and learning rate. Settings: no average, then each ``--ema`` momentum. The
table gives, per setting, the mean over ``--seeds`` seeds of the best epoch,
the slice and test accuracy, the test log loss, and the wall-clock seconds
per epoch of the fit (the averaged runs update the averages every step and
score the slice with them).

Usage: ``python scripts/bench_ema.py [--examples 10000] [--epochs 6]
[--ema 0.99 --ema 0.999] [--seeds 1] [--schedule cosine] [--param width=2]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings


def _parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10000, help="training images used, slice included (default 10000)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--ema", type=float, action="append", default=None, help="a momentum to compare (repeatable; default 0.99 and 0.999)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per setting, 0 .. seeds - 1 (default 1)")
    parser.add_argument("--builder", default="bn_cnn", help="architecture (default bn_cnn)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=JSON", help="a builder hyperparameter, e.g. width=2 (repeatable)")
    parser.add_argument("--schedule", choices=("cosine", "plateau"), default="cosine", help="lr_schedule (default cosine)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--test", type=int, default=None, help="test images used (default: all 10000)")
    args = parser.parse_args(argv)
    args.ema = args.ema or [0.99, 0.999]
    params = {}
    for item in args.param:
        name, _, value = item.partition("=")
        try:
            params["builder__" + name] = json.loads(value)
        except json.JSONDecodeError:
            params["builder__" + name] = value
    args.builder_params = params
    return args


def _run(args, X, y, X_test, y_test, ema, seed: int) -> dict:
    from zoo.estimator import TrainingWarning, ZooClassifier
    from zoo.models import scores

    clf = ZooClassifier(args.builder, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate, lr_schedule=args.schedule,
                        patience=args.epochs, ema=ema, random_state=seed, **args.builder_params)
    wall = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrainingWarning)
        clf.fit(X, y)
    wall = time.perf_counter() - wall
    for warning in caught:
        print(f"  ema={ema}, seed {seed}: {warning.message}", file=sys.stderr)
    test = scores(y_test, clf.predict_proba(X_test))
    return {"best epoch": clf.best_epoch_, "slice acc": clf.early_stopping_scores_["accuracy"], "test acc": test["accuracy"],
            "test log loss": test["log_loss"], "s / epoch": wall / len(clf.history_["loss"])}


def main(argv=None) -> int:
    args = _parse(argv)
    from kze.startup import quiet_tensorflow_start

    quiet_tensorflow_start()
    import numpy as np

    from zoo import datasets

    X, y = datasets.load("fashion_mnist", "train")
    X, y = X[: args.examples], y[: args.examples]
    X_test, y_test = datasets.load("fashion_mnist", "test")
    if args.test is not None:
        X_test, y_test = X_test[: args.test], y_test[: args.test]
    rows = []
    for ema in [None, *args.ema]:
        runs = [_run(args, X, y, X_test, y_test, ema, seed) for seed in range(args.seeds)]
        row = {"ema": "none" if ema is None else str(ema)}
        for key in ("best epoch", "slice acc", "test acc", "test log loss", "s / epoch"):
            row[key] = float(np.mean([r[key] for r in runs]))
        row["test acc per seed"] = " ".join(f"{r['test acc']:.4f}" for r in runs)
        rows.append(row)
        print(f"done: ema={row['ema']}", file=sys.stderr, flush=True)

    described = ", ".join(f"{k.removeprefix('builder__')}={v}" for k, v in args.builder_params.items())
    steps = -(-int(0.9 * args.examples) // args.batch_size) * args.epochs
    print(f"Fashion-MNIST, {args.builder}{f' ({described})' if described else ''}: {args.examples} training images (10 % slice), "
          f"{args.epochs} epochs ({steps} steps), {args.schedule} schedule, batch {args.batch_size}, lr {args.learning_rate}, "
          f"{args.seeds} seed(s), test images {len(y_test)}")
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
