"""Refit after selection: the members of a fitted ensemble refit on more data, what the ensemble learned kept.

>>> import ensemble
>>> blend = ensemble.load("ensembles/imdb")    # weights fitted on validation  # doctest: +SKIP
>>> full = ensemble.refit(blend, X_train_and_validation, y_train_and_validation)  # doctest: +SKIP
>>> full.refit_["members"], full.refit_["kept"]                                 # doctest: +SKIP

A blend's weights and temperatures are fitted on a validation split its
members never saw. Once they are chosen, :func:`refit` fits each selected
member again on more data (typically train + validation), keeping the
blend: AutoGluon's ``refit_full``.

Decisions:

- **A new ensemble.** :func:`refit` returns a new fitted ensemble; the one
  given is not changed. Members that are not refit are the same objects in
  both (as :func:`sklearn.base.clone` shares prefit members); the learned
  arrays are copies.
- **What is refit.** Every member with a non-zero weight that is a
  scikit-learn estimator or pipeline (anything with ``fit`` and
  ``get_params``, XGBoost's scikit-learn models included): whether the
  ensemble fitted it, it was given prefit (``cv="prefit"``) or wrapped in a
  ``FrozenEstimator`` (as ``ensemble fit-weights`` wraps ``.skops`` files).
  The estimator itself (the one inside a ``FrozenEstimator``) is cloned with
  :func:`sklearn.base.clone` and fitted on ``X, y`` (with ``sample_weight``
  if given); a frozen member stays frozen around the refit estimator, and a
  member given prefit is replaced in ``estimators`` too, so the new
  ensemble's ``estimators`` describe what it uses. A member the ensemble
  fitted itself keeps its unfitted estimator in ``estimators``.
- **What is kept.** Members of a registered kind (:mod:`ensemble.kinds`:
  Keras models and ``KerasMember``, which have no scikit-learn ``fit``),
  members with weight 0 (they do not change predictions; refitting them
  would only cost time), dropped members, and estimators that cannot be
  cloned are kept unchanged, each with its reason in ``refit_["kept"]``.
  ``members=[...]`` refits the members named only (weight 0 included: asked
  for by name); naming one that cannot be refit is a ``ValueError``.
- **Everything the ensemble learned stays**: ``weights_``,
  ``temperatures_``, ``blend_temperature_``, ``classes_``, member order and
  names, and for stacks the meta-learner (``final_estimator_``) and
  ``stack_method_``. Stacks are refit too: every member feeds the
  meta-learner, so every refittable member is refit (a stack has no
  weights); this is what scikit-learn's ``StackingClassifier`` does with
  the members it fits (out-of-fold outputs for the meta-learner, then each
  member refit on all data), carried over to the members given prefit.
- **Class labels.** ``y`` must hold exactly the ensemble's ``classes_``
  (``ValueError`` otherwise): a refit member missing a class would predict
  fewer columns than the ensemble's alignment (``_columns``) expects. A
  member the ensemble fitted itself learned the codes ``0 .. k - 1`` of
  ``classes_`` and is refit on those codes; a prefit member learned the
  labels themselves and is refit on the labels. Each refit member's
  ``classes_`` is checked against its columns; a blend member first fitted
  on fewer classes now predicts all of them (its columns grow), while a
  stack refuses it (the meta-learner's inputs would change width).
- **Provenance** is the new ensemble's ``refit_``, a JSON-able dict that
  :func:`ensemble.save` keeps (a fitted attribute, saved as plain data):
  ``members`` (names refit, in member order), ``kept`` (name -> reason),
  ``n_examples``, ``data_sha256`` (:func:`kze.data.data_hash_pair` of ``X``
  and ``y``, the digest ``ensemble`` commands record as ``fitted_on``'s
  ``sha256``: the data of a fit are inputs and labels; None for inputs that
  digest cannot read, such as data frames and sparse matrices) and
  ``sample_weight`` (whether sample weights were given).
- Refits are ``joblib`` tasks (``n_jobs``, ``joblib.parallel_config``), as
  the ensembles' own member fits; ``verbose`` prints each fit's time and a
  progress bar, as the ensembles do.
"""

from __future__ import annotations

import copy

import numpy as np
from joblib import delayed
from sklearn.base import clone, is_classifier
from sklearn.frozen import FrozenEstimator
from sklearn.utils import Bunch
from sklearn.utils._user_interface import _print_elapsed_time
from sklearn.utils.validation import check_is_fitted

from ensemble._members import (
    _is_pair,
    check_sample_weight_support,
    is_drop,
    is_prefit,
    named_members,
    run_tasks,
)
from ensemble.blend import BlendClassifier, BlendRegressor
from ensemble.kinds import kind_of
from ensemble.stack import StackClassifier, StackRegressor

