"""Hyperparameter search over the zoo's architectures: Optuna studies shared by worker processes.

``zoo.search(name, library=LIB, n_trials=N)`` (``zoo search NAME --library LIB
--trials N``) runs an Optuna study whose trials each train a
:class:`zoo.ZooClassifier` and write it into the model library ``LIB``
(``zoo.library``). Decisions:

- Starting point: a zoo entry (its builder, hyperparameters and recipe, on its
  dataset's ``train`` split; never the validation or test split) or a builder
  name with the user's data. The space (``zoo.search_spaces``) overrides the
  starting point's values for the hyperparameters it searches.
- Objective: the early-stopping slice's ``accuracy`` (maximised; default) or
  ``log_loss`` (minimised), measured after restoring the best epoch. Every
  trial keeps the starting point's seed, so every trial is scored on the
  same slice. The validation split stays untouched for fitting ensembles.
- Sampler: Optuna's TPE, seeded with ``seed`` plus an offset of the study
  name plus the trial's number (modulo 2**32; ``_sampler``, the one place
  every executor makes a sampler). When K workers start together their first
  trials are numbers 0 to K-1, so worker ``i`` samples with ``seed + offset +
  i``; and as the number is unique in the study, no two workers, recycled
  processes, resumed runs or other commands sharing the study ever repeat a
  random start-up trial (a per-worker ``seed + index`` would, for two
  commands started together). The offset (the first four bytes of the
  sha256 of the study name, never Python's per-process ``hash``) keeps two
  studies sharing a library and a seed (``fashion_mnist_bn_cnn`` and
  ``fashion_mnist_residual`` in one library, or two names for one model)
  from drawing the same start-up trials: their seeds coincide only if their
  offsets fall within a trial count of each other, a chance of ``2n / 2**32``
  for two studies of ``n`` trials (one in seven million for 300). The same study name
  and seed draw the same values, so runs stay reproducible; a study created
  before the offset existed resumes as before, only its new draws differ.
  With Optuna's constant liar, running trials repel new ones.
- Pruner: ``MedianPruner(n_startup_trials=4, n_warmup_steps=2)``, fed the
  slice metric after every epoch by a Keras callback. With a handful of
  trials of many minutes each, bracketed pruners (Hyperband, successive
  halving) rarely get the trials they need; the median rule compares a trial
  with the finished ones at the same epoch from the fifth trial on, and the two
  warm-up epochs spare slow starters (augmentation, low learning rates).
- Storage: a journal file ``LIB/search.journal`` (Optuna's file backend, safe
  for several processes), or any Optuna storage URL (``sqlite:///...``,
  ``postgresql://...`` for workers on several machines).
- ``n_trials`` is the study's total, not this run's: trials that are
  complete, pruned, failed or running count, and a run stops when they reach
  it (re-running continues up to it). A worker that finds its new trial beyond
  the total (two workers asked at once) closes it as failed with the user
  attribute ``surplus``, not counted.
- The journal backend has no heartbeat: each running trial records its host,
  pid and process start time; at start (and when a worker dies) trials of
  this host whose process is gone are failed (user attribute ``retried``, not
  counted) and their parameters are enqueued to run again, unless the library
  already holds the trial's model (the process died after writing it), in
  which case the trial is completed with the recorded value.
- Workers are processes spawned (never forked: TensorFlow hangs in a fork)
  with absolute paths; each runs ``trials_per_process`` trials (default 1)
  and exits, and a new one takes its place. Keras leaks tens of MB per trial
  even after ``clear_session()``; a process per trial costs a few seconds of
  start-up against trials of minutes, and bounds memory whatever the trial
  count. A trial that raises fails (its error in the user attribute
  ``error``) and stops the search, as in ``Study.optimize``.
- ``timeout``: no trial starts after it; running trials finish.
- Every argument is checked before the library folder, a storage or a study
  is created or changed (a ``storage`` URL is then checked by opening it, a
  cluster by reaching it), so a refused argument leaves nothing behind and
  records nothing in a study that would then refuse later runs. That
  includes ``subset``: its early-stopping slice of ``max(subset // 4, 32)``
  must leave examples to fit on, in the user's data or the zoo dataset's
  ``train`` split (whose size is known without reading it).
- Worker processes on this machine read a ``data`` file again; one whose
  arrays' sha256 is no longer the study's is refused, never trained on.
- ``client``: the trials run on a Dask cluster instead (``zoo.cluster``):
  one loop per worker, an RDB storage with heartbeats, the library written
  by this process.
- Logs (``logs=True``, the default; ``zoo search --no-logs`` turns them
  off): each trial writes the CSV log (``training.csv``) and TensorBoard
  event files (``tensorboard/``, histograms every epoch) that every entry's
  recipe lists, into ``LIB/runs/<entry>/`` (absolute paths: workers are
  other processes), so ``tensorboard --logdir LIB/runs`` compares trials,
  pruned and failed ones included. They are extra callbacks of the fit, not
  ``ZooClassifier(log_dir=...)``, whose best-epoch checkpoint would store
  every trial's weights twice. The log callbacks come before the pruning
  callback, so a pruned trial's last epoch is logged, and they are closed
  when the fit raises. A stale folder of the same entry name (a study
  started again after its storage was deleted) is replaced. The entry
  records its folder relative to the library (``logs: runs/<entry>``). On a
  Dask cluster a worker writes them only where it sees the library folder
  (the same machine, or a shared file system).
- Watching: :func:`history` lists the trials of the library's studies
  (number, state, value, parameters, duration, entry) from the storage
  through Optuna's public API (``get_all_study_names``, ``load_study``,
  ``get_trials``; no pandas), opened by the one factory ``_open_storage``;
  it reads and never creates: a library without a storage is refused.
  :func:`plot_history` draws Optuna's matplotlib optimisation history and,
  with two complete trials or more, parameter importances, stacked into one
  PNG written atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import numbers
import os
import re
import socket
import time
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_PRUNER", "METRICS", "RUNS_FOLDER", "STORAGE_FILE", "history", "plot_history", "search"]

STORAGE_FILE = "search.journal"
RUNS_FOLDER = "runs"  # LIB/runs/<entry>/: each trial's CSV and TensorBoard logs
METRICS = {"accuracy": "maximize", "log_loss": "minimize"}
_REPORTED = {"accuracy": "val_accuracy", "log_loss": "val_loss"}  # the Keras log of the slice metric
_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")
DEFAULT_PRUNER = {"n_startup_trials": 4, "n_warmup_steps": 2}  # MedianPruner's settings
_MAX_DEATHS = 3  # consecutive abnormal exits of one worker slot before the search gives up
_POLL = 1.0


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
    trials_per_process: int = 1,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
    client=None,
    security=None,
    heartbeat: int | None = None,
    logs: bool = True,
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
        Worker processes running trials at the same time on this machine.
    metric : {"accuracy", "log_loss"}, default="accuracy"
        The objective, measured on the early-stopping slice.
    pruner : optuna.pruners.BasePruner, optional
        Default: ``MedianPruner(n_startup_trials=4, n_warmup_steps=2)``;
        ``optuna.pruners.NopPruner()`` never prunes.
    study_name : str, optional
        Default: ``name``. Also the prefix of the library's entry names.
    trials_per_process : int, default=1
        Trials a worker process runs before it is replaced (bounds memory).
    data_dir : path, optional
        Where the zoo's datasets are (see ``zoo.datasets``).
    progress : bool, default=True
        A progress bar on stderr with the best value so far.
    client : distributed.Client or str, optional
        Run the trials on a Dask cluster (a client, or its scheduler's address
        ``tcp://host:8786`` / ``tls://host:8786``): one loop per worker, each
        trial in its own process there; see ``zoo.cluster``.
    security : distributed.Security, optional
        TLS settings for a scheduler address (default: Dask's configuration).
    heartbeat : int, optional
        With ``client``: seconds between heartbeats of a running trial (default
        20); a trial silent for three is failed and run again.
    logs : bool, default=True
        Each trial writes its CSV log and TensorBoard event files into
        ``library/runs/<entry>/`` (``tensorboard --logdir library/runs``).

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

    from zoo import cluster, datasets
    from zoo.search_spaces import resolve

    started = time.perf_counter()
    _check_int("n_trials", n_trials)
    _check_int("workers", workers)
    _check_int("trials_per_process", trials_per_process)
    _check_int("seed", seed, minimum=0)
    for option, value in (("subset", subset), ("epochs", epochs)):
        if value is not None:
            _check_int(option, value)
    if timeout is not None and not (isinstance(timeout, numbers.Real) and not isinstance(timeout, bool) and timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if not isinstance(logs, bool):
        raise ValueError(f"logs must be True or False, got {logs!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    study_name = name if study_name is None else study_name
    if not isinstance(study_name, str) or not _STUDY_NAME.match(study_name):
        raise ValueError(f"study name {study_name!r}: use letters, digits, '_', '.' and '-' (it prefixes file names)")

    builder, base, dataset = _starting_point(name, user_data=X is not None or data is not None)
    arrays, data_info = _user_data(builder, X, y, data, base)
    if subset is not None:
        es = max(subset // 4, 32)
        base["early_stopping_size"] = es
        examples, where = (data_info["examples"], "the data") if data_info is not None else (_train_examples(dataset), f"{dataset}'s train split")
        if examples <= es:
            raise ValueError(f"subset={subset}: {where} has {examples} examples, too few for an early-stopping slice of {es}")
        if data_info is not None:
            data_info["examples"] = min(examples, subset + es)
    if base.get("early_stopping_size") is None:
        raise ValueError("a search scores trials on the early-stopping slice: the starting point needs early_stopping_size")
    resolved = resolve(builder, space, dataset=dataset, input_shape=_input_shape(builder, dataset, arrays),
                       fixed={k.removeprefix("builder__"): v for k, v in base.items() if k.startswith("builder__")})
    if epochs is not None:
        resolved["epochs"] = epochs
    if pruner is None:
        pruner = optuna.pruners.MedianPruner(**DEFAULT_PRUNER)
    elif not isinstance(pruner, optuna.pruners.BasePruner):
        raise ValueError(f"pruner must be an optuna pruner, got {type(pruner).__name__}")

    if client is None:
        if security is not None or heartbeat is not None:
            raise ValueError("security= and heartbeat= go with client= (a search on a Dask cluster)")
    else:
        if workers != 1 or trials_per_process != 1:
            raise ValueError("workers= and trials_per_process= are for one machine: on a Dask cluster each worker runs one trial at a time, each in its own process")
        heartbeat = cluster.DEFAULT_HEARTBEAT if heartbeat is None else heartbeat
        _check_int("heartbeat", heartbeat)

        storage = None if storage is None else cluster.absolute_url(storage)

    library = Path(library).expanduser().absolute()
    if library.exists() and not library.is_dir():
        raise ValueError(f"library {library} exists and is not a folder")
    # every argument is checked above, before anything is written: no library folder, storage or study yet
    with contextlib.ExitStack() as stack:
        storage_spec = ("url", storage) if storage is not None else None
        if storage_spec is not None:  # a bad URL fails here, before the library is touched
            opened = _open_storage(storage_spec) if client is None else cluster.open_storage(storage, heartbeat)
        if client is not None:
            client = stack.enter_context(cluster.connect(client, security))
        from zoo.library import open_library

        registry = open_library(library)
        if storage_spec is None and client is None:
            storage_spec = ("journal", str(library / STORAGE_FILE))
            opened = _open_storage(storage_spec)
        elif storage_spec is None:
            storage_spec = ("url", f"sqlite:///{library / cluster.STORAGE_FILE}")
            opened = cluster.open_storage(storage_spec[1], heartbeat)

        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line
        try:
            study = optuna.create_study(study_name=study_name, storage=opened, direction=METRICS[metric], load_if_exists=True)
        finally:
            optuna.logging.set_verbosity(verbosity)
        _check_study(study, {"builder": builder, "dataset": dataset, "data_sha256": data_info and data_info["sha256"], "subset": subset, "metric": metric})
        _keep_recorded_choices(study, resolved, space)
        if client is None:
            _reap(study, registry)
        else:
            cluster.prepare(study, registry, client, storage_spec[1])

        config = {
            "study": study_name,
            "storage": storage_spec,
            "library": str(library),
            "builder": builder,
            "base": base,
            "space": resolved,
            "metric": metric,
            "n_trials": n_trials,
            "deadline": None if timeout is None else time.time() + timeout,
            "seed": seed,
            "workers": workers,
            "trials_per_process": trials_per_process,
            "dataset": dataset,
            "data_dir": str(datasets.resolve_data_dir(data_dir).absolute()),  # workers get absolute paths
            "cache_dir": str(datasets.cache_dir().absolute()),
            "data_path": None if data is None or client is not None else str(Path(data).expanduser().absolute()),
            "arrays": arrays if data is None or client is not None else None,  # a cluster's workers get the arrays, not the file
            "data_info": data_info,
            "subset": subset,
            "pruner": pruner,
            "heartbeat": heartbeat,
            "logs": logs,
        }
        if client is None:
            _coordinate(study, registry, config, progress)
        else:
            cluster.run(study, registry, config, client, progress)
        return _summary(study, config, registry, storage, time.perf_counter() - started)


# --------------------------------------------------------------------------- set-up


def _check_int(option: str, value, minimum: int = 1) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{option} must be a whole number >= {minimum}, got {value!r}")


def _starting_point(name: str, user_data: bool) -> tuple[str, dict, str | None]:
    """``(builder, ZooClassifier parameters, dataset)`` of a zoo entry or a builder name."""
    from zoo.estimator import ZooClassifier
    from zoo.recipes import RECIPES
    from zoo.registry import BUILDER_KINDS, Registry

    if name in BUILDER_KINDS:
        if not user_data:
            raise ValueError(f"{name!r} is a builder: give it your data (X and y, or a .npz file); or search from a zoo entry such as {next(iter(RECIPES))!r}")
        clf = ZooClassifier(name)
        dataset = None
    else:
        registry = Registry()
        if name not in registry and name not in RECIPES:
            raise ValueError(f"unknown zoo entry or builder {name!r}; builders: {', '.join(BUILDER_KINDS)}; entries include {', '.join(list(RECIPES)[:4])}")
        clf = ZooClassifier.from_zoo(name)
        dataset = None if user_data else (registry.entry(name) if name in registry else RECIPES[name])["dataset"]
    params = clf.get_params(deep=False)
    params.update(verbose=0, log_dir=None)
    return clf.builder, params, dataset


def _input_shape(builder: str, dataset: str | None, arrays) -> tuple | None:
    """The shape of one example the search trains on (None for text), known before any study exists."""
    from zoo.registry import BUILDER_KINDS

    if BUILDER_KINDS[builder] == "text":
        return None
    if arrays is not None:
        return tuple(arrays[0].shape[1:])
    return (28, 28, 1)  # the zoo's image datasets, MNIST and Fashion-MNIST


def _sampler_seed(study: str, seed: int, number: int) -> int:
    """The TPE seed of trial ``number`` of ``study``: ``seed`` + the study name's offset + ``number``, modulo 2**32.

    The offset is the first four bytes of the sha256 of the study name (not
    Python's ``hash``, which changes from process to process), so it is the
    same in every worker, machine and run, and two studies sharing a library
    and a seed start from different random trials.
    """
    offset = int.from_bytes(hashlib.sha256(study.encode("utf-8")).digest()[:4], "big")
    return (seed + offset + number) % 2**32


def _sampler(study: str, seed: int, number: int):
    """The TPE sampler that draws trial ``number`` of ``study`` (seeded by :func:`_sampler_seed`); every executor uses it."""
    import optuna

    return optuna.samplers.TPESampler(seed=_sampler_seed(study, seed, number))


def _train_examples(dataset: str) -> int:
    """The number of examples in a zoo dataset's ``train`` split, known without reading it (see ``zoo.datasets``)."""
    from zoo import datasets

    official = {"mnist": 60_000, "fashion_mnist": 60_000, "imdb": 25_000}[dataset]  # official training examples
    return official - (datasets.IMDB_VALIDATION_SIZE if dataset == "imdb" else datasets.IMAGE_VALIDATION_SIZE)


def _user_data(builder: str, X, y, data, base: dict):
    """``((X, y) or None, data record or None)``, checked for the builder before any work."""
    if data is not None and X is not None:
        raise ValueError("give either X and y or a data file, not both")
    if X is None and data is None:
        if y is not None:
            raise ValueError("y given without X")
        return None, None
    source = "arrays"
    if data is not None:
        X, y = _read_npz(data)
        source = str(Path(data).expanduser().absolute())
    elif y is None:
        raise ValueError("X given without y")
    from zoo.estimator import ZooClassifier

    X, y, _ = ZooClassifier(builder, **{k: v for k, v in base.items() if k != "builder"})._validate_fit(X, y)
    return (X, y), {"source": source, "examples": len(y), "sha256": _digest(X, y)}


def _read_npz(path) -> tuple:
    from zoo._cli import UsageError, load_npz

    try:
        return load_npz(str(path))
    except UsageError as exc:
        raise ValueError(str(exc)) from None


def _digest(X: np.ndarray, y: np.ndarray) -> str:
    """sha256 of the data's shapes, types and values (strings by their UTF-8 bytes)."""
    digest = hashlib.sha256()
    for a in (np.asarray(X), np.asarray(y)):
        digest.update(f"{a.dtype.kind}{a.dtype.itemsize}:{a.shape};".encode())
        if a.dtype == object or a.dtype.kind in "US":
            for v in a.ravel():
                text = v if isinstance(v, bytes) else str(v).encode("utf-8")
                digest.update(len(text).to_bytes(8, "little") + text)
        else:
            digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


def _open_storage(spec: tuple[str, str]):
    """An Optuna storage for ``("journal", path)`` or ``("url", url)``; ``ValueError`` if it cannot be opened."""
    import optuna

    kind, where = spec
    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(where))
    if not isinstance(where, str) or "://" not in where:
        raise ValueError(f"storage {where!r}: expected an Optuna storage URL such as sqlite:///study.db or postgresql://user@host/db")
    try:
        if where.startswith(("redis://", "rediss://", "unix://")):
            from optuna.storages.journal import JournalRedisBackend, JournalStorage

            return JournalStorage(JournalRedisBackend(where))
        return optuna.storages.RDBStorage(where)
    except Exception as exc:  # noqa: BLE001 (any driver's error: unknown dialect, missing module, unreachable server, unwritable file)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"storage {_redact(where)}: cannot open it: {message}") from None


