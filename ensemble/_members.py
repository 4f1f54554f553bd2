"""Ensemble members: naming, prefit detection, fitting and (cached, parallel) prediction."""

from collections import Counter

import joblib
import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import cross_val_predict
from sklearn.utils.validation import check_is_fitted

from ensemble._cache import cached_output
from ensemble._keras import KerasMember, is_keras_model


def named_members(estimators):
    """``(name, estimator)`` pairs from pairs and/or bare estimators.

    Bare estimators are named after their class (a Keras model after its
    ``name``, a ``FrozenEstimator`` after the estimator inside), lowercased,
    with ``-2``, ``-3``... suffixes on repeats.
    """
    if not isinstance(estimators, (list, tuple)) or len(estimators) == 0:
        raise ValueError(
            "estimators must be a non-empty list of (name, estimator) pairs or of estimators; "
            f"got {estimators!r}"
        )
    pairs = [tuple(e) if _is_pair(e) else (None, e) for e in estimators]
    taken = Counter(name for name, _ in pairs if name is not None)
    seen = Counter()
    named = []
    for name, est in pairs:
        if name is None:
            base = _default_name(est)
            seen[base] += 1
            name = base if seen[base] == 1 else f"{base}-{seen[base]}"
            while name in taken:
                seen[base] += 1
                name = f"{base}-{seen[base]}"
            taken[name] += 1
        named.append((name, est))
    duplicates = sorted(name for name, count in Counter(n for n, _ in named).items() if count > 1)
    if duplicates:
        raise ValueError(f"Member names must be unique; duplicated: {duplicates}")
    bad = [name for name, _ in named if "__" in name]
    if bad:
        raise ValueError(f"Member names must not contain '__': {bad}")
    return named


def _is_pair(item):
    """Whether ``item`` is a ``(name, estimator)`` pair."""
    return isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)


def _default_name(est):
    if is_keras_model(est):
        return est.name.lower()
    if isinstance(est, KerasMember):
        return getattr(est.model, "name", "kerasmember").lower()
    if isinstance(est, FrozenEstimator):
        est = est.estimator
    return type(est).__name__.lower()


def prepare(name, est, task):
    """Return ``(member, prefit)``: Keras models get a :class:`KerasMember` adapter.

    Prefit members (Keras models, ``KerasMember``, ``FrozenEstimator``) are
    used as-is; any other estimator is fitted by the ensemble.
    """
    if is_keras_model(est):
        est = KerasMember(est, task=task)
    if isinstance(est, KerasMember):
        if not is_keras_model(est.model):
            raise TypeError(f"Member {name!r} is a KerasMember around {type(est.model).__name__}, not a keras.Model")
        if est.task != task:
            raise ValueError(f"Member {name!r} is a KerasMember with task={est.task!r}; this ensemble needs {task!r}")
        if not est.model.built:
            raise NotFittedError(f"Member {name!r}: the Keras model {est.model.name!r} is not built; train it first")
        return est, True
    if isinstance(est, FrozenEstimator):
        try:
            check_is_fitted(est.estimator)
        except (NotFittedError, TypeError) as exc:
            raise NotFittedError(
                f"Member {name!r} is a FrozenEstimator around an unfitted "
                f"{type(est.estimator).__name__}; fit it before freezing it"
            ) from exc
        return est, True
    if not hasattr(est, "fit") or isinstance(est, type):
        raise TypeError(f"Member {name!r} is not an estimator instance: {est!r}")
    return est, False


def require_method(name, est, method):
    """Raise a ``ValueError`` naming the member if it lacks ``method``."""
    if not hasattr(est, method):
        raise ValueError(f"Member {name!r} ({type(est).__name__}) has no {method}()")


def check_keras_inputs(names, members, X):
    """Check ``X`` against each Keras member's ``input_shape`` before predicting."""
    for name, member in zip(names, members):
        if isinstance(member, KerasMember):
            try:
                member.check_input(X)
            except ValueError as exc:
                raise ValueError(f"Member {name!r}: {exc}") from None


def fit_members(estimators, X, y, *, cv=None, method=None, n_jobs=None):
    """Clone and fit ``estimators`` on all of ``X, y``.

    With ``cv``, also return their out-of-fold ``method`` outputs from
    :func:`~sklearn.model_selection.cross_val_predict`; otherwise ``None``.
    """
    tasks = [delayed(_fit)(clone(est), X, y) for est in estimators]
    if cv is not None:
        tasks += [delayed(cross_val_predict)(clone(est), X, y, cv=cv, method=method) for est in estimators]
    results = Parallel(n_jobs=n_jobs)(tasks)
    k = len(estimators)
    return results[:k], (results[k:] if cv is not None else None)


def _fit(est, X, y):
    return est.fit(X, y)


def predict_members(names, members, X, method, *, memory=None, n_jobs=None):
    """Each member's ``method`` output on ``X``, as float64 arrays.

    Runs in threads (Keras models and fitted estimators are not copied) and
    serves results from ``memory`` where possible. Raises a ``ValueError``
    naming the first member whose output is not finite.
    """
    x_hash = joblib.hash(X) if memory is not None else None
    outputs = Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(_predict)(name, member, method, X, memory, x_hash) for name, member in zip(names, members)
    )
    return [check_output(name, out) for name, out in zip(names, outputs)]


def _predict(name, member, method, X, memory, x_hash):
    try:
        return cached_output(memory, member, method, X, x_hash)
    except ValueError as exc:
        raise ValueError(f"Member {name!r}: {exc}") from exc


def check_output(name, out):
    """``out`` as an array, floats as float64; a ``ValueError`` naming the member if not finite."""
    out = np.asarray(out)
    if out.dtype.kind == "f":
        out = out.astype(np.float64, copy=False)
        if not np.isfinite(out).all():
            raise ValueError(f"Member {name!r} predicted NaN or infinite values")
    return out