__all__ = ["refit"]

_ENSEMBLES = (BlendClassifier, BlendRegressor, StackClassifier, StackRegressor)


def refit(model, X, y, *, sample_weight=None, members=None, n_jobs=None, verbose=0):
    """A copy of a fitted ensemble whose selected scikit-learn members are refit on ``X, y``.

    Parameters
    ----------
    model : BlendClassifier, BlendRegressor, StackClassifier or StackRegressor
        A fitted ensemble (e.g. from :func:`ensemble.load`); not changed.
    X : array-like
        Raw inputs, as the members take them (e.g. train and validation
        splits concatenated).
    y : array-like of shape (n_samples,)
        Labels (exactly the ensemble's ``classes_``) or targets.
    sample_weight : array-like of shape (n_samples,), default=None
        Given to every refit member's ``fit``.
    members : list of str, default=None
        Names of the members to refit; None refits every refittable member
        with a non-zero weight (every refittable member of a stack).
    n_jobs : int, default=None
        Parallel refits (joblib); None uses the ensemble's ``n_jobs``.
    verbose : int, default=0
        Print each refit's time and show a progress bar on stderr.

    Returns
    -------
    refit : same class as ``model``
        A new fitted ensemble with the refit members and ``refit_`` (see the
        module's decisions).

    Raises
    ------
    ValueError
        ``y`` does not hold exactly the ensemble's classes, ``members`` names
        a member that is unknown or cannot be refit, or a refit member's
        classes do not match its columns.
    TypeError
        ``model`` is not one of the ensembles, or a member cannot take
        ``sample_weight``.
    """
    if not isinstance(model, _ENSEMBLES):
        raise TypeError(f"refit takes a fitted {', '.join(c.__name__ for c in _ENSEMBLES)}; got {type(model).__name__}")
    check_is_fitted(model)
    model._check_X(X, reset=False)
    y = model._check_y(X, y)
    sample_weight = model._check_sample_weight(sample_weight, X)
    classifier = is_classifier(model)
    if classifier:
        _check_classes(model.classes_, y)

    names = [name for name, est in model.named_estimators_.items() if not is_drop(est)]
    todo, kept = _plan(model, names, members)
    if sample_weight is not None:
        for i, est in todo.items():
            check_sample_weight_support(names[i], est)

    prefit = [(isinstance(model.cv, str) and model.cv == "prefit") or is_prefit(est) for est in model.estimators_]
    # members the ensemble fitted learned codes of classes_; prefit ones learned the labels
    codes = np.searchsorted(model.classes_, y) if classifier else y
    params = {} if sample_weight is None else {"sample_weight": sample_weight}
    tasks = [
        delayed(_fit)(clone(est), X, y if prefit[i] else codes, params, names[i],
                      f"({k + 1} of {len(todo)}) Refitting {names[i]}" if verbose else None)
        for k, (i, est) in enumerate(todo.items())
    ]
    fitted = dict(zip(todo, run_tasks(tasks, n_jobs=model.n_jobs if n_jobs is None else n_jobs,
                                      progress=bool(verbose), desc="refitting members")))

    new = _copy(model)
    columns = list(getattr(model, "_columns", [None] * len(names)))
    estimators_ = list(model.estimators_)
    replaced = {}  # id of the object in estimators -> its replacement
    for i, est in fitted.items():
        if classifier and columns[i] is not None:
            columns[i] = _new_columns(model, names[i], est, prefit[i], columns[i])
        old = model.estimators_[i]
        member = FrozenEstimator(est) if isinstance(old, FrozenEstimator) else est
        estimators_[i] = member
        if prefit[i]:  # the estimators param held this very (fitted) member: it now holds the refit one
            replaced[id(old)] = member
    new.estimators = _replace_params(new.estimators, replaced)
    new.estimators_ = estimators_
    by_name = dict(zip(names, estimators_))
    new.named_estimators_ = Bunch(**{name: by_name.get(name, "drop") for name in model.named_estimators_})
    if hasattr(model, "_columns"):
        new._columns = [None if c is None else np.array(c) for c in columns]
    new.refit_ = {
        "members": [names[i] for i in sorted(fitted)],
        "kept": kept,
        "n_examples": len(y),
        "data_sha256": _digest(X, y),
        "sample_weight": sample_weight is not None,
    }
    return new


