#!/usr/bin/env python
"""Benchmark the zoo's load paths and print a table.

Measured side by side in one run, after TensorFlow is imported:

* ``zoo.load(name)`` (build + sha256 check + weights) against
  ``zoo.load(name, weights=None)`` (build only), best of ``--repeat`` runs;
  target: every load <= 1 s.
* ``zoo.datasets.load("imdb", split)`` with the parse cache warm against the
  first, cold parse of the archive; target: warm <= 2 s.

Usage: ``ZOO_DATA_DIR=../shared/data python scripts/bench_zoo.py [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import keras
    import tensorflow  # noqa: F401  (the target is "once TensorFlow is imported")

    import zoo
    from zoo import datasets

    print(f"{'model':<26} {'load (s)':>9} {'build only (s)':>15} {'ratio':>6} {'<= 1 s':>7}")
    for name in zoo.list_models():
        keras.backend.clear_session()
        zoo.load(name)  # first call pays one-off graph/tracing costs shared by all models
        full = _best(lambda: zoo.load(name), args.repeat)
        bare = _best(lambda: zoo.load(name, weights=None), args.repeat)
        print(f"{name:<26} {full:>9.3f} {bare:>15.3f} {full / bare:>6.2f} {'yes' if full <= 1 else 'NO':>7}")

    print()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["ZOO_CACHE_DIR"] = cache
        start = time.perf_counter()
        datasets.load("imdb", "test")
        cold = time.perf_counter() - start
        print(f"{'IMDB split':<12} {'warm cache (s)':>15} {'cold parse (s)':>15} {'ratio':>6} {'<= 2 s':>7}")
        for split in datasets.SPLITS:
            warm = _best(lambda: datasets.load("imdb", split), args.repeat)
            print(f"{split:<12} {warm:>15.3f} {cold:>15.3f} {cold / warm:>6.1f} {'yes' if warm <= 2 else 'NO':>7}")


if __name__ == "__main__":
    main()