def _redact(url: str) -> str:
    """``url`` without a password."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def _check_study(study, expected: dict) -> None:
    """Record what the study searches; refuse to resume it with another builder, data or metric."""
    recorded = study.user_attrs.get("zoo")
    if recorded is None:
        study.set_user_attr("zoo", expected)
        return
    different = [k for k in expected if recorded.get(k) != expected[k]]
    if different:
        what = ", ".join(f"{k} {recorded.get(k)!r} (now {expected[k]!r})" for k in different)
        raise ValueError(f"study {study.study_name!r} was created with {what}: choose another study name (study_name= / --study) or library")


def _keep_recorded_choices(study, resolved: dict, user) -> None:
    """Resume a study with the default ``augment`` choices its trials were drawn from.

    The default choices changed (flips only where the data allows them); Optuna
    refuses a categorical whose choices differ from the study's earlier trials
    ("dynamic value space"), so a study created before keeps its own, unless
    the user's space sets ``augment``.
    """
    from optuna.distributions import CategoricalDistribution

    if "augment" not in resolved or (isinstance(user, dict) and "augment" in user):
        return
    for trial in study.get_trials(deepcopy=False):
        recorded = trial.distributions.get("augment")
        if isinstance(recorded, CategoricalDistribution):
            resolved["augment"] = {"choices": list(recorded.choices)}
            return


# --------------------------------------------------------------------------- trial bookkeeping


def _counts(trial, retried=frozenset()) -> bool:
    """Whether a trial counts towards the study's total (``retried``: numbers of failed trials run again)."""
    from optuna.trial import TrialState

    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
        return True
    attrs = trial.user_attrs
    return trial.state == TrialState.FAIL and not attrs.get("retried") and not attrs.get("surplus") and trial.number not in retried


