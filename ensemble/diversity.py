"""Diversity report: how good each member is and how differently members err."""

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.metrics import log_loss
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ensemble._base import _BaseEnsemble
from ensemble._cache import check_cache
from ensemble._members import (
    check_member_inputs,
    named_members,
    predict_members,
    prepare,
    require_method,
)


@dataclass
class Diversity:
    """Per-member scores and pairwise diversity of a set of classifiers.

    Attributes
    ----------
    members : list of dict
        ``{"name", "accuracy", "log_loss"}`` per member.
    pairs : list of dict
        ``{"a", "b", "disagreement", "double_fault", "error_correlation"}``
        per pair of members: the fraction of examples on which their
        predicted labels differ, the fraction both get wrong, and the Pearson
        correlation of their 0/1 error indicators (the phi coefficient; NaN
        when a member's errors are constant, e.g. it is never wrong).
    """

    members: list = field(default_factory=list)
    pairs: list = field(default_factory=list)

    def to_dict(self):
        """Plain ``{"members": [...], "pairs": [...]}`` (copies)."""
        return {"members": [dict(m) for m in self.members], "pairs": [dict(p) for p in self.pairs]}

    def __str__(self):
        members = _table(["member", "accuracy", "log_loss"], [[m["name"], m["accuracy"], m["log_loss"]] for m in self.members])
        keys = ["disagreement", "double_fault", "error_correlation"]
        pairs = _table(["pair"] + keys, [[f"{p['a']} / {p['b']}"] + [p[k] for k in keys] for p in self.pairs])
        return members + ("\n\n" + pairs if self.pairs else "")


def diversity(estimators, X, y, *, memory=None, n_jobs=None):
    """Accuracy and log loss of each member; disagreement, double-fault and error correlation of each pair.

    Parameters
    ----------
    estimators : list of (str, estimator) or of estimators, or a fitted ensemble
        Fitted classifiers with ``predict_proba``: Keras models,
        :class:`KerasMember`, models of other member kinds
        (:mod:`ensemble.kinds`), ``FrozenEstimator`` or fitted scikit-learn
        estimators; or a fitted :class:`BlendClassifier` /
        :class:`StackClassifier`, whose members are compared.
    X : array-like
        Raw inputs, passed unchanged to every member.
    y : array-like of shape (n_samples,)
        True labels.
    memory : str, joblib.Memory or None, default=None
        Folder caching member predictions as sha256-verified ``.npy`` files.
    n_jobs : int, default=None
        Members predicting in parallel (threads).

    Returns
    -------
    report : Diversity
    """
    y = column_or_1d(y)
    if isinstance(estimators, _BaseEnsemble):
        ens = estimators
        check_is_fitted(ens)
        if not hasattr(ens, "classes_"):
            raise TypeError(f"diversity() needs classifiers; got {type(ens).__name__}")
        names, members = ens._active_names(), ens.estimators_
        labels = [ens._member_classes(i) for i in range(len(members))]
    else:
        names, members = [], []
        for name, est in named_members(estimators):
            member, prefit = prepare(name, est, "classification")
            if not prefit:
                try:
                    check_is_fitted(member)
                except NotFittedError as exc:
                    raise NotFittedError(f"Member {name!r} is not fitted; diversity() needs fitted members") from exc
            names.append(name)
            members.append(member)
        labels = [np.asarray(m.classes_) for m in members]
    for name, member in zip(names, members):
        require_method(name, member, "predict_proba")
    check_member_inputs(names, members, X)
    try:
        classes = np.unique(np.concatenate(labels + [y]))
    except TypeError as exc:
        detail = f"{[c.tolist() for c in labels]}, y: {np.unique(y).tolist()}"
        raise ValueError(f"members and y have labels of different types: {detail}") from exc

    probas = predict_members(names, members, X, "predict_proba", memory=check_cache(memory), n_jobs=n_jobs)
    y_index = np.searchsorted(classes, y)
    wrong, preds, report = [], [], Diversity()
    for name, proba, lab in zip(names, probas, labels):
        full = np.zeros((len(y), len(classes)))
        full[:, np.searchsorted(classes, lab)] = proba
        pred = full.argmax(axis=1)
        preds.append(pred)
        wrong.append(pred != y_index)
        report.members.append({
            "name": name,
            "accuracy": float(np.mean(pred == y_index)),
            "log_loss": float(log_loss(y_index, full, labels=np.arange(len(classes)))),
        })
    for a, b in combinations(range(len(names)), 2):
        report.pairs.append({
            "a": names[a],
            "b": names[b],
            "disagreement": float(np.mean(preds[a] != preds[b])),
            "double_fault": float(np.mean(wrong[a] & wrong[b])),
            "error_correlation": _pearson(wrong[a], wrong[b]),
        })
    return report


def _pearson(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denom) if denom > 0 else float("nan")


def _table(header, rows):
    cells = [header] + [[c if isinstance(c, str) else f"{c:.4f}" for c in row] for row in rows]
    widths = [max(len(row[j]) for row in cells) for j in range(len(header))]
    lines = ["  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))) for row in cells]
    return "\n".join(lines)
