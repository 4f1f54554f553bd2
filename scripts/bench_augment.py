#!/usr/bin/env python
"""Seconds per training epoch of ``fashion_mnist_bn_cnn``'s architecture, per augmentation policy.

Builds the recipe's ``bn_cnn`` (its filters, dense width, dropout, batch size
and Adam learning rate) once per policy of ``zoo.augment.POLICIES`` and once
without augmentation, traces each with one short fit, then times whole
epochs of ``--n`` Fashion-MNIST training images. The machine is shared and
noisy: every model is timed ``--rounds`` times, the order reversed each
round, and the table shows medians of wall-clock and CPU seconds (all the
process's threads: steadier when other jobs share the cores) with their
ratios to no augmentation (the issue's bar: a policy that doubles the epoch
time needs a faster implementation).

Usage: ``python scripts/bench_augment.py [--n 10000] [--rounds 2] [--policies crop digits ...]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def _parse(argv=None):
    from zoo.augment import POLICIES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="training images per epoch (default 10000)")
    parser.add_argument("--rounds", type=int, default=2, help="timed epochs per policy, in alternating order (default 2)")
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES), metavar="POLICY", help="policies to time (default all)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def _model(params: dict, recipe: dict, augment):
    import keras

    from zoo.architectures import build

    model = build("bn_cnn", **{**params, "augment": augment})
    model.compile(optimizer=keras.optimizers.Adam(recipe["optimizer"]["learning_rate"]), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _epoch_seconds(model, X, y, batch_size: int) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all of this process's threads) of one epoch."""
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(X, y, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> int:
    args = _parse(argv)
    import keras

    from zoo import datasets
    from zoo.recipes import recipe

    spec = recipe("fashion_mnist_bn_cnn")
    params = {k: v for k, v in spec["params"].items() if k != "augment"}
    batch_size = spec["recipe"]["batch_size"]
    X, y = datasets.load("fashion_mnist", "train")
    X, y = X[: args.n], y[: args.n]

    keras.utils.set_random_seed(args.seed)
    names = [None, *args.policies]
    models = {name: _model(params, spec["recipe"], name) for name in names}
    for model in models.values():  # trace train_function (full and partial last batch) outside the timings
        model.fit(X[: batch_size * 2 + 7], y[: batch_size * 2 + 7], batch_size=batch_size, epochs=1, verbose=0)

    wall: dict = {name: [] for name in names}
    cpu: dict = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            w, c = _epoch_seconds(models[name], X, y, batch_size)
            wall[name].append(w)
            cpu[name].append(c)
            print(f"round {r + 1}: {name or 'None':16s} {w:6.1f} s wall {c:6.1f} s CPU", flush=True)

    base_wall, base_cpu = statistics.median(wall[None]), statistics.median(cpu[None])
    print(f"\nbn_cnn (fashion_mnist_bn_cnn's architecture), {args.n} Fashion-MNIST images per epoch, batch {batch_size}, "
          f"median of {args.rounds} epochs, order alternating; keras {keras.__version__}. CPU = seconds of all this "
          "process's threads, steadier than wall time on a shared machine.\n")
    print("| augment | wall s / epoch | epochs (wall s) | wall ratio to None | CPU s / epoch | CPU ratio to None |")
    print("|---|---:|---|---:|---:|---:|")
    for name in names:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        runs = ", ".join(f"{s:.1f}" for s in wall[name])
        print(f"| {name or 'None'} | {w:.1f} | {runs} | {w / base_wall:.2f} | {c:.1f} | {c / base_cpu:.2f} |")
    worst = max(names[1:], key=lambda n: statistics.median(cpu[n]))
    ratio = statistics.median(cpu[worst]) / base_cpu
    print(f"\ncostliest policy (CPU): {worst} at {ratio:.2f}x None" + ("  <- doubles the epoch: needs a faster implementation" if ratio >= 2 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