def _counted(study) -> list:
    trials = study.get_trials(deepcopy=False)
    # a failed trial that Optuna's RetryFailedTrialCallback queued again (a search on a cluster) is in its retry's history
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
    return [t for t in trials if _counts(t, retried)]


def _process_start(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, from /proc), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[19]


def _is_running(pid: int, start: str | None) -> bool:
    """Whether process ``pid`` (started at ``start``) still runs on this machine; zombies do not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return False
    return start is None or fields[19] == start  # a new process with a recycled pid is not ours


def _reap(study, registry) -> list[int]:
    """Fail this host's running trials whose process is gone and enqueue them again; their numbers."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    from zoo.library import find_trial
    from zoo.registry import Registry

    host = socket.gethostname()
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("host") != host or not isinstance(attrs.get("pid"), int) or _is_running(attrs["pid"], attrs.get("pid_start")):
            continue
        entry = find_trial(Registry(registry.path), study.study_name, trial.number)  # re-read: other processes write it
        storage = study._storage
        try:  # when two processes reap the same trial, the second one's update raises
            if entry is not None:
                storage.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, [entry["search"]["objective"]["value"]])
            else:
                storage.set_trial_user_attr(trial._trial_id, "retried", True)
                storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue
        if entry is None:
            study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
        reaped.append(trial.number)
    return reaped


