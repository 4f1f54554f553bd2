"""Ensemble members: naming, prefit detection, fitting and (cached, parallel) prediction."""

import inspect
from collections import Counter
from copy import deepcopy

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.utils._user_interface import _print_elapsed_time
from sklearn.utils.validation import check_is_fitted

from ensemble._cache import cached_output, input_hash
from ensemble._keras import KerasMember, is_keras_model

_INVALID = "Invalid 'estimators' attribute, 'estimators' should be a non-empty list of (string, estimator) tuples"
STACK_METHODS = ("predict_proba", "decision_function", "predict")


def is_drop(est):
    """Whether ``est`` is the ``"drop"`` placeholder of a removed member."""
    return isinstance(est, str) and est == "drop"


def named_members(estimators):
    """``(name, estimator)`` pairs from pairs and/or bare estimators; ``"drop"`` is kept as is.

    Bare estimators are named after their class (a Keras model after its
    ``name``, a ``FrozenEstimator`` after the estimator inside), lowercased,
    with ``-2``, ``-3``... suffixes on repeats. Malformed lists and names
    raise scikit-learn's ``ValueError`` messages.
    """
    if not isinstance(estimators, (list, tuple)) or len(estimators) == 0:
        raise ValueError(f"{_INVALID} or of estimators; got {estimators!r:.200}")
    pairs = []
    for i, item in enumerate(estimators):
        if isinstance(item, (tuple, list)):
            if not _is_pair(item):
                raise ValueError(f"{_INVALID}; item {i} is {_short(item)}, not a (string, estimator) pair")
            pairs.append(tuple(item))
        elif isinstance(item, str):
            raise ValueError(f"{_INVALID}; item {i} is the string {item!r}: name it, as in ('name', 'drop')")  # noqa: TRY004 (as scikit-learn)
        else:
            pairs.append((None, item))
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
    names = [name for name, _ in named]
    if len(set(names)) != len(names):
        raise ValueError(f"Names provided are not unique: {names!r}")
    bad = [name for name in names if "__" in name]
    if bad:
        raise ValueError(f"Estimator names must not contain __: got {bad!r}")
    if all(is_drop(est) for _, est in named):
        raise ValueError("All estimators are dropped. At least one is required to be an estimator.")
    return named


def _short(item):
    text = repr(item)
    return text if len(text) <= 80 else text[:77] + "..."


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


def is_prefit(est):
    """Whether the ensemble uses ``est`` as it is: a Keras model, ``KerasMember`` or ``FrozenEstimator``."""
    return is_keras_model(est) or isinstance(est, (KerasMember, FrozenEstimator))


