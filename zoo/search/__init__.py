"""Hyperparameter search over the zoo's architectures: Optuna studies whose trials join a model library.

``zoo.search(name, library=LIB, n_trials=N)`` (``zoo search NAME --library LIB
--trials N``) runs an Optuna study whose trials each train a
:class:`zoo.ZooClassifier` and write it into the model library ``LIB``
(``zoo.library``). The package, bottom up (no module imports one above it):

- ``config``: :class:`SearchConfig`, the frozen settings checked before
  anything is written, sent to workers as JSON; the data digest.
- ``storage``: the one storage factory (journal file, SQLite, PostgreSQL,
  any Optuna URL) and reading studies back.
- ``trials``: sampler seeds, trial counting, reaping dead trials, the
  progress bar and the one trial loop every executor runs.
- ``objective``: one trial, one ``ZooClassifier`` fit, one library entry.
- ``executors``: one recycled worker process (default), in-process, spawned
  processes; ``cluster``: Dask.
- ``history``: :func:`history` and :func:`plot_history`.
- ``api``: :func:`search`.

``zoo.search`` is both this package and the function: the package's module
object is callable (``zoo.search(...)`` calls :func:`search`), so the
function keeps working after ``import zoo.search`` (which binds the package
to the name ``search`` of ``zoo``). ``zoo.tuning`` and ``zoo.cluster``
remain as small modules re-exporting the public names they had.
"""

from __future__ import annotations

import sys
import types

from zoo.search.api import search
from zoo.search.config import DEFAULT_PRUNER, METRICS, RUNS_FOLDER, SearchConfig
from zoo.search.history import history, plot_history
from zoo.search.storage import DB_FILE, STORAGE_FILE

__all__ = ["DB_FILE", "DEFAULT_PRUNER", "METRICS", "RUNS_FOLDER", "STORAGE_FILE", "SearchConfig", "history", "plot_history", "search"]


class _CallableModule(types.ModuleType):
    """This package, callable as :func:`search` (``zoo.search(...)``)."""

    def __call__(self, *args, **kwargs):
        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
__wrapped__ = search  # inspect.signature(zoo.search) is search's