# --------------------------------------------------------------------------- coordinator


def _coordinate(study, registry, config: dict, progress: bool) -> None:
    """Keep ``workers`` worker processes busy until the study has its trials, or time is up."""
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")  # never fork: TensorFlow hangs in a forked child
    queue = context.Queue()
    slots: list = [None] * config["workers"]
    deaths = [0] * config["workers"]
    error = None
    bar = _ProgressBar(study, config["n_trials"], progress)

    def done() -> bool:
        timed_out = config["deadline"] is not None and time.time() >= config["deadline"]
        return timed_out or len(_counted(study)) >= config["n_trials"]

    try:
        while True:
            for i, process in enumerate(slots):
                if process is not None and process.exitcode is None:
                    continue
                if process is not None:
                    process.join()
                    slots[i] = None
                    if process.exitcode != 0:
                        _reap(study, registry)
                        deaths[i] += 1
                    else:
                        deaths[i] = 0
                error = error or _drain(queue)
                if error is not None or done():
                    continue
                if deaths[i] >= _MAX_DEATHS:
                    error = RuntimeError(f"search worker {i} died {deaths[i]} times in a row (last exit code {process.exitcode}); see its trials' user attributes")
                    continue
                slots[i] = context.Process(target=_worker, args=(config, i, queue), name=f"zoo-search-{i}", daemon=False)
                slots[i].start()
            bar.update()
            running = [p for p in slots if p is not None]
            if not running:
                break
            wait([p.sentinel for p in running], timeout=_POLL)
        error = error or _drain(queue)
    except BaseException:
        _stop(slots)
        _reap(study, registry)  # the interrupted trials run again next time
        raise
    finally:
        bar.close()
        queue.close()
    if error is not None:
        raise error


