"""Former home of ``zoo.search``; kept so that ``from zoo.tuning import search`` and its public names keep working.

The search lives in the package :mod:`zoo.search` (``zoo.search.api``,
``zoo.search.history``, ...); this module only re-exports what it exported.
"""

from zoo.search import DEFAULT_PRUNER, METRICS, RUNS_FOLDER, STORAGE_FILE, history, plot_history, search

__all__ = ["DEFAULT_PRUNER", "METRICS", "RUNS_FOLDER", "STORAGE_FILE", "history", "plot_history", "search"]
