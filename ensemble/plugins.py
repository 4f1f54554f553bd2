"""Plug-ins: packages that teach ``ensemble`` new member kinds, saved parts and sources.

Decisions: ``ensemble`` is the general layer and imports no plug-in. A
plug-in is a module named in the ``ensemble.plugins`` entry-point group of its
distribution (``[project.entry-points."ensemble.plugins"]`` in
``pyproject.toml``); importing it registers what it provides through the
public ``register_*`` functions of ``ensemble`` (saved-part formats and trusted
types in ``ensemble.parts``, data and member sources for the command line in
``ensemble.sources``). ``load_plugins`` imports every such module once, lazily
— when a bundle meets a kind nobody registered, or when the command line
resolves a name — so ``import ensemble`` stays cheap. A plug-in that fails to
import is skipped with one warning naming it: the core keeps working without
it (``import ensemble`` works when ``zoo`` cannot be imported), and whatever
needed the plug-in fails with an error that names it.
"""

from __future__ import annotations

import importlib
import warnings
from importlib import metadata

GROUP = "ensemble.plugins"

_loaded: dict[str, str | None] = {}  # entry-point name -> None if imported, else the import error


def load_plugins() -> dict[str, str | None]:
    """Import every module in the ``ensemble.plugins`` entry-point group once.

    Returns
    -------
    dict
        Entry-point name -> ``None`` for a plug-in that loaded, or the one-line
        error for one that could not be imported (it was skipped with a
        warning).
    """
    for entry in metadata.entry_points(group=GROUP):
        if entry.name in _loaded:
            continue
        try:
            importlib.import_module(entry.value.partition(":")[0])
        except Exception as exc:  # a broken plug-in must not break the core
            _loaded[entry.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"ensemble plug-in {entry.name!r} ({entry.value}) could not be imported and is skipped: {exc}", stacklevel=2)
        else:
            _loaded[entry.name] = None
    return dict(_loaded)