def _stop(slots: list) -> None:
    """Ask running workers to stop (SIGTERM), then kill those that do not."""
    for process in slots:
        if process is not None and process.exitcode is None:
            process.terminate()
    for process in slots:
        if process is not None:
            process.join(10)
            if process.exitcode is None:
                process.kill()
                process.join()


def _drain(queue):
    """The first error a worker reported, if any."""
    import queue as _queue

    error = None
    while True:
        try:
            exc = queue.get_nowait()
        except _queue.Empty:
            return error
        error = error or exc


class _ProgressBar:
    """tqdm on stderr: finished trials of the study out of its total, and the best value."""

    def __init__(self, study, total: int, enabled: bool):
        from tqdm.auto import tqdm

        self.study = study
        self.bar = tqdm(total=total, initial=_finished(study), desc=study.study_name, unit="trial", disable=not enabled, leave=True, dynamic_ncols=True)

    def update(self) -> None:
        if self.bar.disable:
            return
        n = _finished(self.study)
        if n != self.bar.n:
            self.bar.update(n - self.bar.n)
            best = _best(self.study)
            if best is not None:
                self.bar.set_postfix_str(f"best {best.value:.4f} (trial {best.number})", refresh=False)
            self.bar.refresh()

    def close(self) -> None:
        self.update()
        self.bar.close()