def _check_classes(classes, y):
    """A ``ValueError`` unless the labels of ``y`` are exactly ``classes``."""
    labels = np.unique(y)
    missing = classes[~np.isin(classes, labels)]
    unknown = labels[~np.isin(labels, classes)]
    if len(missing) or len(unknown):
        what = []
        if len(missing):
            what.append(f"lacks the classes {missing.tolist()}")
        if len(unknown):
            what.append(f"has labels {unknown.tolist()} the ensemble does not know")
        raise ValueError(
            f"y {' and '.join(what)}: refit needs every one of the ensemble's classes {classes.tolist()} and no other, "
            "so that each refit member predicts the columns the ensemble aligns"
        )


def _plan(model, names, members):
    """``({position in estimators_: estimator to clone}, {name: reason kept})``."""
    weights = getattr(model, "weights_", None)
    weight = dict(zip(model.named_estimators_, weights)) if weights is not None else {}
    if members is not None:
        if isinstance(members, str) or not all(isinstance(m, str) for m in members):
            raise TypeError(f"members must be a list of member names; got {members!r:.100}")
        unknown = sorted(set(members) - set(model.named_estimators_))
        if unknown:
            raise ValueError(f"members {unknown} are not members of this ensemble; its members: {list(model.named_estimators_)}")
    todo, kept = {}, {}
    for name, est in model.named_estimators_.items():
        if is_drop(est):
            reason = "dropped"
        else:
            i = names.index(name)
            inner, reason = _refittable(est)
            if reason is None and members is None and weight.get(name, 1.0) == 0:
                reason = "weight 0"
            if reason is None and members is not None and name not in members:
                reason = "not in members"
            if reason is None:
                todo[i] = inner
                continue
        if members is not None and name in members:
            raise ValueError(f"member {name!r} cannot be refit: {reason}")
        kept[name] = reason
    return todo, kept


def _refittable(est):
    """``(estimator to clone, None)``, or ``(None, why it cannot be refit)``."""
    kind = kind_of(est)
    if kind is not None:
        return None, f"a prefit {kind.name} member, without a scikit-learn fit"
    inner = est.estimator if isinstance(est, FrozenEstimator) else est
    if not (callable(getattr(inner, "fit", None)) and hasattr(inner, "get_params")) or isinstance(inner, type):
        return None, f"{type(inner).__name__} is not a scikit-learn estimator (no fit and get_params)"
    try:
        clone(inner)
    except (TypeError, RuntimeError, ValueError) as exc:
        return None, f"{type(inner).__name__} cannot be cloned ({str(exc)[:200]})"
    return inner, None


def _fit(est, X, y, params, name, message):
    with _print_elapsed_time("Refit", message):
        est.fit(X, y, **params)
    return est


def _new_columns(model, name, est, prefit, columns):
    """Columns of ``classes_`` the refit member ``est`` predicts; a ``ValueError`` if the ensemble cannot use them."""
    classes = np.asarray(getattr(est, "classes_", []))
    k = len(model.classes_)
    expected = model.classes_ if prefit else np.arange(k)
    if len(classes) != k or not np.array_equal(classes, expected):
        raise ValueError(f"member {name!r} refit has classes {classes.tolist()}, not {expected.tolist()}")
    new = np.arange(k)
    if isinstance(model, StackClassifier) and not np.array_equal(new, columns):
        raise ValueError(
            f"member {name!r} was fitted on the classes {model.classes_[columns].tolist()} only; refit on all of "
            f"{model.classes_.tolist()}, its outputs would no longer fit the stack's meta-learner"
        )
    return new


def _copy(model):
    """A deep copy of ``model`` sharing its fitted members and models of a member kind (never copied).

    Unfitted estimators in ``estimators`` (members the ensemble fits) are
    copied, so that setting a parameter of one ensemble leaves the other's alone.
    """
    given = [item[1] if _is_pair(item) else item for item in model.estimators]
    shared = [*model.estimators_, *model.named_estimators_.values(), *(e for e in given if kind_of(e) is not None)]
    memo = {id(obj): obj for obj in shared if not isinstance(obj, str)}
    return copy.deepcopy(model, memo)


def _replace_params(estimators, replaced):
    """``estimators`` (the parameter) with the objects of ``replaced`` swapped, names and form kept."""
    named_members(estimators)  # the same checks as the ensemble's
    out = []
    for item in estimators:
        if _is_pair(item):
            out.append((item[0], replaced.get(id(item[1]), item[1])))
        else:
            out.append(replaced.get(id(item), item))
    return out


def _digest(X, y):
    """:func:`kze.data.data_hash_pair` of ``X`` and ``y``, or None for inputs it does not read."""
    from kze.data import data_hash_pair

    try:
        return data_hash_pair(X, y)
    except TypeError:
        return None
