"""Shared base of the blending and stacking estimators."""

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
from sklearn.utils import Bunch, column_or_1d, get_tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_consistent_length, validate_data

from ensemble._keras import KerasMember, is_keras_model
from ensemble._members import (
    _is_pair,
    check_keras_inputs,
    named_members,
    prepare,
    require_method,
)


class _BaseEnsemble(MetaEstimatorMixin, BaseEstimator):
    """Members handling, parameters, cloning and input checks of all ensembles."""

    @property
    def named_estimators(self):
        """Members by name, as given (not fitted)."""
        return Bunch(**dict(named_members(self.estimators)))

    def get_params(self, deep=True):
        """Parameters; with ``deep``, also each member by name and its parameters as ``<name>__<param>``."""
        out = super().get_params(deep=deep)
        if deep:
            try:
                named = named_members(self.estimators)
            except (TypeError, ValueError):  # invalid members: reported by fit
                return out
            for name, est in named:
                out[name] = est
                if hasattr(est, "get_params") and not isinstance(est, type):
                    out.update((f"{name}__{key}", value) for key, value in est.get_params(deep=True).items())
        return out

    def set_params(self, **params):
        """Set parameters; a member can be replaced by name, or tuned as ``<name>__<param>``."""
        if "estimators" in params:
            self.estimators = params.pop("estimators")
        try:
            named = named_members(self.estimators)
        except (TypeError, ValueError):  # invalid members: reported by fit
            named = []
        replaced = {name: params.pop(name) for name, _ in named if name in params}
        if replaced:
            self.estimators = [(name, replaced.get(name, est)) for name, est in named]
        return super().set_params(**params)

    def __sklearn_clone__(self):
        # Like sklearn.base.clone, but Keras models (prefit members) are shared, not copied.
        params = self.get_params(deep=False)
        params = {k: clone(v, safe=False) for k, v in params.items() if k != "estimators"}
        estimators = self.estimators
        if isinstance(estimators, (list, tuple)):
            estimators = [_clone_item(item) for item in estimators]
        return type(self)(estimators=estimators, **params)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        items = self.estimators if isinstance(self.estimators, (list, tuple)) else []
        ests = [item[1] if _is_pair(item) else item for item in items]
        sk = [e for e in ests if hasattr(e, "fit") and not (isinstance(e, (type, KerasMember)) or is_keras_model(e))]
        complete = bool(ests) and len(sk) == len(ests)
        tags.input_tags.allow_nan = complete and all(get_tags(e).input_tags.allow_nan for e in sk)
        tags.input_tags.sparse = complete and all(get_tags(e).input_tags.sparse for e in sk)
        return tags

    def _check_members(self, method, X):
        """Names, members (Keras models adapted) and prefit flags, checked up front."""
        named = named_members(self.estimators)
        names = [name for name, _ in named]
        conflicts = sorted(set(names) & set(self.get_params(deep=False)))
        if conflicts:
            raise ValueError(f"Member names conflict with constructor arguments: {conflicts}")
        task = "classification" if is_classifier(self) else "regression"
        members, prefit = [], []
        for name, est in named:
            member, is_prefit = prepare(name, est, task)
            require_method(name, member, method)
            members.append(member)
            prefit.append(is_prefit)
        check_keras_inputs(names, members, X)
        return names, members, prefit

    def _check_X(self, X, *, reset):
        """Record or check ``n_features_in_`` when ``X`` is 2-D numeric; never convert ``X``.

        Members take raw inputs (images, strings) and do their own preprocessing.
        """
        if _is_2d_numeric(X):
            validate_data(self, X, reset=reset, skip_check_array=True)
        elif reset:
            for attr in ("n_features_in_", "feature_names_in_"):
                self.__dict__.pop(attr, None)

    def _check_y(self, X, y):
        if y is None:
            raise ValueError(f"This {type(self).__name__} estimator requires y to be passed, but the target y is None.")
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        if is_classifier(self):
            y = check_array(y, ensure_2d=False, dtype=None, input_name="y")
            check_classification_targets(y)
        else:
            y = check_array(y, ensure_2d=False, dtype="numeric", input_name="y")
        return y


def _clone_item(item):
    if _is_pair(item):
        return (item[0], _clone_item(item[1]))
    return item if is_keras_model(item) else clone(item, safe=False)


def _is_2d_numeric(X):
    if sp.issparse(X):
        return True
    if not hasattr(X, "shape") or not hasattr(X, "dtype"):
        try:
            X = np.asarray(X)
        except (TypeError, ValueError):
            return False
    return len(X.shape) == 2 and X.dtype.kind in "biuf"


def prefit_classes(names, members, prefit):
    """The classes all prefit members agree on, or None without prefit members."""
    found = [(n, np.asarray(m.classes_)) for n, m, p in zip(names, members, prefit) if p]
    if not found:
        return None
    first_name, classes = found[0]
    for name, other in found[1:]:
        if len(other) != len(classes) or not np.all(other == classes):
            raise ValueError(
                f"Members disagree on the classes: {first_name!r} has {classes.tolist()}, "
                f"{name!r} has {other.tolist()}"
            )
    return classes


def check_labels(y_classes, classes, names, prefit):
    """Raise a ``ValueError`` if ``y`` has labels the prefit members do not predict."""
    unknown = y_classes[~np.isin(y_classes, classes)]
    if len(unknown):
        holders = [n for n, p in zip(names, prefit) if p]
        raise ValueError(
            f"y has labels {unknown.tolist()} that members {holders} do not predict "
            f"(their classes: {classes.tolist()}); pass KerasMember(model, classes=...) "
            "to label a Keras model's outputs"
        )