def _finished(study) -> int:
    from optuna.trial import TrialState

    return sum(1 for t in _counted(study) if t.state != TrialState.RUNNING)


def _best(study):
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    if not complete:
        return None
    sign = -1 if study.direction == StudyDirection.MAXIMIZE else 1
    return min(complete, key=lambda t: (sign * t.value, t.number))


def _summary(study, config: dict, registry, storage: str | None, seconds: float) -> dict:
    from optuna.trial import TrialState

    from zoo.library import entry_name

    counted = _counted(study)
    count = {s: sum(1 for t in counted if t.state == state) for s, state in
             (("complete", TrialState.COMPLETE), ("pruned", TrialState.PRUNED), ("failed", TrialState.FAIL), ("running", TrialState.RUNNING))}
    best = _best(study)
    return {
        "study": study.study_name,
        "library": config["library"],
        "storage": _redact(storage) if storage is not None else config["storage"][1],
        "metric": config["metric"],
        "direction": METRICS[config["metric"]],
        "n_trials": config["n_trials"],
        "trials": count,
        "best": None if best is None else {
            "trial": best.number,
            "value": best.value,
            "params": best.user_attrs.get("hyperparameters", best.params),
            "entry": entry_name(study.study_name, best.number),
        },
        "timed_out": config["deadline"] is not None and time.time() >= config["deadline"] and len(counted) < config["n_trials"],
        "wall_seconds": round(seconds, 1),
        "logs": str(Path(config["library"]) / RUNS_FOLDER) if config.get("logs") else None,
    }


# --------------------------------------------------------------------------- watching


def history(library: str | os.PathLike, *, storage: str | None = None, study: str | None = None) -> dict:
    """The trials of a library's studies, read from their storage (nothing is written).

    Parameters
    ----------
    library : path
        A model library folder written by :func:`search`.
    storage : str, optional
        The Optuna storage URL the search used (``--storage``); default: the
        library's journal ``search.journal``, else its ``search.db`` (a search
        on a Dask cluster).
    study : str, optional
        Only this study (default: every study in the storage).

    Returns
    -------
    dict
        ``library``, ``storage`` and ``studies``: one ``{"study", "direction",
        "metric", "trials"}`` per study, ``trials`` a list of ``{"number",
        "state", "value", "params", "duration_seconds", "entry", "note"}`` in
        trial order; ``entry`` is the library entry the trial wrote (None for
        pruned, failed and running trials), ``note`` a failed trial's error,
        or ``retried`` / ``surplus`` for the failed trials a search does not
        count.

    Raises
    ------
    ValueError
        No library or storage there, or no such study.
    """
    import optuna

    from zoo.library import find_trial
    from zoo.registry import Registry

    folder, spec = _library_storage(library, storage)
    opened = _open_storage(spec)
    names = sorted(optuna.get_all_study_names(opened))
    if study is not None and study not in names:
        raise ValueError(f"no study {study!r} in {_redact(spec[1])}; studies: {', '.join(names) or 'none'}")
    registry = Registry(folder) if (folder / "registry.yaml").is_file() else None
    studies = []
    for name in names if study is None else [study]:
        loaded = _read_study(name, opened)
        trials = []
        for t in loaded.get_trials(deepcopy=False):
            attrs = t.user_attrs
            entry = find_trial(registry, name, t.number) if registry is not None and t.state == optuna.trial.TrialState.COMPLETE else None
            note = next((k for k in ("retried", "surplus") if attrs.get(k)), None) or attrs.get("error")
            trials.append(
                {
                    "number": t.number,
                    "state": t.state.name.lower(),
                    "value": t.value,
                    "params": attrs.get("hyperparameters", t.params),
                    "duration_seconds": None if t.duration is None else round(t.duration.total_seconds(), 1),
                    "entry": None if entry is None else entry["name"],
                    "note": note,
                }
            )
        studies.append({"study": name, "direction": loaded.direction.name.lower(),
                        "metric": loaded.user_attrs.get("zoo", {}).get("metric"), "trials": trials})
    return {"library": str(folder), "storage": _redact(spec[1]), "studies": studies}


