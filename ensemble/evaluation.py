"""Scoring ensembles against their members: accuracy and log loss, chunk by chunk, and the report table.

>>> from ensemble.evaluation import evaluate, report
>>> result = evaluate(blend, X_test, y_test, chunk_size=10_000)      # doctest: +SKIP
>>> print(report(result["members"], result["ensemble_scores"], "test", "slsqp blend", weights=True))  # doctest: +SKIP

Design decisions:

* One scorer: accuracy and log loss are sums over rows, so :class:`_RunningScores`
  adds them up chunk by chunk; :func:`scores` is the same on one chunk.
  Labels are column indices into the ensemble's ``classes_``.
* :func:`evaluate` holds one chunk of ``X`` at a time (a memory-mapped array,
  a :class:`~ensemble.chunked.TextLines`): member outputs go through the
  prediction cache chunk by chunk, and the ensemble combines the cached
  outputs, so no member predicts a row twice.
* The data's identity recorded with a fit (:func:`data_record`) is the one
  data hash of ``X`` and ``y`` together, :func:`kze.data.data_hash_pair`
  (ensembles saved before it record another digest: they still evaluate,
  only the "same data as the fit" note is not shown for them).
* Progress bars go to stderr (tqdm) and are off with ``progress=False``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

__all__ = ["check_classes", "check_labels", "data_record", "evaluate", "fit_scores", "member_probabilities", "report", "scores"]


def check_labels(classes, y) -> None:
    """Refuse labels of ``y`` that are not among ``classes`` (``ValueError``)."""
    unknown = sorted(set(np.unique(y).tolist()) - set(np.asarray(classes).tolist()))
    if unknown:
        raise ValueError(f"labels {unknown[:5]} of the data are not among the members' classes {np.asarray(classes).tolist()[:10]}")


def check_classes(named, y) -> None:
    """Prefit ``(name, estimator)`` members must agree on their classes and know every label of ``y`` (``ValueError``)."""
    (first, est), *rest = named
    classes = np.asarray(est.classes_)
    for name, other in rest:
        other = np.asarray(other.classes_)
        if not np.array_equal(other, classes):
            raise ValueError(f"members disagree on the classes: {first} has {classes.tolist()}, {name} has {other.tolist()}")
    check_labels(classes, y)


def data_record(X, y, /, **where) -> dict:
    """``where`` with the number of rows and the digest of ``X`` and ``y`` (:func:`kze.data.data_hash_pair`)."""
    from kze.data import data_hash_pair

    return {**where, "n": len(y), "sha256": data_hash_pair(X, y)}


class _RunningScores:
    """Accuracy and log loss summed over chunks."""

    def __init__(self):
        self.n, self.correct, self.loss = 0, 0, 0.0

    def add(self, y_index: np.ndarray, proba: np.ndarray) -> None:
        from sklearn.metrics import log_loss

        self.n += len(y_index)
        proba = np.asarray(proba, dtype=np.float64)
        self.correct += int(np.sum(proba.argmax(axis=1) == y_index))
        sums = proba.sum(axis=1, keepdims=True)
        if np.all(np.abs(sums - 1) < 1e-4):  # float32 round-off, which log_loss would warn about in float64
            proba = proba / sums
        self.loss += log_loss(y_index, proba, labels=np.arange(proba.shape[1]), normalize=False)

    def result(self) -> dict[str, float]:
        return {"accuracy": self.correct / self.n, "log_loss": self.loss / self.n}


def scores(y_index, proba) -> dict[str, float]:
    """Accuracy and log loss of class probabilities ``proba`` for labels given as column indices ``y_index``."""
    running = _RunningScores()
    running.add(np.asarray(y_index), proba)
    return running.result()


def member_probabilities(named, X, memory=None, *, progress: bool = True) -> list[np.ndarray]:
    """Each ``(name, estimator)`` member's class probabilities on ``X``, through the prediction cache ``memory``."""
    from tqdm.auto import tqdm

    from ensemble._cache import check_cache
    from ensemble._members import check_keras_inputs, predict_members

    names, estimators = [n for n, _ in named], [e for _, e in named]
    check_keras_inputs(names, estimators, X)
    out = []
    for name, est in tqdm(named, desc="member predictions", unit="member", disable=not progress, file=sys.stderr):
        (proba,) = predict_members([name], [est], X, "predict_proba", memory=check_cache(memory))
        out.append(np.asarray(proba, dtype=np.float64))
    return out


def fit_scores(model, records, probas, X, y, *, candidates=None, split: str = "validation") -> tuple[list[dict], dict]:
    """The rows of a fit's report: each candidate's record with its scores on ``split``, and the ensemble's scores.

    Parameters
    ----------
    model : classifier
        The fitted ensemble.
    candidates : classifier, optional
        The ensemble over all the records' members, if ``model`` holds fewer (a
        selection's candidates). With ``weights_``, each row also gets its
        ``weight`` and ``temperature``.
    records : list of dict
        One record per candidate (:meth:`ensemble.sources.Member.record`).
    probas : list of ndarray
        Each candidate's class probabilities on ``X`` (:func:`member_probabilities`).
    X, y : array-like
        The data.
    split : str
        The key of the scores in each row.
    """
    candidates = model if candidates is None else candidates
    classes = np.asarray(candidates.classes_)
    check_labels(classes, y)
    y_index = np.searchsorted(classes, y)
    rows = [{**r, split: scores(y_index, p)} for r, p in zip(records, probas)]
    if getattr(candidates, "weights_", None) is not None:
        for row, w, t in zip(rows, candidates.weights_, candidates.temperatures_):
            row["weight"], row["temperature"] = float(w), float(t)
    return rows, scores(y_index, model.predict_proba(X))


