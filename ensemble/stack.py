"""Stacking: a meta-learner fitted on the members' outputs."""

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    ClassifierMixin,
    RegressorMixin,
    clone,
    is_classifier,
    is_regressor,
)
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.utils.metadata_routing import (
    MethodMapping,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from ensemble._base import _BaseEnsemble, encode_classes
from ensemble._keras import fuse_stack
from ensemble._members import STACK_METHODS, check_sample_weight_support, is_drop
from ensemble.calibration import apply_temperature, calibrating, fit_temperature
from ensemble.kinds import kind_of


class _BaseStack(_BaseEnsemble):
    """Fitting the members and the meta-learner; subclasses define targets and outputs."""

    _log_name = "Stacking"

    def __init__(
        self, estimators, final_estimator=None, *, cv=5, passthrough=False, memory=None, n_jobs=None, verbose=0
    ):
        self.estimators = estimators
        self.final_estimator = final_estimator
        self.cv = cv
        self.passthrough = passthrough
        self.memory = memory
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _final(self):
        """The final estimator to clone: the given one, or the default (requesting
        ``sample_weight`` when metadata routing is enabled)."""
        if self.final_estimator is not None:
            return self.final_estimator
        final = self._default_final()
        return final.set_fit_request(sample_weight=True) if _routing_enabled() else final

    def get_metadata_routing(self):
        """Metadata routing: ``fit`` metadata go to the members fitted here and to the final
        estimator, ``predict`` metadata to the final estimator, as they request.

        Returns
        -------
        routing : MetadataRouter
        """
        router = super().get_metadata_routing()
        final = self.final_estimator_ if hasattr(self, "final_estimator_") else self._final()
        mapping = MethodMapping().add(caller="fit", callee="fit").add(caller="predict", callee="predict")
        return router.add(final_estimator=final, method_mapping=mapping)

    def _check_final(self, kind, check):
        final = self._final()
        if not check(final):
            raise ValueError(f"'final_estimator' parameter should be a {kind}. Got {final}")
        return clone(final)

    def _fit_stack(self, X, y, checked, final, sample_weight, fit_params, columns, y_index=None):
        """Fit the members (out-of-fold outputs for those fitted here) and the meta-learner on ``y``.

        ``y_index``: ``y`` as indices into ``classes_`` (classifiers), to fit the members' temperatures.
        """
        params, routed = self._route_fit_params(checked, sample_weight, fit_params)
        if routed is not None:
            final_params = routed["final_estimator"]["fit"]
        elif sample_weight is not None:
            check_sample_weight_support("final_estimator", final)
            final_params = {"sample_weight": sample_weight}
        else:
            final_params = {}
        outputs = self._fit_members(X, y, checked, params, outputs=True)
        self.stack_method_ = list(checked.methods)
        self._columns = [columns(est, p) for est, p in zip(self.estimators_, checked.prefit)]
        if y_index is not None:
            self._fit_temperatures(checked, outputs, y_index, sample_weight)
        columns = self._member_columns(outputs)
        self._n_feature_outs = [c.shape[1] for c in columns]
        final.fit(self._meta_features(X, columns), y, **final_params)
        self.final_estimator_ = final
        return self

    def _member_columns(self, outputs):
        """Each member's meta-features, 2-D (scikit-learn's scheme); probabilities temperature-scaled."""
        temperatures = self._active_temperatures()
        columns = []
        for i, out in enumerate(outputs):
            method = self.stack_method_[i]
            if method == "predict" and self._columns[i] is not None:  # labels -> class indices
                member_classes = np.asarray(self.estimators_[i].classes_)
                out = self._columns[i][np.searchsorted(member_classes, np.ravel(out))]
            if method == "predict_proba":
                out = apply_temperature(out, temperatures[i])
            if out.ndim == 1:
                out = out.reshape(-1, 1)
            elif method == "predict_proba" and len(getattr(self, "classes_", ())) == 2:
                out = out[:, 1:]  # binary: the two columns are collinear
            columns.append(out.reshape(out.shape[0], -1))
        return columns

    def _active_temperatures(self):
        """``temperatures_`` of the members in ``estimators_`` (ones for regressors and older saves)."""
        temperatures = getattr(self, "temperatures_", None)
        if temperatures is None:
            return np.ones(len(self.estimators_))
        return np.array([t for t, est in zip(temperatures, self.named_estimators_.values()) if not is_drop(est)])

    def _meta_features(self, X, columns):
        meta = np.hstack(columns)
        if not self.passthrough:
            return meta
        if sp.issparse(X):
            return sp.hstack([meta, X], format=X.format)
        X = np.asarray(X)
        return np.hstack([meta, X.reshape(X.shape[0], -1)])

    def transform(self, X):
        """Features of the final estimator: the members' outputs (and ``X`` with ``passthrough``).

        Parameters
        ----------
        X : array-like
            Raw inputs.

        Returns
        -------
        meta : ndarray or sparse matrix of shape (n_samples, n_meta_features)
        """
        check_is_fitted(self)
        self._check_X(X, reset=False)
        outputs = self._predict_members(self._active_names(), self.estimators_, self.stack_method_, X)
        return self._meta_features(X, self._member_columns(outputs))

    def get_feature_names_out(self, input_features=None):
        """Names of the :meth:`transform` columns: ``<classname>_<member>`` for a member's single
        column, ``<classname>_<member><i>`` for several, then the input features with ``passthrough``.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input feature names, used with ``passthrough``; default
            ``feature_names_in_`` or ``x0, x1, ...``.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self)
        input_features = _check_feature_names_in(self, input_features, generate_names=self.passthrough)
        prefix = type(self).__name__.lower()
        names = []
        for name, n_out in zip(self._active_names(), self._n_feature_outs):
            names.extend([f"{prefix}_{name}"] if n_out == 1 else [f"{prefix}_{name}{i}" for i in range(n_out)])
        if self.passthrough:
            return np.concatenate([np.asarray(names, dtype=object), input_features])
        return np.asarray(names, dtype=object)

    def _prepare(self, X, y, method, sample_weight, fit_params):
        self._check_X(X, reset=True)
        y = self._check_y(X, y)
        checked = self._check_members(X, method, sample_weight=sample_weight, fit_params=fit_params)
        if self.passthrough and not sp.issparse(X) and np.asarray(X).dtype.kind not in "biuf":
            raise ValueError(f"passthrough=True needs numeric X; got dtype {np.asarray(X).dtype}")
        return y, checked

    def _predict_params(self, predict_params):
        if _routing_enabled():
            return process_routing(self, "predict", **predict_params)["final_estimator"]["predict"]
        return predict_params


def _final_has(attr):
    def check(self):
        final = self.final_estimator_ if hasattr(self, "final_estimator_") else self._final()
        getattr(final, attr)  # raises the AttributeError that hides the method
        return True

    return check


class StackClassifier(ClassifierMixin, _BaseStack):
    """Meta-classifier on the members' outputs.

    A superset of ``sklearn.ensemble.StackingClassifier``: same parameters
    (``estimators``, ``final_estimator``, ``cv``, ``stack_method``,
    ``n_jobs``, ``passthrough``, ``verbose``) and methods, plus prefit
    members (Keras models, ``FrozenEstimator``) and a prediction cache.

    Parameters
    ----------
    estimators : list of (str, estimator) or of estimators
        Members, ``"drop"`` to leave one out; prefit ones (Keras models,
        :class:`KerasMember`, models of other registered member kinds,
        ``FrozenEstimator``) give their outputs on the
        training data, the others out-of-fold outputs (``cv``) and are then
        refit on all of it. Regressors are accepted (e.g. ordinal targets).
    final_estimator : classifier, default=None
        Meta-learner, fitted on labels encoded ``0 .. k-1`` (so XGBoost works);
        None means ``LogisticRegression()``.
    cv : int, cross-validation generator, iterable or "prefit", default=5
        Folds for the out-of-fold outputs; ``"prefit"`` uses every member as
        it is (fitted) and its outputs on the training data.
    stack_method : {"auto", "predict_proba", "decision_function", "predict"}, default="auto"
        Member method whose outputs feed the meta-learner; ``"auto"`` takes,
        per member, the first of ``predict_proba``, ``decision_function``,
        ``predict`` it has. ``predict`` outputs of classifiers are given as
        indices into ``classes_``.
    passthrough : bool, default=False
        Also give the meta-learner ``X`` (numeric, flattened to 2-D).
    calibrate : bool or "temperature", default=False
        Temperature-scale each member's ``predict_proba`` outputs before the
        meta-learner sees them, one temperature per member fitted on the
        data the meta-learner is fitted on (see :mod:`ensemble.calibration`).
    memory : str, joblib.Memory or None, default=None
        Folder caching member predictions as sha256-verified ``.npy`` files
        (see :class:`BlendClassifier`).
    n_jobs : int, default=None
        Parallel member fits (processes) and predictions (threads).
    verbose : int, default=0
        Print each member's fit time (``[Stacking] (1 of 3) Processing
        <name>, total=...``) and cross-validation progress, and show progress
        bars on stderr for member fits, out-of-fold and member predictions
        that take more than two seconds.

    Attributes
    ----------
    estimators_ : list
        Fitted members, dropped ones left out.
    named_estimators_ : Bunch
        Every member by name, ``"drop"`` for dropped ones.
    stack_method_ : list of str
        The method used for each member of ``estimators_``.
    temperatures_ : ndarray of shape (n_members,)
        Each member's temperature, in the order of ``named_estimators_``;
        1.0 where not calibrated (and for outputs other than probabilities).
    final_estimator_ : estimator
        The fitted meta-learner. Its inputs are, per member, its
        ``stack_method_`` outputs; for binary problems, the probability of
        the second class only.
    classes_ : ndarray of shape (n_classes,)
        Class labels: those of the prefit classifiers, else those of ``y``.
    n_features_in_ : int
        Number of features, when ``X`` is a 2-D numeric array or a data frame.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` is a data frame with string column names.
    """

    def __init__(
        self,
        estimators,
        final_estimator=None,
        *,
        cv=5,
        stack_method="auto",
        passthrough=False,
        calibrate=False,
        memory=None,
        n_jobs=None,
        verbose=0,
    ):
        super().__init__(
            estimators, final_estimator, cv=cv, passthrough=passthrough, memory=memory, n_jobs=n_jobs, verbose=verbose
        )
        self.stack_method = stack_method
        self.calibrate = calibrate

    def _default_final(self):
        return LogisticRegression()

    def fit(self, X, y, sample_weight=None, **fit_params):
        """Fit the members and the meta-learner.

        Parameters
        ----------
        X : array-like
            Raw inputs, passed unchanged to every member.
        y : array-like of shape (n_samples,)
            Class labels, at least two distinct ones.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples, given to the members fitted here
            (out-of-fold fits included) and to the meta-learner.
        **fit_params : dict
            Metadata routed to the members and the meta-learner (only with
            ``sklearn.set_config(enable_metadata_routing=True)``).

        Returns
        -------
        self : StackClassifier
        """
        if self.stack_method not in ("auto",) + STACK_METHODS:
            raise ValueError(f"stack_method must be one of {('auto',) + STACK_METHODS}; got {self.stack_method!r}")
        y, checked = self._prepare(X, y, self.stack_method, sample_weight, fit_params)
        final = self._check_final("classifier", is_classifier)
        sample_weight = self._check_sample_weight(sample_weight, X)
        classes, y_classes, y_codes, present = encode_classes(y, checked.names, checked.members, checked.prefit)
        if len(y_classes) < 2:
            raise ValueError(
                f"y has one class only ({y_classes.tolist()[0]!r}); StackClassifier needs at least two to fit its final estimator"
            )
        self.classes_ = classes
        # The final estimator's outputs are codes of y_classes, unless it is prefit (codes of classes_).
        self._final_columns = np.arange(len(classes)) if isinstance(final, FrozenEstimator) else present

        def columns(est, prefit):  # labels of a classifier member's outputs, as indices into classes_
            if not hasattr(est, "classes_"):
                return None
            return np.arange(len(classes)) if prefit else present[np.asarray(est.classes_)]

        calibrating(self.calibrate)  # checks the value before the members are fitted
        return self._fit_stack(X, y_codes, checked, final, sample_weight, fit_params, columns, present[y_codes])

    def _fit_temperatures(self, checked, outputs, y, sample_weight):
        """``temperatures_``: one per member, fitted on its ``predict_proba`` outputs when calibrating."""
        temperatures = np.ones(len(checked.all_names))
        for i, out in enumerate(outputs if calibrating(self.calibrate) else []):
            if self.stack_method_[i] != "predict_proba" or self._columns[i] is None:
                continue
            position = np.full(len(self.classes_), -1)
            position[self._columns[i]] = np.arange(len(self._columns[i]))
            known = position[y] >= 0  # classes the member never predicts: a loss no temperature changes
            sw = None if sample_weight is None else sample_weight[known]
            t = fit_temperature(out[known], position[y][known], sample_weight=sw)
            temperatures[checked.all_names.index(checked.names[i])] = t
        self.temperatures_ = temperatures

    def _member_classes(self, i):
        """Label of each output column of member ``estimators_[i]``."""
        return self.classes_[self._columns[i]]

    def _full(self, out, fill):
        """The final estimator's per-class ``out`` as columns of ``classes_``."""
        columns = self._final_columns[np.asarray(self.final_estimator_.classes_)]
        if len(columns) == len(self.classes_):
            return out
        full = np.full((out.shape[0], len(self.classes_)), fill)
        full[:, columns] = out
        return full

    @available_if(_final_has("predict"))
    def predict(self, X, **predict_params):
        """Class predicted by the meta-learner.

        Parameters
        ----------
        X : array-like
            Raw inputs.
        **predict_params : dict
            Passed to the final estimator's ``predict`` (routed, with
            metadata routing enabled).

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        params = self._predict_params(predict_params)
        codes = self.final_estimator_.predict(self.transform(X), **params)
        return self.classes_[self._final_columns[np.asarray(codes, dtype=np.intp)]]

    @available_if(_final_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities from the meta-learner, one column per entry of ``classes_``.

        Parameters
        ----------
        X : array-like
            Raw inputs.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self._full(self.final_estimator_.predict_proba(self.transform(X)), 0.0)

    @available_if(_final_has("decision_function"))
    def decision_function(self, X):
        """Decision function of the meta-learner.

        Parameters
        ----------
        X : array-like
            Raw inputs.

        Returns
        -------
        decision : ndarray of shape (n_samples,) or (n_samples, n_classes)
            One column per entry of ``classes_`` (``-inf`` for classes the
            final estimator never saw), or one score for binary problems.
        """
        check_is_fitted(self)
        out = self.final_estimator_.decision_function(self.transform(X))
        known = len(self.final_estimator_.classes_)
        if known < len(self.classes_) and np.ndim(out) == 1:
            raise ValueError(
                f"decision_function: the final estimator saw {known} of the {len(self.classes_)} classes and gives one "
                "score; use predict_proba"
            )
        return out if np.ndim(out) == 1 else self._full(out, -np.inf)

    def to_keras(self):
        """One ``keras.Model`` computing :meth:`predict_proba`, members called as layers.

        Fuses stacks whose members are all Keras models (or
        :class:`KerasMember`) taking the same input, stacked on their
        probabilities (``stack_method_`` ``"predict_proba"``), and whose
        meta-learner is a fitted ``LogisticRegression`` (or one wrapped in
        ``FrozenEstimator``) on those probabilities alone
        (``passthrough=False``). Member temperatures become blocks of
        built-in Keras operations and the meta-learner a frozen ``Dense``
        layer with a softmax, so the model saved as ``.keras`` loads with
        ``safe_mode=True`` without importing this package.

        Returns
        -------
        model : keras.Model

        Raises
        ------
        ValueError
            For anything else (named in the message): a member that is not a
            Keras model, another stack method, ``passthrough=True``, another
            meta-learner, or members taking different inputs.
        """
        check_is_fitted(self)
        names = self._active_names()
        others = [n for n, est in zip(names, self.estimators_) if not getattr(kind_of(est), "fuses_to_keras", False)]
        if others:
            raise ValueError(f"to_keras() needs Keras members only; not Keras: {others}")
        methods = {n: m for n, m in zip(names, self.stack_method_) if m != "predict_proba"}
        if methods:
            raise ValueError(f"to_keras() needs members stacked on predict_proba; got {methods}")
        if self.passthrough:
            raise ValueError("to_keras() cannot fuse passthrough=True: the meta-learner also reads the raw inputs")
        final = self.final_estimator_
        if isinstance(final, FrozenEstimator):
            final = final.estimator
        if not isinstance(final, LogisticRegression):
            raise ValueError(
                f"to_keras() fuses a LogisticRegression meta-learner only (a Dense layer); got {type(final).__name__}"
            )
        meta_columns = self._final_columns[np.asarray(final.classes_)]
        return fuse_stack(
            self.estimators_, names, self._active_temperatures(), final.coef_, final.intercept_, meta_columns,
            len(self.classes_), binary_features=len(self.classes_) == 2,
        )


class StackRegressor(RegressorMixin, _BaseStack):
    """Meta-regressor on the members' predictions.

    A superset of ``sklearn.ensemble.StackingRegressor`` (same parameters
    and methods), plus prefit members and a prediction cache.

    Parameters
    ----------
    estimators : list of (str, estimator) or of estimators
        Members, ``"drop"`` to leave one out; see :class:`StackClassifier`.
    final_estimator : regressor, default=None
        Meta-learner; None means ``RidgeCV()``.
    cv, passthrough, memory, n_jobs, verbose :
        See :class:`StackClassifier`.

    Attributes
    ----------
    estimators_ : list
        Fitted members, dropped ones left out.
    named_estimators_ : Bunch
        Every member by name, ``"drop"`` for dropped ones.
    stack_method_ : list of str
        ``"predict"`` for each member of ``estimators_``.
    final_estimator_ : estimator
        The fitted meta-learner, one input per member.
    n_features_in_ : int
        Number of features, when ``X`` is a 2-D numeric array or a data frame.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` is a data frame with string column names.
    """

    def _default_final(self):
        return RidgeCV()

    def fit(self, X, y, sample_weight=None, **fit_params):
        """Fit the members and the meta-learner.

        Parameters
        ----------
        X : array-like
            Raw inputs, passed unchanged to every member.
        y : array-like of shape (n_samples,)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples, given to the members fitted here and to
            the meta-learner.
        **fit_params : dict
            Metadata routed to the members and the meta-learner (with
            metadata routing enabled).

        Returns
        -------
        self : StackRegressor
        """
        y, checked = self._prepare(X, y, "predict", sample_weight, fit_params)
        final = self._check_final("regressor", is_regressor)
        sample_weight = self._check_sample_weight(sample_weight, X)
        return self._fit_stack(X, y, checked, final, sample_weight, fit_params, lambda est, prefit: None)

    @available_if(_final_has("predict"))
    def predict(self, X, **predict_params):
        """Prediction of the meta-learner.

        Parameters
        ----------
        X : array-like
            Raw inputs.
        **predict_params : dict
            Passed to the final estimator's ``predict`` (routed, with
            metadata routing enabled), e.g. ``return_std=True``.

        Returns
        -------
        y : ndarray of shape (n_samples,), or a tuple with ``return_std``
        """
        check_is_fitted(self)
        params = self._predict_params(predict_params)
        return self.final_estimator_.predict(self.transform(X), **params)


META_LEARNERS = ("logreg", "rf", "xgboost")


def meta_learner(name, random_state=0):
    """A meta-learner by name, as ``ensemble stack --meta`` uses it.

    Parameters
    ----------
    name : {"logreg", "rf", "xgboost"}
        Logistic regression, a random forest (300 trees, 3 examples per leaf)
        or XGBoost (300 rounds, depth 4, learning rate 0.05).
    random_state : int, default=0

    Returns
    -------
    estimator
        Unfitted.
    """
    if name == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=2000)
    if name == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=300, min_samples_leaf=3, n_jobs=-1, random_state=random_state)
    if name == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(n_estimators=300, learning_rate=0.05, max_depth=4, tree_method="hist", n_jobs=2,
                             random_state=random_state)
    raise ValueError(f"unknown meta-learner {name!r}; expected one of {', '.join(META_LEARNERS)}")