def plot_history(library: str | os.PathLike, path: str | os.PathLike, *, storage: str | None = None, study: str | None = None) -> dict:
    """Draw a study's optimisation history and parameter importances into one PNG file.

    Optuna's matplotlib visualisations (``plot_optimization_history``,
    ``plot_param_importances``), stacked, written atomically. Importances need
    two complete trials: with fewer, only the history is drawn.

    Parameters
    ----------
    library : path
        A model library folder written by :func:`search`.
    path : path
        The PNG file to write.
    storage, study : str, optional
        As in :func:`history`; ``study`` is needed when the storage holds
        several studies.

    Returns
    -------
    dict
        ``path``, ``study``, ``complete`` (complete trials) and ``plots``: the
        plots drawn (``"history"``, and ``"importances"`` with two complete
        trials or more).

    Raises
    ------
    ImportError
        matplotlib is not installed.
    ValueError
        No library, storage or study (or several studies and no ``study``).
    """
    import warnings

    import optuna

    from kze.files import atomic_path, check_file_name

    check_file_name(path)
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plotting needs matplotlib (pip install matplotlib)") from None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.image import imsave
    from optuna.visualization import matplotlib as vis

    folder, spec = _library_storage(library, storage)
    opened = _open_storage(spec)
    names = sorted(optuna.get_all_study_names(opened))
    if study is None and len(names) != 1:
        raise ValueError(f"{_redact(spec[1])} holds {len(names)} studies ({', '.join(names) or 'none'}): name one to plot")
    if study is not None and study not in names:
        raise ValueError(f"no study {study!r} in {_redact(spec[1])}; studies: {', '.join(names) or 'none'}")
    loaded = _read_study(study or names[0], opened)
    complete = len(loaded.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    if complete == 0:
        raise ValueError(f"study {loaded.study_name!r} has no complete trial to plot")
    plots = ["history"] + (["importances"] if complete >= 2 else [])
    images = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the matplotlib visualisations are "experimental"
        for kind in plots:
            axes = vis.plot_optimization_history(loaded) if kind == "history" else vis.plot_param_importances(loaded)
            figure = axes.figure
            figure.set_size_inches(8, 4.5)
            figure.tight_layout()
            canvas = FigureCanvasAgg(figure)  # drawn off-screen whatever matplotlib's backend
            canvas.draw()
            images.append(np.asarray(canvas.buffer_rgba()).copy())
            plt.close(figure)
    width = max(image.shape[1] for image in images)
    white = [np.pad(image, ((0, 0), (0, width - image.shape[1]), (0, 0)), constant_values=255) for image in images]
    with atomic_path(path, suffix=".png") as tmp:
        imsave(tmp, np.concatenate(white, axis=0), format="png")
    return {"path": str(path), "study": loaded.study_name, "complete": complete, "plots": plots}


def _library_storage(library, storage: str | None) -> tuple[Path, tuple[str, str]]:
    """``(library folder, storage spec)`` of an existing library; a ``ValueError`` where there is none (nothing is created)."""
    from zoo import cluster

    folder = Path(library).expanduser().absolute()
    if not folder.is_dir():
        raise ValueError(f"library {library}: no such folder")
    if storage is not None:
        return folder, ("url", storage)
    if (folder / STORAGE_FILE).is_file():
        return folder, ("journal", str(folder / STORAGE_FILE))
    if (folder / cluster.STORAGE_FILE).is_file():
        return folder, ("url", f"sqlite:///{folder / cluster.STORAGE_FILE}")
    raise ValueError(f"library {library}: no {STORAGE_FILE} or {cluster.STORAGE_FILE} there; give the storage URL the search used")


def _read_study(name: str, storage):
    """``optuna.load_study`` for reading: a plain random sampler (no TPE set-up; nothing is drawn)."""
    import optuna

    return optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))


# --------------------------------------------------------------------------- worker process


def _worker(config: dict, index: int, queue) -> None:
    """A spawned worker: run up to ``trials_per_process`` trials of the study, then exit."""
    import optuna

    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        os.environ["ZOO_CACHE_DIR"] = config["cache_dir"]
        _start_tensorflow(config["workers"])
        storage = _open_storage(config["storage"])
        study = optuna.load_study(study_name=config["study"], storage=storage, pruner=config["pruner"])
        X, y = _load_data(config)
        for _ in range(config["trials_per_process"]):
            if config["deadline"] is not None and time.time() >= config["deadline"]:
                return
            if len(_counted(study)) >= config["n_trials"]:
                return
            trial = study.ask()
            for key, value in {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": _process_start(os.getpid()), "worker": index}.items():
                trial.set_user_attr(key, value)  # who runs it: _reap fails it if this process dies
            # TPE draws the trial's values when the objective asks for them, with the sampler the study
            # has then: seeded with seed + the study name's offset + the trial's number, unique in the
            # study, so no two workers (of this run, a recycled process or another command on the same
            # study) repeat a draw, and no other study sharing the library does either
            study.sampler = _sampler(config["study"], config["seed"], trial.number)
            if _surplus(study, trial.number, config["n_trials"]):
                trial.set_user_attr("surplus", True)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                return
            try:
                value = _run_trial(trial, config, X, y)
            except optuna.TrialPruned:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            except Exception as exc:  # noqa: BLE001 (recorded in the trial, then raised by the coordinator)
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:2000])
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                queue.put(_portable(exc, f"trial {trial.number} of study {config['study']!r} failed"))
                return
            else:
                study.tell(trial, value)
            finally:
                import gc

                import keras

                keras.backend.clear_session()
                gc.collect()
    except KeyboardInterrupt:  # the trial stays RUNNING; the coordinator reaps it
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 (sent to the coordinator, which raises it)
        queue.put(_portable(exc, f"search worker {index} failed"))
        raise SystemExit(1) from None


