#!/usr/bin/env python
"""Re-run zoo recipes and update the shipped registry.yaml and zoo/weights with what they produce.

Usage::

    ZOO_DATA_DIR=../shared/data python scripts/train_zoo.py                 # every recipe
    ZOO_DATA_DIR=../shared/data python scripts/train_zoo.py 'fashion_mnist_*' imdb_conv1d

Names are shell-style patterns over ``zoo.recipes.RECIPES``. Recipes run one
after another; a failing recipe is reported and the others still run. Logs go
to ``runs/<name>-<timestamp>/`` (view them with ``tensorboard --logdir runs``).

This script retrains the zoo itself, so it writes into the package
(``zoo.train(..., into_package=True)``, ``zoo train NAME --into-package``) and
says so; ``--library DIR`` writes into a model library instead.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
import traceback


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", default=["*"], help="recipe names or shell-style patterns (default: all)")
    parser.add_argument("--epochs", type=int, default=None, help="override every recipe's maximum epochs")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch Keras output")
    parser.add_argument("--library", metavar="DIR", help="write into this model library instead of the shipped registry")
    args = parser.parse_args(argv)

    import zoo
    from zoo.recipes import RECIPES

    names = [n for n in RECIPES if any(fnmatch.fnmatchcase(n, p) for p in args.names)]
    if not names:
        parser.error(f"no recipe matches {args.names}; known: {', '.join(RECIPES)}")
    target = {"library": args.library} if args.library is not None else {"into_package": True}
    if args.library is None:
        from zoo.training import target_registry

        shipped = target_registry(into_package=True)
        print(f"writing into the shipped registry {shipped.path} and {shipped.weights_dir} (--library DIR to write elsewhere)", file=sys.stderr)
    rows, failed = [], []
    for name in names:
        print(f"=== {name}", flush=True)
        start = time.perf_counter()
        try:
            entry = zoo.train(name, epochs=args.epochs, verbose=0 if args.quiet else 2, **target)
        except Exception:  # keep going: one broken recipe must not cost the others
            traceback.print_exc()
            failed.append(name)
            continue
        m = entry["metrics"]
        rows.append((name, m["validation"]["accuracy"], m["test"]["accuracy"], entry["training"]["epochs_run"], time.perf_counter() - start))
        print(f"    val {rows[-1][1]:.4f}  test {rows[-1][2]:.4f}  {rows[-1][4] / 60:.1f} min", flush=True)

    print(f"\n{'model':<26} {'val acc':>8} {'test acc':>8} {'epochs':>6} {'minutes':>8}")
    for name, val, test, ep, sec in rows:
        print(f"{name:<26} {val:>8.4f} {test:>8.4f} {ep:>6d} {sec / 60:>8.1f}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
