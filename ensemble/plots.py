"""Figures of an ensemble: member diversity and blend weights.

>>> from ensemble.plots import weights_figure
>>> fig = weights_figure(list(blend.named_estimators_), blend.weights_)  # doctest: +SKIP
>>> fig.savefig("weights.png", dpi=120)                                  # doctest: +SKIP

Design decisions:

* The functions build and return a ``matplotlib.figure.Figure`` through
  matplotlib's object-oriented API, never ``pyplot``: no global backend is
  chosen (``matplotlib.use`` would change a notebook's), no figure is left in
  pyplot's registry to close, and a ``Figure`` saves itself with its own Agg
  canvas, with or without a display.
* Building and writing are apart: ``fig.savefig`` in Python, or
  :func:`save_figure`, which writes the file atomically with the project's
  one atomic write (``kze.files.atomic_path``); :func:`check_figure_path`
  refuses a path that could not be written, or without matplotlib, before a
  long computation (the command line's ``--plot``). This module imports
  neither ``zoo`` nor TensorFlow.
* matplotlib (the ``plot`` extra) is imported when a figure is built, never
  by ``import ensemble``; without it the ``ImportError`` names the extra.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["check_figure_path", "diversity_figure", "save_figure", "weights_figure"]

_MISSING = "plotting needs matplotlib: pip install 'keras-zoo-ensemble[plot]'"


def _new_figure(width: float, height: float):
    """An empty ``Figure`` of the given size in inches; ``ImportError`` naming the extra without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(_MISSING) from exc
    return Figure(figsize=(width, height))


def check_figure_path(path) -> None:
    """Refuse a figure path that :func:`save_figure` could not write, before anything is computed.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If the name is too long or its folder is missing, or its suffix is not
        an image format matplotlib writes (``.png``, ``.svg``, ``.pdf``, ...).
    """
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError as exc:
        raise ImportError(_MISSING) from exc
    from kze.files import check_file_name

    try:
        check_file_name(path)
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror}") from None
    kinds = FigureCanvasBase.get_supported_filetypes()
    if Path(path).suffix.lstrip(".").lower() not in kinds:
        raise ValueError(f"{path}: name the file with one of the image suffixes .{', .'.join(sorted(kinds))}")


def save_figure(fig, path, *, dpi: int = 120) -> None:
    """Write ``fig`` to ``path`` atomically, in the format its suffix names (a reader never sees half a file)."""
    from kze.files import atomic_path

    with atomic_path(path, suffix=Path(path).suffix) as tmp:
        fig.savefig(tmp, dpi=dpi, format=Path(path).suffix.lstrip(".").lower())


def weights_figure(names: Sequence[str], weights: Sequence[float], *, accuracies: Sequence[float] | None = None,
                   title: str = "blend weights"):
    """A horizontal bar chart of the blend weight of each member.

    Members are drawn top to bottom in the order given; a member with weight
    0 (not selected, or dropped) keeps its row with an empty bar, so the chart
    shows every candidate. Each bar is labelled with its weight, and with the
    member's accuracy when ``accuracies`` is given.

    Parameters
    ----------
    names : sequence of str
        The members' names.
    weights : sequence of float
        One non-negative, finite weight per member (e.g. a fitted blend's
        ``weights_``).
    accuracies : sequence of float, optional
        One accuracy in [0, 1] per member, written next to its weight.
    title : str, default "blend weights"
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure
        The chart; save it with ``fig.savefig(path)``.

    Raises
    ------
    ValueError
        If ``names`` is empty, or ``weights`` (or ``accuracies``) does not hold
        one finite value per member, or a weight is negative.
    ImportError
        If matplotlib is not installed.
    """
    names = [str(n) for n in names]
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if not names:
        raise ValueError("weights_figure needs at least one member")
    if weights.shape != (len(names),) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"weights must be {len(names)} finite, non-negative numbers (one per member), got {weights.tolist()}")
    if accuracies is not None:
        accuracies = np.asarray(accuracies, dtype=np.float64).reshape(-1)
        if accuracies.shape != weights.shape or not np.all(np.isfinite(accuracies)):
            raise ValueError(f"accuracies must be {len(names)} finite numbers (one per member)")
    k = len(names)
    fig = _new_figure(6 + 0.05 * max(len(n) for n in names), 1.2 + 0.35 * k)
    ax = fig.add_subplot()
    rows = np.arange(k)
    ax.barh(rows, weights, color=["tab:blue" if w > 0 else "lightgray" for w in weights])
    ax.set_yticks(rows, names, fontsize=8)
    ax.invert_yaxis()  # first member on top
    top = float(weights.max()) or 1.0
    ax.set_xlim(0, top * 1.35)
    for i, w in enumerate(weights):
        label = f"{w:.3f}" + ("" if accuracies is None else f"  (acc {accuracies[i]:.2%})")
        ax.text(w + 0.01 * top, i, label, va="center", fontsize=7)
    ax.set_xlabel("weight")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def diversity_figure(report):
    """The error-correlation heatmap of a diversity report, beside the members' accuracies.

    Parameters
    ----------
    report : ensemble.Diversity or dict
        What :func:`ensemble.diversity` returns, or its ``to_dict()``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure; save it with ``fig.savefig(path)``.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    """
    d = report if isinstance(report, dict) else report.to_dict()
    names = [m["name"] for m in d["members"]]
    k = len(names)
    corr = np.eye(k)
    for p in d["pairs"]:
        i, j = names.index(p["a"]), names.index(p["b"])
        value = p["error_correlation"]
        corr[i, j] = corr[j, i] = math.nan if value is None else value
    fig = _new_figure(6 + 0.6 * k, 3 + 0.4 * k)
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    image = ax1.imshow(corr, vmin=-1, vmax=1, cmap="RdBu_r")
    ax1.set_xticks(range(k), names, rotation=60, ha="right", fontsize=8)
    ax1.set_yticks(range(k), names, fontsize=8)
    for i in range(k):
        for j in range(k):
            ax1.text(j, i, f"{corr[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax1.set_title("error correlation")
    fig.colorbar(image, ax=ax1, fraction=0.046)
    ax2.barh(names, [m["accuracy"] for m in d["members"]])
    ax2.set_xlim(min(m["accuracy"] for m in d["members"]) - 0.02, 1.0)
    ax2.set_title("accuracy")
    ax2.tick_params(labelsize=8)
    fig.tight_layout()
    return fig
