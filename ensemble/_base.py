"""Shared base of the blending and stacking estimators.

Members of a registered member kind (:mod:`ensemble.kinds`, e.g. Keras
models) are prefit and used through their adapter's interface only.
"""

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    MetaEstimatorMixin,
    TransformerMixin,
    clone,
    is_classifier,
)
from sklearn.model_selection import check_cv
from sklearn.utils import Bunch, column_or_1d, get_tags
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _raise_for_params,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_consistent_length,
    validate_data,
)

from ensemble._cache import check_cache
from ensemble._members import (
    _is_pair,
    check_member_inputs,
    check_output,
    check_sample_weight_support,
    fit_members,
    is_drop,
    is_prefit,
    named_members,
    predict_members,
    prepare,
    response_method,
)
from ensemble.kinds import kind_of


class Checked(NamedTuple):
    """Validated members of one ``fit`` call (not stored): all names, and the non-dropped members."""

    all_names: list  # every member name, dropped ones included, in the given order
    names: list  # names of the non-dropped members
    members: list  # non-dropped members, models of a member kind wrapped in their adapter (e.g. KerasMember)
    prefit: list  # whether each is used as it is (never fitted here)
    methods: list  # the method whose outputs each one contributes


class _BaseEnsemble(TransformerMixin, MetaEstimatorMixin, BaseEstimator):
    """Members handling, parameters, cloning, routing and input checks of all ensembles."""

    _member_kind = None  # "classifier"/"regressor": members must be of this kind (blends), None: any (stacks)
    _log_name = "Ensemble"  # tag of the verbose lines, as scikit-learn's ("Voting", "Stacking")

    def __getattr__(self, name):
        # only reached for missing attributes: scikit-learn's message for n_features_in_ (stacks, #17353)
        if name == "n_features_in_":
            raise AttributeError(
                f"{type(self).__name__} object has no attribute n_features_in_ "
                "(set by fit when X is a 2-D numeric array or a data frame)"
            )
        return object.__getattribute__(self, name)  # the lookup's own error (e.g. available_if's, with its cause)

    @property
    def named_estimators(self):
        """Members by name, as given (not fitted); dropped members map to ``"drop"``."""
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
        """Set parameters; a member can be replaced by name (``"drop"`` removes it), or tuned as ``<name>__<param>``."""
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
        # Like sklearn.base.clone, but models of a member kind (prefit members) are shared, not copied.
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
        ests = [e for e in ests if not is_drop(e)]
        sk = [e for e in ests if hasattr(e, "fit") and not isinstance(e, type) and kind_of(e) is None]
        complete = bool(ests) and len(sk) == len(ests)
        tags.input_tags.allow_nan = complete and all(get_tags(e).input_tags.allow_nan for e in sk)
        tags.input_tags.sparse = complete and all(get_tags(e).input_tags.sparse for e in sk)
        return tags

    # --- metadata routing -------------------------------------------------------------------

    def _members_to_fit(self):
        """``(name, estimator)`` of the members this ensemble fits (neither dropped nor prefit)."""
        if self.cv == "prefit":
            return []
        return [(n, e) for n, e in named_members(self.estimators) if not is_drop(e) and not is_prefit(e)]

    def get_metadata_routing(self):
        """Metadata routing: ``fit`` metadata go to the members this ensemble fits, as they request.

        The ensemble itself consumes ``sample_weight`` (weights solvers,
        meta-learner); prefit and dropped members receive nothing.

        Returns
        -------
        routing : MetadataRouter
        """
        router = MetadataRouter(owner=self).add_self_request(self)
        for name, est in self._members_to_fit():
            router.add(**{name: est}, method_mapping=MethodMapping().add(caller="fit", callee="fit"))
        return router

    def _route_fit_params(self, checked, sample_weight, fit_params):
        """Fit parameters of each member to fit, by name, and the routed ``Bunch`` (None without routing)."""
        todo = [n for n, p in zip(checked.names, checked.prefit) if not p]
        if _routing_enabled():
            if sample_weight is not None:
                fit_params = {**fit_params, "sample_weight": sample_weight}
            routed = process_routing(self, "fit", **fit_params)
            return {name: routed[name]["fit"] for name in todo}, routed
        _raise_for_params(fit_params, self, "fit")
        if sample_weight is None:
            return {name: {} for name in todo}, None
        for name, est, p in zip(checked.names, checked.members, checked.prefit):
            if not p:
                check_sample_weight_support(name, est)
        return {name: {"sample_weight": sample_weight} for name in todo}, None

    # --- validation ---------------------------------------------------------------------------

    def _check_members(self, X, method, *, sample_weight=None, fit_params=None):
        """Names, non-dropped members (models of a member kind adapted), prefit flags and methods, checked up front.

        ``method`` is one method name for all members, or ``"auto"`` (see
        :func:`ensemble._members.response_method`). Without metadata routing,
        ``fit_params`` are refused and members to fit must take
        ``sample_weight`` (when given) first, as in scikit-learn.
        """
        if not _routing_enabled():
            _raise_for_params(fit_params or {}, self, "fit")
        named = named_members(self.estimators)
        all_names = [name for name, _ in named]
        conflicts = sorted(set(all_names) & set(self.get_params(deep=False)))
        if conflicts:
            raise ValueError(f"Estimator names conflict with constructor arguments: {conflicts!r}")
        if isinstance(self.cv, str) and self.cv != "prefit":
            raise ValueError(f"cv must be an int, a cross-validation generator, an iterable or 'prefit'; got {self.cv!r}")
        task = "classification" if is_classifier(self) else "regression"
        names, members, prefit, methods = [], [], [], []
        for name, est in named:
            if is_drop(est):
                continue
            member, is_pre = prepare(name, est, task, prefit=self.cv == "prefit")
            self._check_kind(name, member)
            if sample_weight is not None and not is_pre and not _routing_enabled():
                check_sample_weight_support(name, member)
            methods.append(response_method(name, member, method))
            names.append(name)
            members.append(member)
            prefit.append(is_pre)
        check_member_inputs(names, members, X)
        return Checked(all_names, names, members, prefit, methods)

    def _check_kind(self, name, member):
        if self._member_kind is None:
            return
        try:
            kind = get_tags(member).estimator_type
        except (AttributeError, TypeError):  # duck-typed member without tags: trusted
            return
        if kind is not None and kind != self._member_kind:
            raise ValueError(f"The estimator {type(member).__name__} should be a {self._member_kind}.")

    def _check_X(self, X, *, reset):
        """Refuse empty and 0-d ``X``; record or check ``n_features_in_`` (and
        ``feature_names_in_``) when ``X`` is a 2-D numeric array or a data frame.

        ``X`` is never converted: members take raw inputs (images, strings)
        and do their own preprocessing.
        """
        cls = type(self).__name__
        shape = _shape(X)
        if shape == ():
            raise ValueError(f"Expected an array of samples, got a 0-d (scalar) X instead: {X!r:.60}; {cls} needs one entry per sample.")
        if shape[0] == 0:
            raise ValueError(f"Found array with 0 sample(s) (shape={shape}) while a minimum of 1 is required by {cls}.")
        if _is_table(X):
            if len(shape) == 2 and shape[1] == 0:
                raise ValueError(f"Found array with 0 feature(s) (shape={shape}) while a minimum of 1 is required by {cls}.")
            validate_data(self, X, reset=reset, skip_check_array=True)
        elif reset:
            for attr in ("n_features_in_", "feature_names_in_"):
                self.__dict__.pop(attr, None)

    def _check_y(self, X, y):
        """``y`` as a 1-d array: a column vector is raveled (``DataConversionWarning``), 2-d targets refused."""
        cls = type(self).__name__
        if y is None:
            raise ValueError(f"This {cls} estimator requires y to be passed, but the target y is None.")
        shape = _shape(y)
        if len(shape) == 2 and shape[1] == 1:
            y = column_or_1d(y, warn=True)
        elif len(shape) != 1:
            what = "binary and multiclass targets; multilabel and multi-output" if is_classifier(self) else "one target; multi-output"
            raise ValueError(f"{cls} supports {what} y are not supported (got y of shape {shape}); fit one ensemble per output")
        check_consistent_length(X, y)
        if is_classifier(self):
            y = check_array(y, ensure_2d=False, dtype=None, input_name="y")
            check_classification_targets(y)
        else:
            y = check_array(y, ensure_2d=False, dtype="numeric", input_name="y")
        return y

    def _check_sample_weight(self, sample_weight, X):
        if sample_weight is None:
            return None
        return _check_sample_weight(sample_weight, X, ensure_non_negative=True)

    # --- fitting and predicting members ---------------------------------------------------------

    def _cv(self, y):
        return check_cv(self.cv, y, classifier=is_classifier(self))

    def _fit_members(self, X, y, checked, params, *, outputs):
        """Fit the members that need it; with ``outputs``, also return every member's outputs on ``X``.

        Members fitted here give out-of-fold outputs, prefit ones their
        (cached) outputs. Sets ``estimators_`` and ``named_estimators_``;
        returns the outputs (None without ``outputs``).
        """
        todo = [i for i, p in enumerate(checked.prefit) if not p]
        cv = self._cv(y) if outputs and todo else None
        fitted, oof = fit_members(
            [checked.members[i] for i in todo], X, y,
            names=[checked.names[i] for i in todo], params=[params[checked.names[i]] for i in todo],
            cv=cv, methods=[checked.methods[i] for i in todo], n_jobs=self.n_jobs, verbose=self.verbose,
            owner=self._log_name,
        )
        estimators = list(checked.members)
        for i, est in zip(todo, fitted):
            estimators[i] = est
        self.estimators_ = estimators
        by_name = dict(zip(checked.names, estimators))
        self.named_estimators_ = Bunch(**{name: by_name.get(name, "drop") for name in checked.all_names})
        if not outputs:
            return None
        outputs = [None] * len(estimators)
        for i, out in zip(todo, oof or []):
            outputs[i] = check_output(checked.names[i], out)
        done = [i for i, p in enumerate(checked.prefit) if p]
        predicted = self._predict_members([checked.names[i] for i in done], [estimators[i] for i in done],
                                          [checked.methods[i] for i in done], X)
        for i, out in zip(done, predicted):
            outputs[i] = out
        return outputs

    def _predict_members(self, names, members, methods, X):
        """Each member's ``methods[i]`` output on ``X`` (cached, in threads), in order."""
        outputs = [None] * len(members)
        for method in dict.fromkeys(methods):
            idx = [i for i, m in enumerate(methods) if m == method]
            outs = predict_members([names[i] for i in idx], [members[i] for i in idx], X, method,
                                   memory=check_cache(self.memory), n_jobs=self.n_jobs, progress=bool(self.verbose))
            for i, out in zip(idx, outs):
                outputs[i] = out
        return outputs

    def _active_names(self):
        """Names of the non-dropped members, in the order of ``estimators_``."""
        return [name for name, est in self.named_estimators_.items() if not is_drop(est)]