def prepare(name, est, task, *, prefit=False):
    """Return ``(member, prefit)``: Keras models get a :class:`KerasMember` adapter.

    Prefit members (Keras models, ``KerasMember``, ``FrozenEstimator``, and
    any fitted estimator when ``prefit``) are used as-is; any other estimator
    is fitted by the ensemble.
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
    if isinstance(est, type):
        raise TypeError(
            f"Member {name!r}: expected an estimator instance ({est.__name__}()), got estimator class instead ({est.__name__})."
        )
    if not hasattr(est, "fit"):
        raise TypeError(f"Member {name!r} is not an estimator instance (it has no fit method): {_short(est)}")
    if isinstance(est, FrozenEstimator) or prefit:
        inner = est.estimator if isinstance(est, FrozenEstimator) else est
        try:
            check_is_fitted(inner)
        except (NotFittedError, TypeError) as exc:
            how = "is a FrozenEstimator around an unfitted" if isinstance(est, FrozenEstimator) else "is an unfitted"
            raise NotFittedError(
                f"Member {name!r} {how} {type(inner).__name__}; fit it first (cv='prefit' uses members as they are)"
            ) from exc
        return est, True
    return est, False


def require_method(name, est, method):
    """Raise a ``ValueError`` naming the member if it lacks ``method``."""
    if not hasattr(est, method):
        raise ValueError(f"Member {name!r} ({type(est).__name__}) has no {method}()")


def response_method(name, est, method):
    """The method that gives ``est``'s outputs: ``method``, or for ``"auto"`` the first of
    ``predict_proba``, ``decision_function``, ``predict`` that ``est`` has (as scikit-learn's stacking)."""
    if method != "auto":
        require_method(name, est, method)
        return method
    for candidate in STACK_METHODS:
        if hasattr(est, candidate):
            return candidate
    raise ValueError(f"Member {name!r} ({type(est).__name__}) has none of {', '.join(STACK_METHODS)}")


def check_sample_weight_support(name, est):
    """Raise scikit-learn's ``TypeError`` if ``est.fit`` cannot take ``sample_weight`` (routing disabled)."""
    try:
        params = inspect.signature(est.fit).parameters
    except (TypeError, ValueError):  # no introspectable signature: let fit() decide
        return
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if "sample_weight" not in params and (isinstance(est, Pipeline) or not takes_kwargs):
        hint = (
            "; for a Pipeline, enable metadata routing (sklearn.set_config(enable_metadata_routing=True)) "
            "and call set_fit_request(sample_weight=True) on the step that should get them"
            if isinstance(est, Pipeline) else ""
        )
        raise TypeError(f"Underlying estimator {name!r} ({type(est).__name__}) does not support sample weights{hint}.")


def check_keras_inputs(names, members, X):
    """Check ``X`` against each Keras member's ``input_shape`` before predicting."""
    for name, member in zip(names, members):
        if isinstance(member, KerasMember):
            try:
                member.check_input(X)
            except ValueError as exc:
                raise ValueError(f"Member {name!r}: {exc}") from None


def fit_members(estimators, X, y, *, names=None, params=None, cv=None, methods=None, n_jobs=None, verbose=0,
                owner="Ensemble"):
    """Clone and fit ``estimators`` on all of ``X, y``; returns ``(fitted, out_of_fold)``.

    ``fitted`` holds the clones whose ``fit`` was called (never what ``fit``
    returned). ``params[i]`` are member ``i``'s fit parameters (e.g.
    ``sample_weight``). With ``cv``, ``out_of_fold[i]`` is member ``i``'s
    out-of-fold ``methods[i]`` output from
    :func:`~sklearn.model_selection.cross_val_predict`, every member getting
    the same folds; otherwise ``out_of_fold`` is None.

    The fits and out-of-fold predictions are ``joblib`` tasks, so
    ``joblib.parallel_config`` chooses where they run; on a Dask cluster::

        from dask.distributed import Client
        client = Client("tls://scheduler:8786")   # a scheduler only peers you trust can reach
        with joblib.parallel_config(backend="dask", scatter=[X]):
            StackClassifier(members, n_jobs=-1).fit(X, y)

    ``scatter=[X]`` sends ``X`` to the cluster once, for every fit and
    fold, rather than with each task. Only the estimators fitted here
    travel, unfitted (``clone``): a ``ZooClassifier`` is rebuilt from its
    parameters on the worker, trains there and comes back as weights.
    Prefit members (Keras models, ``KerasMember``, ``FrozenEstimator``)
    never leave this process: :func:`predict_members` runs them in
    threads here.
    """
    k = len(estimators)
    names = names if names is not None else [type(e).__name__ for e in estimators]
    params = params if params is not None else [{}] * k
    message = [f"({i + 1} of {k}) Processing {name}" if verbose else None for i, name in enumerate(names)]
    tasks = [delayed(_fit)(clone(est), X, y, p, name, owner, msg)
             for est, p, name, msg in zip(estimators, params, names, message)]
    if cv is not None:
        if hasattr(cv, "random_state") and cv.random_state is None:  # the same shuffled folds for every member
            cv = deepcopy(cv)
            cv.random_state = np.random.RandomState()
        tasks += [
            delayed(_cross_val_predict)(clone(est), X, y, deepcopy(cv), method, p, name, verbose)
            for est, method, p, name in zip(estimators, methods, params, names)
        ]
    results = Parallel(n_jobs=n_jobs)(tasks)
    return results[:k], (results[k:] if cv is not None else None)


def _fit(est, X, y, params, name, owner, message):
    try:
        with _print_elapsed_time(owner, message):
            est.fit(X, y, **params)
    except TypeError as exc:
        if "sample_weight" in params and "unexpected keyword argument 'sample_weight'" in str(exc):
            raise TypeError(f"Underlying estimator {name!r} ({type(est).__name__}) does not support sample weights.") from exc
        raise
    return est


def _cross_val_predict(est, X, y, cv, method, params, name, verbose):
    return cross_val_predict(est, X, y, cv=cv, method=method, params=params or None, verbose=verbose)


def predict_members(names, members, X, method, *, memory=None, n_jobs=None):
    """Each member's ``method`` output on ``X``, as float64 arrays.

    Runs in threads of this process, also under another joblib backend
    (e.g. ``parallel_config(backend="dask")``): Keras models and fitted
    estimators are neither copied nor sent anywhere. Serves results from
    ``memory`` where possible. Raises a ``ValueError`` naming the first
    member whose output is not finite.
    """
    x_hash = input_hash(X) if memory is not None else None
    outputs = Parallel(n_jobs=n_jobs, backend="threading")(
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