def evaluate(model, X, y, *, memory=None, chunk_size: int = 10_000, progress: bool = True, records=None) -> dict:
    """Each member's scores and the ensemble's on ``X, y``, predicted ``chunk_size`` rows at a time.

    Parameters
    ----------
    model : fitted BlendClassifier or StackClassifier
    X : array-like, numpy.memmap or TextLines
    y : array-like
        Labels among ``model.classes_``.
    memory : path, optional
        The prediction cache (member outputs are cached chunk by chunk).
    chunk_size : int, default=10000
        Rows predicted at a time.
    progress : bool, default=True
        Show a progress bar on stderr.
    records : dict, optional
        Name -> recorded member (its ``kind``, ``source`` and ``sha256`` are
        copied into the member's row).

    Returns
    -------
    dict
        ``members``: one row per member used (not dropped) with ``name``,
        ``scores`` and, for blends, ``weight``; ``ensemble_scores``;
        ``gain_over_best_member_points`` (accuracy points over the best member).
    """
    from tqdm.auto import tqdm

    from ensemble._cache import check_cache
    from ensemble._members import check_keras_inputs, predict_members
    from ensemble.chunked import iter_chunks

    classes = np.asarray(model.classes_)
    labels = set()
    for _, _, chunk in iter_chunks(y, chunk_size):
        labels.update(np.unique(chunk).tolist())
    check_labels(classes, np.array(sorted(labels)))
    used = [(n, est) for n, est in model.named_estimators_.items() if not isinstance(est, str)]  # "drop" left out
    names, estimators = [n for n, _ in used], [e for _, e in used]
    cache = check_cache(memory)
    model.set_params(memory=memory)
    members, whole = [_RunningScores() for _ in used], _RunningScores()
    with tqdm(total=len(y), unit="rows", unit_scale=True, desc="predictions", file=sys.stderr, leave=False,
              disable=None if progress else True) as bar:
        for start, stop, chunk in iter_chunks(X, chunk_size):
            y_index = np.searchsorted(classes, np.asarray(y[start:stop]))
            check_keras_inputs(names, estimators, chunk)
            probas = predict_members(names, estimators, chunk, "predict_proba", memory=cache)
            for running, name, proba in zip(members, names, probas):
                running.add(y_index, _columns_of(model, name, np.asarray(proba, dtype=np.float64)))
            whole.add(y_index, model.predict_proba(chunk))
            bar.update(stop - start)
    weights, every = getattr(model, "weights_", None), list(model.named_estimators_)
    rows = []
    for (name, _), running in zip(used, members):
        row = {"name": name, **{k: (records or {}).get(name, {}).get(k) for k in ("kind", "source", "sha256")}, "scores": running.result()}
        if weights is not None:
            row["weight"] = float(weights[every.index(name)])
        rows.append(row)
    ensemble_scores = whole.result()
    gain = round(100 * (ensemble_scores["accuracy"] - max(r["scores"]["accuracy"] for r in rows)), 4)
    return {"members": rows, "ensemble_scores": ensemble_scores, "gain_over_best_member_points": gain}


def _columns_of(model, name, proba):
    """A member's probabilities over the ensemble's classes (members may know fewer)."""
    if proba.shape[1] == len(model.classes_):
        return proba
    est = model.named_estimators_[name]
    full = np.zeros((proba.shape[0], len(model.classes_)))
    full[:, np.searchsorted(model.classes_, np.asarray(est.classes_))] = proba
    return full


def report(rows, ensemble_scores, split: str, label: str, *, weights: bool = False) -> str:
    """The members-versus-ensemble table: each row's ``row[split]`` scores (and ``weight``), the ensemble's, the gain."""
    from kze.cli import table

    best = max(r[split]["accuracy"] for r in rows)
    headers = ["model", *(["weight"] if weights else []), "accuracy", "log loss"]
    lines = [[r["name"], *([float(r["weight"])] if weights else []), r[split]["accuracy"], r[split]["log_loss"]] for r in rows]
    lines.append([label, *([1.0] if weights else []), ensemble_scores["accuracy"], ensemble_scores["log_loss"]])
    gain = 100 * (ensemble_scores["accuracy"] - best)
    return f"{label} on {split}\n" + table(headers, lines) + f"\n\ngain over the best member: {gain:+.2f} accuracy points"


def open_xy(x, y) -> tuple:
    """Inputs larger than memory and their labels: ``x`` a ``.npy`` array (memory-mapped) or a UTF-8 text file, one example
    per line (:class:`~ensemble.chunked.TextLines`); ``y`` a ``.npy`` array of one label per row (memory-mapped).

    Raises
    ------
    ValueError
        A missing or unreadable file, a ``.npz`` file, labels that are not one per row, or row counts that differ.
    """
    from ensemble.chunked import open_input

    for option, path in (("--x", x), ("--y", y)):
        if not Path(path).is_file():
            raise ValueError(f"{option} {path}: no such file")
    if Path(x).suffix == ".npz" or Path(y).suffix != ".npy":
        raise ValueError("--x takes a .npy array or a text file (one review per line), --y a .npy array; for an .npz file use --data")
    try:
        X = open_input(x)
        labels = np.load(y, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read --x {x} / --y {y}: {exc}") from None
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.dtype.kind not in "biuUS":
        raise ValueError(f"--y {y}: expected one label per row (integers or strings), got shape {labels.shape} and dtype {labels.dtype}")
    if len(X) != len(labels):
        raise ValueError(f"--x {x} has {len(X)} rows but --y {y} has {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError(f"--x {x} holds no examples")
    return X, labels
