"""Watching a search: the trials of a library's studies as a table, and Optuna's plots as one PNG.

Decisions:

- :func:`history` lists the trials of the library's studies (number, state,
  value, parameters, duration, entry) from the storage through Optuna's
  public API (``get_all_study_names``, ``load_study``, ``get_trials``; no
  pandas), opened by the one factory ``zoo.search.storage.open_storage``; it
  reads and never creates: a library without a storage is refused.
- :func:`plot_history` draws Optuna's matplotlib optimisation history and,
  with two complete trials or more, parameter importances, stacked into one
  PNG written atomically.
"""

from __future__ import annotations

import os

import numpy as np

from zoo.search.storage import library_storage, open_storage, read_study, redact

__all__ = ["history", "plot_history"]


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

    folder, where = library_storage(library, storage)
    opened = open_storage(where)
    names = sorted(optuna.get_all_study_names(opened))
    if study is not None and study not in names:
        raise ValueError(f"no study {study!r} in {redact(where)}; studies: {', '.join(names) or 'none'}")
    registry = Registry(folder) if (folder / "registry.yaml").is_file() else None
    studies = []
    for name in names if study is None else [study]:
        loaded = read_study(name, opened)
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
    return {"library": str(folder), "storage": redact(where), "studies": studies}


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

    folder, where = library_storage(library, storage)
    opened = open_storage(where)
    names = sorted(optuna.get_all_study_names(opened))
    if study is None and len(names) != 1:
        raise ValueError(f"{redact(where)} holds {len(names)} studies ({', '.join(names) or 'none'}): name one to plot")
    if study is not None and study not in names:
        raise ValueError(f"no study {study!r} in {redact(where)}; studies: {', '.join(names) or 'none'}")
    loaded = read_study(study or names[0], opened)
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

