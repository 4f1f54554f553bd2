"""A search's settings: one frozen, validated :class:`SearchConfig`, built before anything is written.

Decisions:

- :func:`make_config` checks every argument of ``zoo.search`` (numbers, the
  metric, the study name, the starting point, the data, the subset, the space,
  the executor's options) before a library folder, a storage or a study is
  created, so a refused argument leaves nothing behind and records nothing in
  a study that would then refuse later runs. ``subset``'s early-stopping slice
  of ``max(subset // 4, 32)`` must leave examples to fit on, in the user's
  data or the zoo dataset's ``train`` split (whose size is known without
  reading it).
- :class:`SearchConfig` holds plain values only (strings, numbers, lists,
  dicts), so it travels to worker processes and Dask workers as JSON
  (:meth:`SearchConfig.to_json`), never as a pickle. The two things that are
  not plain values travel beside it: the user's arrays (a ``.npz`` file's
  absolute path, re-read and checked against the study's data digest, or
  arrays scattered to a Dask cluster) and the Optuna pruner object.
- The data digest recorded in a study (user attribute ``zoo.data_sha256``)
  is the project's one data hash, ``kze.data.data_hash_pair(X, y)``.
  Studies recorded before it existed hold :func:`legacy_data_digest` (the
  arrays' kinds, shapes and values); resuming one checks the data against
  that digest instead, so they keep resuming on the same data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import re
from pathlib import Path

import numpy as np

from kze.data import data_hash_pair

__all__ = ["DEFAULT_PRUNER", "EXECUTORS", "METRICS", "RUNS_FOLDER", "SearchConfig", "check_int", "legacy_data_digest", "make_config",
           "read_npz", "starting_point", "train_examples", "user_data"]

METRICS = {"accuracy": "maximize", "log_loss": "minimize"}
REPORTED = {"accuracy": "val_accuracy", "log_loss": "val_loss"}  # the Keras log of the slice metric
RUNS_FOLDER = "runs"  # LIB/runs/<entry>/: each trial's CSV and TensorBoard logs
DEFAULT_PRUNER = {"n_startup_trials": 4, "n_warmup_steps": 2}  # MedianPruner's settings
EXECUTORS = ("worker", "inprocess", "processes", "dask")
DEFAULT_HEARTBEAT = 20  # seconds between heartbeats of a running trial on a Dask cluster
WORKER_TRIALS = 10  # trials the default executor's worker process runs before it is replaced (see zoo.search.executors)
_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """The settings every trial of one search run reads; plain values only (JSON).

    Attributes
    ----------
    study, storage, library : str
        The study name, the storage (a journal file's absolute path or an
        Optuna URL) and the library folder (absolute).
    builder : str
        The architecture searched.
    base : dict
        ``ZooClassifier`` parameters of the starting point.
    space : dict
        The resolved search space (``zoo.search_spaces.resolve``).
    metric : str
        ``"accuracy"`` or ``"log_loss"``.
    n_trials, seed : int
        The study's total and the sampler's seed.
    deadline : float or None
        ``time.time()`` after which no trial starts.
    executor : str
        ``"worker"``, ``"inprocess"``, ``"processes"`` or ``"dask"``.
    workers, trials_per_process : int
        Worker processes and the trials each runs (``"processes"``).
    dataset, data_path, data_info : optional
        The zoo dataset, or the user's ``.npz`` file and the data's record
        (``source``, ``examples``, ``sha256``).
    data_dir, cache_dir : str
        Absolute folders of the zoo's data and cache.
    subset, heartbeat : int or None
        Smoke-run size; Dask heartbeat interval.
    logs : bool
        Each trial writes CSV and TensorBoard logs.
    """

    study: str
    storage: str
    library: str
    builder: str
    base: dict
    space: dict
    metric: str = "accuracy"
    n_trials: int = 1
    seed: int = 0
    deadline: float | None = None
    executor: str = "worker"
    workers: int = 1
    trials_per_process: int = 1
    dataset: str | None = None
    data_dir: str = ""
    cache_dir: str = ""
    data_path: str | None = None
    data_info: dict | None = None
    subset: int | None = None
    heartbeat: int | None = None
    logs: bool = True

    def __post_init__(self):
        for option in ("n_trials", "workers", "trials_per_process"):
            check_int(option, getattr(self, option))
        check_int("seed", self.seed, minimum=0)
        for option in ("subset", "heartbeat"):
            if getattr(self, option) is not None:
                check_int(option, getattr(self, option))
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if not isinstance(self.study, str) or not _STUDY_NAME.match(self.study):
            raise ValueError(f"study name {self.study!r}: use letters, digits, '_', '.' and '-' (it prefixes file names)")
        if not isinstance(self.logs, bool):
            raise ValueError(f"logs must be True or False, got {self.logs!r}")
        if self.base.get("early_stopping_size") is None:
            raise ValueError("a search scores trials on the early-stopping slice: the starting point needs early_stopping_size")

    @property
    def direction(self) -> str:
        return METRICS[self.metric]

    def to_json(self) -> str:
        """The settings as JSON text (what worker processes and Dask workers receive)."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SearchConfig:
        """The settings :meth:`to_json` wrote."""
        return cls(**json.loads(text))

    def replace(self, **changes) -> SearchConfig:
        """A copy with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)


def make_config(
    name: str,
    *,
    library,
    n_trials,
    X=None,
    y=None,
    data=None,
    storage: str | None = None,
    seed=0,
    timeout=None,
    subset=None,
    epochs=None,
    space=None,
    workers=1,
    metric="accuracy",
    pruner=None,
    study_name=None,
    trials_per_process=None,
    data_dir=None,
    client=None,
    security=None,
    heartbeat=None,
    logs=True,
    executor=None,
) -> tuple[SearchConfig, tuple | None, object]:
    """Check ``zoo.search``'s arguments; ``(config, arrays or None, pruner)``. Nothing is written.

    ``config.storage`` is ``""`` where the library's default storage applies
    (decided when the library is opened), and ``config.deadline`` counts from now.
    """
    import time

    import optuna

    from zoo import datasets
    from zoo.search_spaces import resolve

    for option, value in (("n_trials", n_trials), ("workers", workers)):
        check_int(option, value)
    check_int("seed", seed, minimum=0)
    for option, value in (("subset", subset), ("epochs", epochs), ("trials_per_process", trials_per_process), ("heartbeat", heartbeat)):
        if value is not None:
            check_int(option, value)
    if timeout is not None and not (isinstance(timeout, numbers.Real) and not isinstance(timeout, bool) and timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if not isinstance(logs, bool):
        raise ValueError(f"logs must be True or False, got {logs!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if executor is not None and executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if executor is None:  # a cluster; spawned worker processes when asked for; else one recycled worker process
        executor = "dask" if client is not None else "processes" if workers > 1 or trials_per_process is not None else "worker"
    if (executor == "dask") != (client is not None):
        raise ValueError("executor='dask' goes with client= (a Dask client or scheduler address)" if client is None
                         else f"client= runs the trials on a Dask cluster, not with executor={executor!r}")
    if executor in ("inprocess", "worker") and workers != 1:
        raise ValueError(f"workers= needs executor='processes' (executor={executor!r} runs one trial at a time)")
    if executor == "inprocess" and trials_per_process is not None:
        raise ValueError("trials_per_process= goes with a worker process (executor='worker' or 'processes'), not executor='inprocess'")
    study_name = name if study_name is None else study_name
    if not isinstance(study_name, str) or not _STUDY_NAME.match(study_name):
        raise ValueError(f"study name {study_name!r}: use letters, digits, '_', '.' and '-' (it prefixes file names)")

    builder, base, dataset = starting_point(name, user_data=X is not None or data is not None)
    arrays, data_info = user_data(builder, X, y, data, base)
    if subset is not None:
        es = max(subset // 4, 32)
        base["early_stopping_size"] = es
        examples, where = (data_info["examples"], "the data") if data_info is not None else (train_examples(dataset), f"{dataset}'s train split")
        if examples <= es:
            raise ValueError(f"subset={subset}: {where} has {examples} examples, too few for an early-stopping slice of {es}")
        if data_info is not None:
            data_info["examples"] = min(examples, subset + es)
    if base.get("early_stopping_size") is None:
        raise ValueError("a search scores trials on the early-stopping slice: the starting point needs early_stopping_size")
    resolved = resolve(builder, space, dataset=dataset, input_shape=input_shape(builder, dataset, arrays),
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
    elif workers != 1 or trials_per_process not in (None, 1):
        raise ValueError("workers= and trials_per_process= are for one machine: on a Dask cluster each worker runs one trial at a time, each in its own process")
    else:
        heartbeat = DEFAULT_HEARTBEAT if heartbeat is None else heartbeat

    folder = Path(library).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"library {folder} exists and is not a folder")
    if storage is not None and not isinstance(storage, str):
        raise ValueError(f"storage must be an Optuna storage URL, got {type(storage).__name__}")
    config = SearchConfig(
        study=study_name,
        storage=storage or "",
        library=str(folder),
        builder=builder,
        base=_plain(base),
        space=_plain(resolved),
        metric=metric,
        n_trials=n_trials,
        seed=seed,
        deadline=None if timeout is None else time.time() + timeout,
        executor=executor,
        workers=workers,
        trials_per_process=trials_per_process or (WORKER_TRIALS if executor == "worker" else 1),
        dataset=dataset,
        data_dir=str(datasets.resolve_data_dir(data_dir).absolute()),  # workers get absolute paths
        cache_dir=str(datasets.cache_dir().absolute()),
        data_path=None if data is None else str(Path(data).expanduser().absolute()),
        data_info=data_info,
        subset=subset,
        heartbeat=heartbeat,
        logs=logs,
    )
    return config, arrays, pruner


def _plain(obj):
    """``obj`` as JSON gives it back (tuples as lists), refusing what JSON cannot hold."""
    try:
        return json.loads(json.dumps(obj))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"search settings must be plain values (numbers, strings, lists, dicts): {exc}") from None


def check_int(option: str, value, minimum: int = 1) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{option} must be a whole number >= {minimum}, got {value!r}")


def starting_point(name: str, user_data: bool) -> tuple[str, dict, str | None]:
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


def input_shape(builder: str, dataset: str | None, arrays) -> tuple | None:
    """The shape of one example the search trains on (None for text), known before any study exists."""
    from zoo.registry import BUILDER_KINDS

    if BUILDER_KINDS[builder] == "text":
        return None
    if arrays is not None:
        return tuple(arrays[0].shape[1:])
    return (28, 28, 1)  # the zoo's image datasets, MNIST and Fashion-MNIST


def train_examples(dataset: str) -> int:
    """The number of examples in a zoo dataset's ``train`` split, known without reading it (see ``zoo.datasets``)."""
    from zoo import datasets

    official = {"mnist": 60_000, "fashion_mnist": 60_000, "imdb": 25_000}[dataset]  # official training examples
    return official - (datasets.IMDB_VALIDATION_SIZE if dataset == "imdb" else datasets.IMAGE_VALIDATION_SIZE)


def user_data(builder: str, X, y, data, base: dict):
    """``((X, y) or None, data record or None)``, checked for the builder before any work."""
    if data is not None and X is not None:
        raise ValueError("give either X and y or a data file, not both")
    if X is None and data is None:
        if y is not None:
            raise ValueError("y given without X")
        return None, None
    source = "arrays"
    if data is not None:
        X, y = read_npz(data)
        source = str(Path(data).expanduser().absolute())
    elif y is None:
        raise ValueError("X given without y")
    from zoo.estimator import ZooClassifier

    X, y, _ = ZooClassifier(builder, **{k: v for k, v in base.items() if k != "builder"}).check_fit_data(X, y)
    return (X, y), {"source": source, "examples": len(y), "sha256": data_hash_pair(X, y)}


def read_npz(path) -> tuple:
    from kze.data import load_npz

    return load_npz(str(path))


def legacy_data_digest(X: np.ndarray, y: np.ndarray) -> str:
    """The data digest studies recorded before ``kze.data.data_hash_pair``: sha256 of shapes, types and values."""
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

