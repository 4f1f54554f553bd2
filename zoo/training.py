"""Re-run a zoo recipe: seeded training with the classic Keras callbacks.

A recipe becomes a :class:`zoo.ZooClassifier` (``ZooClassifier.from_spec``)
fitted on the dataset's ``train`` split; it carves the early-stopping slice
itself, so the zoo has a single training path. Each run writes into its run
directory a CSV log (``training.csv``), TensorBoard event files
(``tensorboard/``, histograms every epoch), the best checkpoint
(``best.weights.h5``) and ``metrics.json``; then the weights (and
vocabulary, for text models) are written atomically into the registry's
weights folder and the registry entry is updated with the new sha256,
parameter count, metrics and versions.

Where the entry goes (decided by :func:`target_registry`, used by ``zoo train``
too):

- ``library=LIB``: a model library as ``zoo search`` writes it
  (``LIB/registry.yaml`` and ``LIB/weights/``, created by
  ``zoo.library.open_library``); ``zoo.load(name, registry=LIB)`` loads it.
- ``registry=FILE`` (or a ``Registry``): that registry, created if missing.
- ``into_package=True``: the registry shipped in the package and its
  ``zoo/weights`` folder, what ``scripts/train_zoo.py`` retrains. Nothing
  else writes there: a registry that resolves to the shipped one (through
  ``registry=`` or ``$ZOO_REGISTRY``) is refused without this flag.
- Nothing given: ``$ZOO_REGISTRY`` if set, else the library
  ``$ZOO_CACHE_DIR/trained`` (``zoo.datasets.cache_dir()``). Not a refusal:
  ``zoo train NAME`` is how the README says an entry is reproduced, and a
  smoke run (``--subset 300 --epochs 1``) should work as typed without
  overwriting the shipped model with a one-epoch one, as it did in an editable
  install, where the package's files are the source tree's. The cache is
  the folder the zoo already owns for derived files, outside the package
  and the working directory; the command prints where the entry went.

Resumable by default (``zoo.resume``): the fit backs itself up after every
epoch into ``backup_dir``, by default ``.backups/train_<name>`` in the
folder of the registry the entry goes to (``LIB/.backups/...`` for a
library, as search trials do; ``$ZOO_CACHE_DIR/backups/...`` for the shipped
registry, never the package). The default is tied to where the entry goes,
not to the run directory, whose default name has a timestamp: running the
same command again after a crash or a kill finds the backup and goes on from
the last completed epoch. A backup of another training there (other epochs,
subset or recipe) is refused with a ``ValueError`` naming the folder, to
remove by hand. ``backup_dir=False`` (``--no-backup``) trains without one.
The backup is deleted when the fit succeeds.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import time
from pathlib import Path

from kze.files import atomic_write_text
from zoo import datasets
from zoo.library import float32_model, write_model
from zoo.models import predict_proba, scores
from zoo.recipes import recipe as _recipe
from zoo.registry import Registry, shipped_path

__all__ = ["DEFAULT_LIBRARY", "target_registry", "train"]

DEFAULT_LIBRARY = "trained"  # the library under zoo.datasets.cache_dir() that takes entries by default


def target_registry(
    registry: Registry | str | os.PathLike | None = None,
    library: str | os.PathLike | None = None,
    into_package: bool = False,
) -> Registry:
    """The registry a training run writes into (see the module docstring).

    Parameters
    ----------
    registry : Registry or path, optional
        A registry, or its file (created empty if missing).
    library : path, optional
        A model library folder (``registry.yaml`` and ``weights/``), created if missing.
    into_package : bool, default=False
        Write into the registry shipped in the package (and ``zoo/weights``).

    Returns
    -------
    Registry

    Raises
    ------
    ValueError
        For more than one of the three, or a registry that is the shipped
        one without ``into_package``.
    """
    from zoo.library import open_library

    if sum(x is not None for x in (registry, library)) + bool(into_package) > 1:
        raise ValueError("give one of registry=, library= and into_package=True")
    if into_package:
        return Registry(shipped_path())
    if library is not None:
        reg = open_library(library)
    elif isinstance(registry, Registry):
        reg = registry
    elif registry is not None:
        reg = Registry(registry) if Path(registry).is_file() else Registry.create(registry)
    elif os.environ.get("ZOO_REGISTRY"):
        reg = Registry()
    else:
        reg = open_library(datasets.cache_dir() / DEFAULT_LIBRARY)
    if reg.is_shipped():
        raise ValueError(f"{reg.path} is the registry shipped in the package: train into a library (library=, --library DIR) "
                         "or pass into_package=True (--into-package) to overwrite the shipped model")
    return reg


def train(
    name: str,
    *,
    epochs: int | None = None,
    run_dir: str | os.PathLike | None = None,
    registry: Registry | str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    subset: int | None = None,
    verbose: int | str = "auto",
    library: str | os.PathLike | None = None,
    into_package: bool = False,
    backup_dir: str | os.PathLike | bool | None = None,
) -> dict:
    """Train a zoo entry from its recipe and record the result in the registry.

    Parameters
    ----------
    name : str
        Recipe / registry name (see ``zoo.recipes.RECIPES``).
    epochs : int, optional
        Override the recipe's maximum number of epochs (recorded in the entry).
    run_dir : path, optional
        Where logs and checkpoints go; defaults to ``runs/<name>-<timestamp>``.
    registry : Registry or path, optional
        Registry to update (its file is created if missing). Never the
        shipped one unless ``into_package``; see :func:`target_registry` for
        the default (``$ZOO_REGISTRY``, else the library
        ``$ZOO_CACHE_DIR/trained``).
    data_dir : path, optional
        Data directory (see ``zoo.datasets``).
    subset : int, optional
        Train on the first ``subset`` examples (plus an early-stopping slice
        of ``max(subset // 4, 32)`` more) and measure on the first ``subset``
        of each split: a smoke test, recorded as such in the entry.
    verbose : int or "auto"
        Keras progress output.
    library : path, optional
        A model library folder (``registry.yaml``, ``weights/``; created if
        missing) to write the entry into, as ``zoo search`` writes one.
    into_package : bool, default=False
        Overwrite the entry and weights shipped in the package (what
        ``scripts/train_zoo.py`` does to retrain the zoo).
    backup_dir : path or False, optional
        Where the fit backs itself up to resume after a kill (see the module
        docstring); None: ``.backups/train_<name>`` beside the target
        registry; False: no backup.

    Returns
    -------
    dict
        The new registry entry (written by ``zoo.library.write_model``, as every search trial's).
    """
    from zoo.estimator import ZooClassifier

    spec = _recipe(name)
    cfg = spec["recipe"]
    if epochs is not None:
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        cfg["epochs"] = int(epochs)
    reg = target_registry(registry, library, into_package)  # checked before any training
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / f"{name}-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)

    clf = ZooClassifier.from_spec(spec, log_dir=run_dir, verbose=verbose)
    X, y = datasets.load(spec["dataset"], "train", data_dir)
    if subset is not None:  # the first examples, with a slice of a quarter of their number carved from them
        es_size = max(subset // 4, 32)
        X, y = X[: subset + es_size], y[: subset + es_size]
        clf.set_params(early_stopping_size=es_size)
    backup = _backup_folder(reg, name) if backup_dir is None else (None if backup_dir is False else Path(backup_dir))
    start = time.perf_counter()
    clf.fit(X, y, backup_dir=backup)
    if backup_dir is None:
        with contextlib.suppress(OSError):  # the .backups folder, when no other training's backup is left in it
            backup.parent.rmdir()
    seconds = time.perf_counter() - start
    # Measure, save and ship the float32 model that zoo.load rebuilds, so the metrics are re-checkable.
    bare = float32_model(clf)
    metrics = {}
    for split in ("validation", "test"):
        Xs, ys = datasets.load(spec["dataset"], split, data_dir)
        if subset is not None:
            Xs, ys = Xs[:subset], ys[:subset]
        metrics[split] = {k: round(v, 6) for k, v in scores(ys, predict_proba(bare, Xs)).items()}
    command = f"zoo train {name}" + (f" --epochs {epochs}" if epochs is not None else "")
    entry = write_model(clf, reg.weights_dir, name, dataset=spec["dataset"], seconds=seconds, examples=len(y),
                        metrics=metrics, subset=subset, command=command, model=bare)
    entry["recipe"] = cfg
    reg.put(entry)
    atomic_write_text(run_dir / "metrics.json", json.dumps({"name": name, "metrics": metrics, "training": entry["training"]}, indent=2))
    return entry


def _backup_folder(reg: Registry, name: str) -> Path:
    """The default backup folder of ``zoo train NAME`` into ``reg``: beside its registry file, or in the cache for the shipped one."""
    parent = datasets.cache_dir() / "backups" if reg.is_shipped() else reg.path.parent / ".backups"
    return parent / f"train_{name}"