def _clone_item(item):
    if _is_pair(item):
        return (item[0], _clone_item(item[1]))
    if is_drop(item) or kind_of(item) is not None:
        return item
    return clone(item, safe=False)


def _shape(X):
    """``X``'s shape (``(len(X),)`` for ragged sequences); ``()`` for scalars."""
    shape = getattr(X, "shape", None)
    if shape is not None:
        return tuple(shape)
    if isinstance(X, (str, bytes)) or not (hasattr(X, "__len__") or hasattr(X, "__array__")):
        return ()
    try:
        return np.asarray(X).shape
    except ValueError:  # ragged nested lists
        return (len(X),)


def _is_table(X):
    """Whether ``X`` is a 2-D numeric array, a sparse matrix or a data frame (has features)."""
    if sp.issparse(X):
        return True
    if hasattr(X, "columns") and len(_shape(X)) == 2:
        return True
    if not hasattr(X, "shape") or not hasattr(X, "dtype"):
        try:
            X = np.asarray(X)
        except (TypeError, ValueError):
            return False
    return len(X.shape) == 2 and X.dtype.kind in "biuf"


def prefit_classes(names, members, prefit):
    """The classes all prefit classifiers agree on, or None without prefit classifiers."""
    found = []
    for name, member, is_pre in zip(names, members, prefit):
        classes = getattr(member, "classes_", None) if is_pre else None
        if classes is not None:
            found.append((name, np.asarray(classes)))
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
            f"(their classes: {classes.tolist()}); label the members' outputs (for a Keras model, "
            "KerasMember(model, classes=...))"
        )


def encode_classes(y, names, members, prefit):
    """``(classes, y_classes, y_codes, present)`` for a classifier ensemble.

    ``classes`` are the prefit classifiers' classes, else those of ``y``;
    members and meta-learners fitted here see ``y_codes``, the indices of
    ``y`` in ``y_classes`` (contiguous, as XGBoost needs), and
    ``present[c]`` is the column of ``classes`` of code ``c``.
    """
    y_classes = np.unique(y)
    classes = prefit_classes(names, members, prefit)
    if classes is None:
        classes = y_classes
    check_labels(y_classes, classes, names, prefit)
    return classes, y_classes, np.searchsorted(y_classes, y), np.searchsorted(classes, y_classes)
