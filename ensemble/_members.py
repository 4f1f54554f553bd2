"""Ensemble members: naming, prefit detection, fitting and (cached, parallel) prediction.

Models of a registered member kind (:mod:`ensemble.kinds`: Keras models, or
kinds plug-ins add) are prefit: they are wrapped in their kind's
:class:`~ensemble.kinds.Member` adapter and used through its interface only
(no kind is special-cased here). With ``verbose``, member fits and
predictions show ``tqdm`` progress bars on stderr once they take more than
a couple of seconds, besides scikit-learn's ``[Voting] (1 of 3) Processing
...`` lines on stdout.
"""

import inspect
import sys
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
from ensemble.kinds import Member, kind_of

_INVALID = "Invalid 'estimators' attribute, 'estimators' should be a non-empty list of (string, estimator) tuples"
STACK_METHODS = ("predict_proba", "decision_function", "predict")
PROGRESS_DELAY = 2.0  # seconds before a progress bar shows (verbose)


def is_drop(est):
    """Whether ``est`` is the ``"drop"`` placeholder of a removed member."""
    return isinstance(est, str) and est == "drop"


def named_members(estimators):
    """``(name, estimator)`` pairs from pairs and/or bare estimators; ``"drop"`` is kept as is.

    Bare estimators are named after their class (a model of a member kind
    as its kind says, e.g. a Keras model after its ``name``; a
    ``FrozenEstimator`` after the estimator inside), lowercased,
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
    if isinstance(est, Member):
        return est.default_name()
    kind = kind_of(est)
    if kind is not None:
        return kind.default_name(est)
    if isinstance(est, FrozenEstimator):
        est = est.estimator
    return type(est).__name__.lower()


def is_prefit(est):
    """Whether the ensemble uses ``est`` as it is: a model of a member kind (e.g. Keras), its adapter, or a ``FrozenEstimator``."""
    return isinstance(est, FrozenEstimator) or kind_of(est) is not None


def prepare(name, est, task, *, prefit=False):
    """Return ``(member, prefit)``: models of a member kind get their kind's adapter.

    Prefit members (models of a member kind such as Keras models, their
    adapters such as ``KerasMember``, ``FrozenEstimator``, and any fitted
    estimator when ``prefit``) are used as-is; any other estimator is fitted
    by the ensemble.
    """
    kind = kind_of(est)
    if kind is not None:
        member = est if isinstance(est, Member) else kind.wrap(est, task=task)
        member.check(name, task)
        return member, True
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
    """Raise a ``ValueError`` naming the member if it lacks ``method`` (scikit-learn's words included)."""
    if not hasattr(est, method):
        raise ValueError(f"Member {name!r} ({type(est).__name__}) has no {method}(): the underlying estimator does not implement the method {method}")


def response_method(name, est, method):
    """The method that gives ``est``'s outputs: ``method``, or for ``"auto"`` the first of
    ``predict_proba``, ``decision_function``, ``predict`` that ``est`` has (as scikit-learn's stacking)."""
    if method != "auto":
        require_method(name, est, method)
        return method
    for candidate in STACK_METHODS:
        if hasattr(est, candidate):
            return candidate
    raise ValueError(f"Member {name!r} ({type(est).__name__}) has none of {', '.join(STACK_METHODS)}: "
                     "the underlying estimator does not implement the method predict_proba, decision_function or predict")


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


def check_member_inputs(names, members, X):
    """Check ``X`` with each member kind's input check (e.g. a Keras model's input shape) before predicting."""
    for name, member in zip(names, members):
        if isinstance(member, Member):
            try:
                member.check_input(X)
            except ValueError as exc:
                raise ValueError(f"Member {name!r}: {exc}") from None


check_keras_inputs = check_member_inputs  # the former name


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
    Prefit members (models of a member kind, ``FrozenEstimator``)
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
    desc = "fitting members" if cv is None else "fitting members, out-of-fold predictions"
    results = run_tasks(tasks, n_jobs=n_jobs, progress=bool(verbose), desc=desc)
    return results[:k], (results[k:] if cv is not None else None)


def run_tasks(tasks, *, n_jobs=None, backend=None, progress=False, desc=None):
    """Run joblib ``tasks``, results in order; with ``progress``, a ``tqdm`` bar on stderr
    counting finished tasks, shown once they take longer than :data:`PROGRESS_DELAY` seconds."""
    if not progress:
        return Parallel(n_jobs=n_jobs, backend=backend)(tasks)
    from tqdm.auto import tqdm

    results = []
    with tqdm(total=len(tasks), desc=desc, unit="task", file=sys.stderr, leave=False, delay=PROGRESS_DELAY) as bar:
        for out in Parallel(n_jobs=n_jobs, backend=backend, return_as="generator")(tasks):
            results.append(out)
            bar.update()
    return results


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


def predict_members(names, members, X, method, *, memory=None, n_jobs=None, progress=False):
    """Each member's ``method`` output on ``X``, as float64 arrays.

    Runs in threads of this process, also under another joblib backend
    (e.g. ``parallel_config(backend="dask")``): Keras models and fitted
    estimators are neither copied nor sent anywhere. Serves results from
    ``memory`` where possible. Raises a ``ValueError`` naming the first
    member whose output is not finite. ``progress`` shows a progress bar
    (see :func:`run_tasks`).
    """
    x_hash = input_hash(X) if memory is not None else None
    tasks = [delayed(_predict)(name, member, method, X, memory, x_hash) for name, member in zip(names, members)]
    outputs = run_tasks(tasks, n_jobs=n_jobs, backend="threading", progress=progress, desc=f"members' {method}")
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
