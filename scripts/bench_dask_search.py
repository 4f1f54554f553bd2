#!/usr/bin/env python
"""Benchmark a search on a Dask cluster: one worker using every core against one single-threaded worker per core.

Two local clusters of worker processes (``LocalCluster(processes=True)``) run
the same search, one after the other, each into a fresh library: one worker
with ``--cores`` threads, then ``--cores`` workers with one thread each. A
trial's TensorFlow gets its worker's thread count (intra- and inter-op), so
the first runs one trial at a time on every core and the second one trial per
core. Every trial trains the same model (the starting point's hyperparameters,
nothing searched, no pruning), so the two differ only in how trials share the
cores. The table gives the wall time of each search (cluster start-up
excluded), trials per minute, and the ratio of the two throughputs.

Full run (a convnet, minutes per trial on 2 cores):
``ZOO_DATA_DIR=../shared/data python scripts/bench_dask_search.py``;
``--quick`` checks the script in a few minutes with a tiny model, where the
few seconds each trial's process takes to start dominate.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FULL = {"name": "fashion_mnist_bn_cnn", "trials": 6, "subset": 6000, "epochs": 3}
QUICK = {"name": "mnist_mlp", "trials": 4, "subset": 300, "epochs": 1}


def _search(name: str, trials: int, subset: int, epochs: int, workers: int, threads: int, folder: str) -> dict:
    """Run the search on a fresh local cluster of ``workers`` processes with ``threads`` threads each."""
    import optuna
    from distributed import Client, LocalCluster

    import zoo

    with LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True, dashboard_address=None, memory_limit=0) as cluster, \
            Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(workers)
        started = time.perf_counter()
        summary = zoo.search(name, library=os.path.join(folder, f"lib-{workers}x{threads}"), n_trials=trials, client=client,
                             subset=subset, space={"replace": True, "epochs": epochs}, pruner=optuna.pruners.NopPruner(), progress=False)
        summary["measured_seconds"] = time.perf_counter() - started
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"a tiny model: {QUICK}")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2, help="cores to share (default: all)")
    parser.add_argument("--name", help=f"the zoo entry to search from (default: {FULL['name']})")
    parser.add_argument("--trials", type=int, help=f"trials per search (default: {FULL['trials']})")
    parser.add_argument("--subset", type=int, help=f"training examples per trial (default: {FULL['subset']})")
    parser.add_argument("--epochs", type=int, help=f"epochs per trial (default: {FULL['epochs']})")
    args = parser.parse_args()
    settings = dict(QUICK if args.quick else FULL)
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as folder:
        for workers, threads in ((1, args.cores), (args.cores, 1)):
            summary = _search(**settings, workers=workers, threads=threads, folder=folder)
            complete = summary["trials"]["complete"]
            seconds = summary["measured_seconds"]
            rows.append((f"{workers} worker{'s' if workers > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}", complete, seconds, 60 * complete / seconds))

    print(f"{settings['name']}: {settings['trials']} trials of {settings['subset']} examples, {settings['epochs']} epoch(s), "
          f"{args.cores} cores{' (--quick)' if args.quick else ''}")
    print(f"{'cluster':<24} {'trials':>6} {'wall (s)':>9} {'trials/min':>11} {'ratio':>6}")
    for label, complete, seconds, rate in rows:
        print(f"{label:<24} {complete:>6} {seconds:>9.1f} {rate:>11.2f} {rate / rows[0][3]:>6.2f}")


if __name__ == "__main__":
    main()
