#!/usr/bin/env python
"""Benchmark a search's overhead per trial: one worker process, in-process, spawned processes, a Dask cluster, small and real trials.

Each row is one search of ``trials`` trials from ``mnist_mlp`` (learning rate
searched, epochs fixed, no pruning), run side by side in this one run on the
same machine: ``wall/trial`` is the search's wall time over its trials (what a
user waits: process starts, TensorFlow imports, data loading, storage and
library writes included; for Dask, the local cluster's start too), ``trial``
Optuna's mean trial duration (ask to tell: the fit, the entry, the logs),
``fit`` the mean training time the library entries record; then the ratios.
A worker process (``worker``, ``processes``, ``dask``) pays its start once per
process: the default ``worker`` once per 10 trials (here once per search of
3 trials, so ``wall/fit`` carries a third of it per trial; a long search a
tenth), ``processes`` and ``dask`` once per trial.
Small trials (300 images, 1 epoch) show the fixed cost of each executor;
real trials (a fit of about 30 s or more) show whether it still matters.
The README's search section shows the table this printed.

Usage: python scripts/bench_search.py [--quick]   (about 12 minutes on 2 cores; --quick: small trials only)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

LR_ONLY = {"replace": True, "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}
SIZES = {"small": {"trials": 3, "subset": 300, "epochs": 1}, "real": {"trials": 3, "subset": 40000, "epochs": 8}}


def _search(executor: str, size: dict, folder: str) -> dict:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    import zoo
    from zoo import Registry

    kwargs = {"library": folder, "n_trials": size["trials"], "subset": size["subset"], "epochs": size["epochs"], "space": LR_ONLY,
              "pruner": optuna.pruners.NopPruner(), "progress": False, "logs": False}
    started = time.perf_counter()
    if executor == "dask":
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=1, threads_per_worker=os.cpu_count() or 1, processes=True, dashboard_address=None, memory_limit=0) as cluster, \
                Client(cluster, set_as_default=False) as client:
            summary = zoo.search("mnist_mlp", client=client, **kwargs)
    else:
        summary = zoo.search("mnist_mlp", executor=executor, **kwargs)
    wall = time.perf_counter() - started
    fits = [Registry(folder).entry(n)["training"]["seconds"] for n in Registry(folder).names()]
    assert summary["trials"]["complete"] == size["trials"] == len(fits), summary
    storage = f"sqlite:///{folder}/search.db" if executor == "dask" else JournalStorage(JournalFileBackend(f"{folder}/search.journal"))
    trials = optuna.load_study(study_name="mnist_mlp", storage=storage).trials
    durations = [t.duration.total_seconds() for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    return {"wall": wall / size["trials"], "trial": sum(durations) / len(durations), "fit": sum(fits) / len(fits)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small trials only")
    args = parser.parse_args()
    sizes = ["small"] if args.quick else ["small", "real"]
    print(f"{'trials':<26} {'executor':<10} {'wall/trial (s)':>14} {'trial (s)':>9} {'fit (s)':>8} {'wall/fit':>8} {'trial/fit':>9}")
    for size in sizes:
        s = SIZES[size]
        for executor in ("worker", "inprocess", "processes", "dask"):
            with tempfile.TemporaryDirectory() as folder:
                r = _search(executor, s, os.path.join(folder, "lib"))
            label = f"{size}: {s['subset']} images, {s['epochs']} ep"
            print(f"{label:<26} {executor:<10} {r['wall']:>14.1f} {r['trial']:>9.1f} {r['fit']:>8.1f} {r['wall'] / r['fit']:>8.2f} "
                  f"{r['trial'] / r['fit']:>9.2f}", flush=True)
    print(f"({os.cpu_count()} cores; mnist_mlp, learning rate searched, no pruning)")


if __name__ == "__main__":
    main()
