"""``zoo.search(...)``: check the arguments, open the library, storage and study, hand the trials to an executor.

Decisions:

- Every argument is checked (``zoo.search.config.make_config``) before the
  library folder, a storage or a study is created or changed; a ``storage``
  URL is then checked by opening it, a cluster by reaching it, still before
  the library is touched.
- Storage: a journal file ``LIB/search.journal`` by default; on a Dask
  cluster the SQLite file ``LIB/search.db`` (workers on this machine) or the
  database given (``postgresql://...``); any Optuna URL otherwise.
- A study records what it searches (builder, dataset, data digest, subset,
  metric) and refuses to resume with others; a study drawn from the former
  default ``augment`` choices keeps them.
"""

from __future__ import annotations

import contextlib
import os
import time

from zoo.search.config import METRICS, legacy_data_digest, make_config
from zoo.search.storage import DB_FILE, STORAGE_FILE, absolute_url, check_url, open_storage, quiet_optuna
from zoo.search.trials import check_choices, check_study, keep_recorded_choices, summary

__all__ = ["search"]


def search(
    name: str,
    *,
    library: str | os.PathLike,
    n_trials: int,
    X=None,
    y=None,
    data: str | os.PathLike | None = None,
    storage: str | None = None,
    seed: int = 0,
    timeout: float | None = None,
    subset: int | None = None,
    epochs: int | None = None,
    space: dict | None = None,
    workers: int = 1,
    metric: str = "accuracy",
    pruner=None,
    study_name: str | None = None,
    trials_per_process: int | None = None,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
    client=None,
    security=None,
    heartbeat: int | None = None,
    logs: bool = True,
    executor: str | None = None,
) -> dict:
    """Search hyperparameters of a zoo architecture; every completed trial joins the library.

    Parameters
    ----------
    name : str
        A zoo entry (``"fashion_mnist_bn_cnn"``: its builder, hyperparameters
        and recipe are the starting point, its dataset's train split the data
        unless ``X``/``data`` is given) or a builder name (``"bn_cnn"``), which
        needs ``X, y`` or ``data``.
    library : path
        Folder of the model library (``registry.yaml``, ``weights/``) and, by
        default, of the study's journal ``search.journal``; created if missing.
    n_trials : int
        Total trials of the study (complete, pruned, failed or running):
        re-running continues up to it.
    X, y : array-like, optional
        Your data (uint8 images, raw strings for the text builders, float
        features for ``mlp``), labels of any sortable type.
    data : path, optional
        A ``.npz`` file with arrays ``X`` and ``y`` (read without pickle).
    storage : str, optional
        An Optuna storage URL (``sqlite:///study.db``,
        ``postgresql://user@host/db``); default: the journal file in ``library``
        (with ``client``: a database, by default the SQLite file
        ``library/search.db``, for workers on this machine only).
    seed : int, default=0
        Seeds the TPE sampler, plus an offset of the study name (studies
        sharing a library draw different start-up trials) and each trial's
        number (unique in the study: workers never repeat each other's random
        start-up trials).
    timeout : float, optional
        Seconds after which no trial starts (running ones finish).
    subset : int, optional
        Smoke runs: train on the first ``subset`` examples plus an
        early-stopping slice of ``max(subset // 4, 32)`` more.
    epochs : int, optional
        Fix the maximum number of epochs (no longer searched).
    space : dict, optional
        Laid over the builder's default space; see ``zoo.search_spaces``.
    workers : int, default=1
        Worker processes running trials at the same time on this machine
        (more than one: ``executor="processes"``).
    metric : {"accuracy", "log_loss"}, default="accuracy"
        The objective, measured on the early-stopping slice.
    pruner : optuna.pruners.BasePruner, optional
        Default: ``MedianPruner(n_startup_trials=4, n_warmup_steps=2)``;
        ``optuna.pruners.NopPruner()`` never prunes.
    study_name : str, optional
        Default: ``name``. Also the prefix of the library's entry names.
    trials_per_process : int, optional
        Trials a worker process runs before it is replaced (bounds memory);
        giving it chooses ``executor="processes"`` unless ``executor`` is
        given. Default 1 (10 for ``executor="worker"``).
    data_dir : path, optional
        Where the zoo's datasets are (see ``zoo.datasets``).
    progress : bool, default=True
        A progress bar on stderr with the best value so far.
    client : distributed.Client or str, optional
        Run the trials on a Dask cluster (a client, or its scheduler's address
        ``tcp://host:8786`` / ``tls://host:8786``): one loop per worker, each
        trial in its own process there; see ``zoo.search.cluster``.
    security : distributed.Security, optional
        TLS settings for a scheduler address (default: Dask's configuration).
    heartbeat : int, optional
        With ``client``: seconds between heartbeats of a running trial (default
        20); a trial silent for three is failed and run again.
    logs : bool, default=True
        Each trial writes its CSV log and TensorBoard event files into
        ``library/runs/<entry>/`` (``tensorboard --logdir library/runs``).
    executor : {"worker", "inprocess", "processes", "dask"}, optional
        Where trials run (see ``zoo.search.executors``). Default ``"worker"``:
        one Python process started with ``python -c`` (no ``__main__`` guard
        needed), replaced every ``trials_per_process`` trials (default 10) to
        bound memory; ``"inprocess"``: this process; ``"processes"`` (default
        when ``workers > 1`` or ``trials_per_process`` is given): spawned
        worker processes (the calling script needs ``if __name__ ==
        "__main__":``); ``"dask"``: a Dask cluster (with ``client``).

    Returns
    -------
    dict
        ``study``, ``library``, ``storage``, ``metric``, ``direction``,
        ``n_trials``; ``trials``: the study's ``complete``, ``pruned``,
        ``failed`` and ``running`` counts; ``best``: ``trial``, ``value``,
        ``params`` and library ``entry`` of the best complete trial (None
        without one); ``timed_out``; ``wall_seconds``; ``logs``: the
        folder of the trials' logs (None with ``logs=False``).
    """
    import optuna

    from zoo.library import open_library
    from zoo.search.executors import InProcess, Processes, Worker

    started = time.perf_counter()
    config, arrays, pruner = make_config(
        name, library=library, n_trials=n_trials, X=X, y=y, data=data, storage=storage, seed=seed, timeout=timeout, subset=subset,
        epochs=epochs, space=space, workers=workers, metric=metric, pruner=pruner, study_name=study_name,
        trials_per_process=trials_per_process, data_dir=data_dir, client=client, security=security, heartbeat=heartbeat, logs=logs,
        executor=executor)
    database = config.executor == "dask"
    if storage is not None:
        config = config.replace(storage=absolute_url(check_url(storage)))
    # every argument is checked above, before anything is written: no library folder, storage or study yet
    with contextlib.ExitStack() as stack:
        if storage is not None:  # a bad URL fails here, before the library is touched
            opened = open_storage(config.storage, heartbeat=config.heartbeat, database=database)
        if database:
            from zoo.search.cluster import Dask, connect

            runner = Dask(stack.enter_context(connect(client, security)))
        else:
            runner = {"worker": Worker, "inprocess": InProcess, "processes": Processes}[config.executor]()
        registry = open_library(config.library)
        if storage is None:
            config = config.replace(storage=f"sqlite:///{os.path.join(config.library, DB_FILE)}" if database
                                    else os.path.join(config.library, STORAGE_FILE))
            opened = open_storage(config.storage, heartbeat=config.heartbeat, database=database)
        with quiet_optuna():  # no "new study created" line
            study = optuna.create_study(study_name=config.study, storage=opened, direction=METRICS[config.metric], load_if_exists=True,
                                        pruner=pruner)
        data_sha256 = config.data_info and config.data_info["sha256"]
        recorded = (study.user_attrs.get("zoo") or {}).get("data_sha256")
        if data_sha256 and recorded not in (None, data_sha256) and recorded == legacy_data_digest(*arrays):
            data_sha256 = recorded  # a study recorded before the one data hash, resumed on the same data
        check_study(study, {"builder": config.builder, "dataset": config.dataset, "data_sha256": data_sha256,
                            "subset": config.subset, "metric": config.metric})
        resolved = dict(config.space)
        keep_recorded_choices(study, resolved, space)
        check_choices(study, resolved)
        config = config.replace(space=resolved)
        runner.run(study, opened, registry, config, arrays=arrays, pruner=pruner, progress=progress)
        return summary(study, config, time.perf_counter() - started, storage if storage is not None else config.storage)