def _start_tensorflow(workers: int) -> None:
    """Import TensorFlow quietly, sharing the machine's cores among the workers."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if workers > 1:  # read by TensorFlow when it starts
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", threads)
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", threads)
    from zoo._cli import quiet_tensorflow_start

    quiet_tensorflow_start()
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notices of one trial after another


def _surplus(study, number: int, n_trials: int) -> bool:
    """Whether trial ``number`` lies beyond the study's total (counted trials in creation order)."""
    numbers_ = sorted({t.number for t in _counted(study)} | {number})
    return numbers_.index(number) >= n_trials


def _portable(exc: BaseException, context: str) -> BaseException:
    """``exc`` as an exception of the same type (if it can be rebuilt and pickled) saying ``context``."""
    import pickle

    try:
        rebuilt = type(exc)(f"{context}: {exc}")
        pickle.loads(pickle.dumps(rebuilt))
        return rebuilt
    except Exception:  # noqa: BLE001 (an exception type that cannot be rebuilt or pickled)
        return RuntimeError(f"{context}: {type(exc).__name__}: {exc}")


def _load_data(config: dict) -> tuple[np.ndarray, np.ndarray]:
    """The search's data: the user's arrays or file (checked against the study's sha256), or the zoo dataset's train split; cut to the subset."""
    if config["arrays"] is not None:
        X, y = config["arrays"]
    elif config["data_path"] is not None:  # each worker reads the file again: it must hold the data the study records
        (X, y), read = _user_data(config["builder"], None, None, config["data_path"], config["base"])
        if read["sha256"] != config["data_info"]["sha256"]:
            raise ValueError(f"data file {config['data_path']} changed since the search started (its data's sha256 is {read['sha256']}, "
                             f"the study's {config['data_info']['sha256']}); refusing to train on it")
    else:
        from zoo import datasets

        X, y = datasets.load(config["dataset"], "train", config["data_dir"])
    if config["subset"] is not None:
        n = config["subset"] + config["base"]["early_stopping_size"]
        X, y = X[:n], y[:n]
    return X, y


def _run_trial(trial, config: dict, X, y) -> float:
    """Train the trial's model, write it into the library, return the objective."""
    from zoo.library import add_trial, open_library

    clf, record = _fit_trial(trial, config, X, y)
    add_trial(open_library(config["library"]), clf, **record)
    return record["objective"]["value"]


def _fit_trial(trial, config: dict, X, y) -> tuple:
    """Train the trial's model: ``(clf, record)``, ``record`` the keyword arguments of ``zoo.library.prepare_trial``."""
    from zoo.estimator import ZooClassifier
    from zoo.library import entry_name
    from zoo.search_spaces import TRAINING_PARAMS, suggest

    values = suggest(trial, config["space"])
    trial.set_user_attr("hyperparameters", values)
    params = {k if k in TRAINING_PARAMS else "builder__" + k: v for k, v in values.items()}
    clf = ZooClassifier(**config["base"]).set_params(**params)
    logs = _log_callbacks(config, trial.number) if config.get("logs") else []
    started = time.perf_counter()
    try:  # the logs first: a pruned trial's last epoch is logged before the pruning callback raises
        clf.fit(X, y, callbacks=[*logs, _pruning_callback(trial, _REPORTED[config["metric"]])])
    except BaseException:
        for callback in logs:  # close the CSV file and the TensorBoard writers that fit left open
            with contextlib.suppress(Exception):
                callback.on_train_end()
        raise
    seconds = time.perf_counter() - started
    value = round(float(clf.early_stopping_scores_[config["metric"]]), 6)
    record = {
        "study": config["study"],
        "trial": trial.number,
        "objective": {"name": f"early_stopping_{config['metric']}", "value": value, "direction": METRICS[config["metric"]]},
        "hyperparameters": values,
        "seconds": seconds,
        "examples": len(y),
        "dataset": config["dataset"],
        "data": config["data_info"],
        "subset": config["subset"],
        "logs": f"{RUNS_FOLDER}/{entry_name(config['study'], trial.number)}" if logs else None,
    }
    return clf, record


def _log_callbacks(config: dict, number: int) -> list:
    """The CSVLogger and TensorBoard callbacks of trial ``number``, writing into ``LIB/runs/<entry>/`` (emptied first)."""
    import shutil

    import keras

    from zoo.library import entry_name

    folder = Path(config["library"]) / RUNS_FOLDER / entry_name(config["study"], number)
    if folder.exists():  # a stale folder: the study was started again after its storage was deleted
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    # the files and settings every entry's recipe lists (csv_logger, tensorboard), as ZooClassifier(log_dir=...) writes them
    return [keras.callbacks.CSVLogger(str(folder / "training.csv")), keras.callbacks.TensorBoard(str(folder / "tensorboard"), histogram_freq=1)]


def _pruning_callback(trial, key: str):
    """A Keras callback reporting the slice metric ``key`` to ``trial`` every epoch, raising ``TrialPruned``."""
    import keras
    import optuna

    class _Pruning(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(key)
            if value is None or not math.isfinite(value):
                return
            trial.report(float(value), step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch + 1} ({key} {value:.4f})")

    return _Pruning()
