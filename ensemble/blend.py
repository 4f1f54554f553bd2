"""Blending: a weighted average of the members' probabilities or predictions."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import check_scoring
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from ensemble import solvers
from ensemble._base import _BaseEnsemble, encode_classes
from ensemble._keras import fuse
from ensemble._members import is_drop
from ensemble.calibration import apply_temperature, calibrating, fit_temperature
from ensemble.kinds import kind_of

_METHODS = ("mean", "slsqp", "nnls", "caruana")
_FAST_SCORING = (None, "neg_log_loss", "neg_mean_squared_error")


class _BaseBlend(_BaseEnsemble):
    """Fitting and applying blend weights; subclasses define targets and alignment."""

    _log_name = "Voting"

    def __init__(
        self,
        estimators,
        *,
        method="mean",
        weights=None,
        scoring=None,
        ensemble_size=25,
        n_init=1,
        n_bags=1,
        bag_fraction=0.5,
        n_best=None,
        cv=5,
        memory=None,
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.estimators = estimators
        self.method = method
        self.weights = weights
        self.scoring = scoring
        self.ensemble_size = ensemble_size
        self.n_init = n_init
        self.n_bags = n_bags
        self.bag_fraction = bag_fraction
        self.n_best = n_best
        self.cv = cv
        self.memory = memory
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self, checked):
        if self.method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}; got {self.method!r}")
        if self.weights is not None:
            if self.method != "mean":
                raise ValueError(f"weights are fixed by the user only with method='mean'; got method={self.method!r}")
            w = np.asarray(self.weights, dtype=np.float64)
            n = len(checked.all_names)
            if w.ndim != 1 or len(w) != n:
                raise ValueError(
                    f"Number of `estimators` and weights must be equal; got {len(np.atleast_1d(w))} weights, {n} estimators"
                )
            active = w[[checked.all_names.index(name) for name in checked.names]]
            if not np.all(np.isfinite(w)) or np.any(w < 0) or active.sum() <= 0:
                raise ValueError(
                    f"weights must be finite, non-negative and not all zero for the members not dropped; got {w.tolist()}"
                )
        if self.method == "caruana":
            for name in ("ensemble_size", "n_init", "n_bags"):
                value = getattr(self, name)
                if not isinstance(value, Integral) or value < 1:
                    raise ValueError(f"{name} must be a positive integer; got {value!r}")
            if not isinstance(self.bag_fraction, Real) or not 0 < self.bag_fraction <= 1:
                raise ValueError(f"bag_fraction must be in (0, 1]; got {self.bag_fraction!r}")
            if self.n_best is not None and (not isinstance(self.n_best, Integral) or self.n_best < 1):
                raise ValueError(f"n_best must be None or a positive integer; got {self.n_best!r}")

    def _fit_blend(self, X, y_members, y_solver, checked, params, sample_weight, columns):
        """Fit members and weights; ``columns(i, est, prefit)`` maps member ``i``'s outputs to ours."""
        learn = self.method != "mean"
        calibrate = self._calibrating()
        outputs = self._fit_members(X, y_members, checked, params, outputs=learn or calibrate)
        self._columns = [columns(est, p) for est, p in zip(self.estimators_, checked.prefit)]
        self._fit_temperatures(checked, outputs if calibrate else None, y_solver, sample_weight)
        active = [checked.all_names.index(name) for name in checked.names]
        weights = np.zeros(len(checked.all_names))
        P = None
        if learn or calibrate:
            P = np.stack([self._align(name, out, i) for i, (name, out) in enumerate(zip(checked.names, outputs))])
        if learn:
            weights[active] = self._solve(P, y_solver, sample_weight)
        else:
            w = np.ones(len(active)) if self.weights is None else np.asarray(self.weights, dtype=np.float64)[active]
            weights[active] = w / w.sum()
        self.weights_ = weights
        self._fit_blend_temperature(P if calibrate else None, weights[active], y_solver, sample_weight)
        return self

    def _solve(self, P, y, sample_weight):
        if self.method == "slsqp":
            return solvers.slsqp_weights(P, y, sample_weight=sample_weight)
        if self.method == "nnls":
            return solvers.nnls_weights(P, y, sample_weight=sample_weight)
        return solvers.caruana_weights(
            P, y, score=self._caruana_score(), sample_weight=sample_weight, ensemble_size=self.ensemble_size,
            n_init=self.n_init, n_bags=self.n_bags, bag_fraction=self.bag_fraction, n_best=self.n_best,
            random_state=self.random_state,
        )

    def _calibrating(self):
        """Whether probabilities are temperature-scaled (never for regressors)."""
        return False

    def _fit_temperatures(self, checked, outputs, y, sample_weight):
        """Fit the members' temperatures on their ``outputs`` (classifiers)."""

    def _fit_blend_temperature(self, P, weights, y, sample_weight):
        """Fit the temperature of the blend ``weights @ P`` (classifiers)."""

    def _active_weights(self):
        """``weights_`` of the members in ``estimators_`` (dropped members left out)."""
        return np.array([w for w, est in zip(self.weights_, self.named_estimators_.values()) if not is_drop(est)])

    def _member_outputs(self, X, response, *, used_only):
        """Positions in ``estimators_``, raw outputs and weights of the members (with non-zero weight, if ``used_only``)."""
        check_is_fitted(self)
        self._check_X(X, reset=False)
        weights = self._active_weights()
        idx = np.flatnonzero(weights > 0) if used_only else np.arange(len(weights))
        names = self._active_names()
        outputs = self._predict_members(
            [names[i] for i in idx], [self.estimators_[i] for i in idx], [response] * len(idx), X
        )
        return idx, outputs, weights[idx]

    def _aligned(self, X, response, *, used_only):
        idx, outputs, w = self._member_outputs(X, response, used_only=used_only)
        names = self._active_names()
        return [self._align(names[i], out, i) for i, out in zip(idx, outputs)], w

    def _average(self, X, response):
        """Weighted average as ``numpy.average``, as scikit-learn's voting estimators compute it."""
        outputs, w = self._aligned(X, response, used_only=True)
        return np.average(np.asarray(outputs), axis=0, weights=None if np.all(w == w[0]) else w)

    def to_keras(self):
        """One ``keras.Model`` computing the blend, members called as layers.

        Requires every member to be a Keras model (or :class:`KerasMember`:
        a member kind whose ``fuses_to_keras`` is true) taking the same
        input. The weighted average is a frozen ``Dense``
        layer; classifier outputs follow ``classes_``. A calibrated blend's
        temperatures (each member's, then the blend's) are blocks of built-in
        Keras operations, so the model saved as ``.keras`` loads with
        ``safe_mode=True`` without importing this package.

        Returns
        -------
        model : keras.Model

        Raises
        ------
        ValueError
            For hard voting, a member that is not a Keras model, or members
            taking different inputs.
        """
        check_is_fitted(self)
        if getattr(self, "voting", "soft") != "soft":
            raise ValueError("to_keras() needs voting='soft'")
        names = self._active_names()
        others = [n for n, est in zip(names, self.estimators_) if not getattr(kind_of(est), "fuses_to_keras", False)]
        if others:
            raise ValueError(f"to_keras() needs Keras members only; not Keras: {others}")
        return fuse(
            self.estimators_, self._active_weights(), names, self._active_temperatures(),
            float(getattr(self, "blend_temperature_", 1.0)),
        )

    def _active_temperatures(self):
        """Temperature of each member of ``estimators_`` (ones for regressors)."""
        return np.ones(len(self.estimators_))

    def _feature_names(self, input_features, suffixes):
        check_is_fitted(self)
        _check_feature_names_in(self, input_features, generate_names=False)
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}_{name}{s}" for name in self._active_names() for s in suffixes], dtype=object)


class BlendClassifier(ClassifierMixin, _BaseBlend):
    """Weighted average of the members' class probabilities, or weighted vote.

    A superset of ``sklearn.ensemble.VotingClassifier``: same parameters
    (``estimators``, ``voting``, ``weights``, ``n_jobs``,
    ``flatten_transform``, ``verbose``) and methods, plus learned weights,
    prefit members and a prediction cache.

    Parameters
    ----------
    estimators : list of (str, estimator) or of estimators
        Members; a member set to ``"drop"`` (in the list or with
        ``set_params(name="drop")``) is left out. Keras models,
        :class:`KerasMember`, models of other registered member kinds
        (:mod:`ensemble.kinds`) and ``sklearn.frozen.FrozenEstimator`` are
        prefit and used as-is; other estimators are cloned and fitted (encoded labels
        ``0 .. k-1``). Bare estimators are named after their class.
    method : {"mean", "slsqp", "nnls", "caruana"}, default="mean"
        How to weight the members: equal (or ``weights``); minimum log loss on
        the simplex (SLSQP); non-negative least squares on one-hot targets;
        Caruana's greedy selection. Learned weights use the members' predicted
        probabilities: the prefit members' on the given data, out-of-fold
        (``cv``) ones for the others, which are then refit on all of it.
    weights : array-like of shape (n_members,), default=None
        Fixed non-negative weights for ``method="mean"``, one per member
        (dropped ones included, and ignored); normalised to sum to 1.
    voting : {"soft", "hard"}, default="soft"
        Average probabilities, or take a weighted majority vote of the
        members' ``predict`` (members need no ``predict_proba`` then, unless
        the weights are learned).
    flatten_transform : bool, default=True
        With ``voting="soft"``, :meth:`transform` returns
        ``(n_samples, n_members * n_classes)``; else
        ``(n_members, n_samples, n_classes)``.
    scoring : str or callable, default=None
        Scikit-learn scorer maximised by ``method="caruana"``; None means
        negative log loss.
    ensemble_size, n_init, n_bags, bag_fraction, n_best :
        Caruana's selection: number of selections, sorted initialisation
        size, number of bags, fraction of members per bag, and library
        pruning to the ``n_best`` members best alone (None: all).
    calibrate : bool or "temperature", default=False
        Temperature scaling (see :mod:`ensemble.calibration`), fitted on the
        data the weights are fitted on (out-of-fold probabilities for the
        members fitted here): each member's probabilities are scaled before
        the weights are fitted and applied, so a well-ranked but under- or
        over-confident member is weighted for what it knows; then the blend
        itself gets one temperature, as the average of calibrated members is
        under-confident. ``True`` and ``"temperature"`` are the same. Needs
        ``voting="soft"``. Off by default: the zoo's members, trained alike,
        blend slightly better without it (``scripts/calibration_results.py``).
    cv : int, cross-validation generator, iterable or "prefit", default=5
        Folds for out-of-fold predictions of unfitted members (learned
        weights); ``"prefit"`` uses every member as it is (fitted).
    memory : str, joblib.Memory or None, default=None
        Folder caching member predictions (a ``joblib.Memory`` gives its
        location): sha256-verified ``.npy`` files keyed by member fingerprint,
        method and ``ensemble.chunked.data_hash(X)`` (read chunk by chunk), never unpickled.
    n_jobs : int, default=None
        Parallel member fits (processes) and predictions (threads).
    random_state : int, RandomState instance or None, default=None
        Draws Caruana's bags.
    verbose : int, default=0
        Print the time each member's fit takes (``[Voting] (1 of 3)
        Processing <name>, total=...``, as scikit-learn), and show progress
        bars on stderr for member fits, out-of-fold and member predictions
        that take more than two seconds.

    Attributes
    ----------
    estimators_ : list
        Fitted members, dropped ones left out (Keras models wrapped in
        :class:`KerasMember`).
    named_estimators_ : Bunch
        Every member by name, ``"drop"`` for dropped ones.
    weights_ : ndarray of shape (n_members,)
        Non-negative weights summing to 1, one per member of ``estimators``
        (0 for dropped ones), in the order of ``named_estimators_``.
    temperatures_ : ndarray of shape (n_members,)
        Each member's temperature, in the same order; 1.0 where not
        calibrated. :meth:`predict_proba` and :meth:`transform` use the
        scaled probabilities.
    blend_temperature_ : float
        Temperature of the weighted average (1.0 without ``calibrate``).
    classes_ : ndarray of shape (n_classes,)
        Class labels: those of the prefit members, else those of ``y``.
    n_features_in_ : int
        Number of features, when ``X`` is a 2-D numeric array or a data frame.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` is a data frame with string column names.
    """

    _member_kind = "classifier"

    def __init__(
        self,
        estimators,
        *,
        method="mean",
        weights=None,
        voting="soft",
        flatten_transform=True,
        scoring=None,
        ensemble_size=25,
        n_init=1,
        n_bags=1,
        bag_fraction=0.5,
        n_best=None,
        calibrate=False,
        cv=5,
        memory=None,
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        super().__init__(
            estimators, method=method, weights=weights, scoring=scoring, ensemble_size=ensemble_size,
            n_init=n_init, n_bags=n_bags, bag_fraction=bag_fraction, n_best=n_best, cv=cv, memory=memory,
            n_jobs=n_jobs, random_state=random_state, verbose=verbose,
        )
        self.voting = voting
        self.flatten_transform = flatten_transform
        self.calibrate = calibrate

    def fit(self, X, y, sample_weight=None, **fit_params):
        """Fit the members that need it and the weights.

        Parameters
        ----------
        X : array-like
            Raw inputs, passed unchanged to every member.
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples, given to the members fitted here and to
            the weight solvers.
        **fit_params : dict
            Metadata routed to the members (only with
            ``sklearn.set_config(enable_metadata_routing=True)``).

        Returns
        -------
        self : BlendClassifier
        """
        if self.voting not in ("soft", "hard"):
            raise ValueError(f"voting must be 'soft' or 'hard'; got {self.voting!r}")
        self._check_X(X, reset=True)
        y = self._check_y(X, y)
        sample_weight = self._check_sample_weight(sample_weight, X)
        learn = self.method != "mean"
        checked = self._check_members(X, "predict" if self.voting == "hard" else "predict_proba",
                                      sample_weight=sample_weight, fit_params=fit_params)
        if learn:
            for name, member in zip(checked.names, checked.members):
                if not hasattr(member, "predict_proba"):
                    raise ValueError(
                        f"Member {name!r} ({type(member).__name__}) has no predict_proba(), but method={self.method!r} "
                        "learns the weights from predicted probabilities; use method='mean' (with voting='hard', "
                        "members need only predict())"
                    )
        self._check_params(checked)
        params, _ = self._route_fit_params(checked, sample_weight, fit_params)
        classes, _, y_codes, present = encode_classes(y, checked.names, checked.members, checked.prefit)
        self.classes_ = classes

        def columns(est, prefit):  # members fitted here saw codes 0 .. len(present) - 1
            return np.arange(len(classes)) if prefit else present[np.asarray(est.classes_)]

        return self._fit_blend(X, y_codes, np.searchsorted(classes, y), checked, params, sample_weight, columns)

    def _calibrating(self):
        if not calibrating(self.calibrate):
            return False
        if self.voting == "hard":
            raise ValueError("calibrate scales probabilities: it needs voting='soft'")
        return True

    def _fit_temperatures(self, checked, outputs, y, sample_weight):
        """``temperatures_``: one per member, fitted on ``outputs`` (1.0 without them)."""
        temperatures = np.ones(len(checked.all_names))
        for i, out in enumerate(outputs or []):
            self._align(checked.names[i], out, i, calibrated=False)  # checks the shape
            position = np.full(len(self.classes_), -1)
            position[self._columns[i]] = np.arange(len(self._columns[i]))
            y_member = position[y]
            known = y_member >= 0  # classes the member never predicts: a loss no temperature changes
            sw = None if sample_weight is None else sample_weight[known]
            t = fit_temperature(out[known], y_member[known], sample_weight=sw)
            temperatures[checked.all_names.index(checked.names[i])] = t
        self.temperatures_ = temperatures

    def _fit_blend_temperature(self, P, weights, y, sample_weight):
        """``blend_temperature_``: fitted on the weighted average of ``P`` (1.0 without ``P``)."""
        self.blend_temperature_ = 1.0 if P is None else fit_temperature(np.tensordot(weights, P, axes=1), y, sample_weight=sample_weight)

    def _active_temperatures(self):
        """``temperatures_`` of the members in ``estimators_``; ones for ensembles saved without them."""
        temperatures = getattr(self, "temperatures_", None)
        if temperatures is None:
            return np.ones(len(self.estimators_))
        return np.array([t for t, est in zip(temperatures, self.named_estimators_.values()) if not is_drop(est)])

    def _align(self, name, proba, i, *, calibrated=True):
        """Member ``i``'s probabilities (temperature-scaled) as columns of ``classes_``."""
        columns = self._columns[i]
        if proba.ndim != 2 or proba.shape[1] != len(columns):
            raise ValueError(f"Member {name!r} predicted probabilities of shape {proba.shape} for {len(columns)} classes")
        if calibrated:
            proba = apply_temperature(proba, self._active_temperatures()[i])
        if len(columns) == len(self.classes_):  # columns are increasing: all classes, in order
            return proba
        full = np.zeros((proba.shape[0], len(self.classes_)))
        full[:, columns] = proba
        return full

    def _member_classes(self, i):
        """Label of each output column of member ``estimators_[i]``."""
        return self.classes_[self._columns[i]]

    def _caruana_score(self):
        if self.scoring in _FAST_SCORING:
            return None
        scorer = check_scoring(self, scoring=self.scoring)
        classes = self.classes_
        return lambda y, proba, **kw: scorer(_Precomputed(proba, classes), None, classes[y], **kw)

    def _soft(self):
        if self.voting != "soft":
            raise AttributeError(f"predict_proba is not available when voting={self.voting!r}")
        return True

    @available_if(_soft)
    def predict_proba(self, X):
        """Weighted average of the members' (temperature-scaled) probabilities.

        Parameters
        ----------
        X : array-like
            Raw inputs.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        return apply_temperature(self._average(X, "predict_proba"), getattr(self, "blend_temperature_", 1.0))

    def _votes(self, X, *, used_only):
        """Each member's predicted class as an index into ``classes_``, shape ``(n_members, n_samples)``."""
        idx, labels, w = self._member_outputs(X, "predict", used_only=used_only)
        codes = [
            self._columns[i][np.searchsorted(np.asarray(self.estimators_[i].classes_), np.ravel(label))]
            for i, label in zip(idx, labels)
        ]
        return np.asarray(codes, dtype=np.intp), w

    def predict(self, X):
        """Class with the highest average probability (soft) or weighted vote (hard).

        Parameters
        ----------
        X : array-like
            Raw inputs.

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        if self.voting == "soft":
            return self.classes_[self.predict_proba(X).argmax(axis=1)]
        codes, w = self._votes(X, used_only=True)
        votes = sum(wi * np.eye(len(self.classes_))[c] for wi, c in zip(w, codes))
        return self.classes_[np.argmax(votes, axis=1)]

    def transform(self, X):
        """Each member's (temperature-scaled) probabilities (soft voting) or predicted class index (hard voting).

        Parameters
        ----------
        X : array-like
            Raw inputs.

        Returns
        -------
        out : ndarray
            Soft voting: ``(n_samples, n_members * n_classes)``, or
            ``(n_members, n_samples, n_classes)`` without
            ``flatten_transform``; hard voting: ``(n_samples, n_members)``
            indices into ``classes_``. Dropped members are left out.
        """
        check_is_fitted(self)
        if self.voting == "hard":
            return self._votes(X, used_only=False)[0].T
        probas, _ = self._aligned(X, "predict_proba", used_only=False)
        return np.hstack(probas) if self.flatten_transform else np.asarray(probas)

    def get_feature_names_out(self, input_features=None):
        """Output feature names of :meth:`transform`: ``blendclassifier_<member><class index>`` (soft)
        or ``blendclassifier_<member>`` (hard).

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Not used; checked against ``feature_names_in_`` if given.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self)
        if self.voting == "soft" and not self.flatten_transform:
            raise ValueError(
                "get_feature_names_out is not supported when `voting='soft'` and `flatten_transform=False`"
            )
        suffixes = [""] if self.voting == "hard" else range(len(self.classes_))
        return self._feature_names(input_features, suffixes)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        return tags


class BlendRegressor(RegressorMixin, _BaseBlend):
    """Weighted average of the members' predictions.

    A superset of ``sklearn.ensemble.VotingRegressor`` (same parameters
    and methods), plus learned weights, prefit members and a prediction cache.

    Parameters
    ----------
    estimators : list of (str, estimator) or of estimators
        Members, ``"drop"`` to leave one out; see :class:`BlendClassifier`.
    method : {"mean", "slsqp", "nnls", "caruana"}, default="mean"
        How to weight the members; SLSQP and NNLS minimise squared error.
    weights : array-like of shape (n_members,), default=None
        Fixed non-negative weights for ``method="mean"``.
    scoring : str or callable, default=None
        Scorer maximised by ``method="caruana"``; None means negative mean
        squared error.
    ensemble_size, n_init, n_bags, bag_fraction, n_best, cv, memory, n_jobs, random_state, verbose :
        See :class:`BlendClassifier`.

    Attributes
    ----------
    estimators_ : list
        Fitted members, dropped ones left out.
    named_estimators_ : Bunch
        Every member by name, ``"drop"`` for dropped ones.
    weights_ : ndarray of shape (n_members,)
        Non-negative weights summing to 1, one per member (0 for dropped ones).
    n_features_in_ : int
        Number of features, when ``X`` is a 2-D numeric array or a data frame.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` is a data frame with string column names.
    """

    _member_kind = "regressor"

    def fit(self, X, y, sample_weight=None, **fit_params):
        """Fit the members that need it and the weights.

        Parameters
        ----------
        X : array-like
            Raw inputs, passed unchanged to every member.
        y : array-like of shape (n_samples,)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples, given to the members fitted here and to
            the weight solvers.
        **fit_params : dict
            Metadata routed to the members (with metadata routing enabled).

        Returns
        -------
        self : BlendRegressor
        """
        self._check_X(X, reset=True)
        y = self._check_y(X, y)
        sample_weight = self._check_sample_weight(sample_weight, X)
        checked = self._check_members(X, "predict", sample_weight=sample_weight, fit_params=fit_params)
        self._check_params(checked)
        params, _ = self._route_fit_params(checked, sample_weight, fit_params)
        return self._fit_blend(X, y, y, checked, params, sample_weight, lambda est, prefit: None)

    def _align(self, name, pred, i):
        pred = pred.reshape(pred.shape[0], -1)
        if pred.shape[1] != 1:
            raise ValueError(f"Member {name!r} predicted shape {pred.shape}; expected one target")
        return pred[:, 0]

    def _caruana_score(self):
        if self.scoring in _FAST_SCORING:
            return None
        scorer = check_scoring(self, scoring=self.scoring)
        return lambda y, pred, **kw: scorer(_Precomputed(pred), None, y, **kw)

    def predict(self, X):
        """Weighted average of the members' predictions.

        Parameters
        ----------
        X : array-like
            Raw inputs.

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        return self._average(X, "predict")

    def transform(self, X):
        """Each member's predictions.

        Parameters
        ----------
        X : array-like
            Raw inputs.

        Returns
        -------
        out : ndarray of shape (n_samples, n_members)
            Dropped members are left out.
        """
        preds, _ = self._aligned(X, "predict", used_only=False)
        return np.asarray(preds).T

    def get_feature_names_out(self, input_features=None):
        """Output feature names of :meth:`transform`: ``blendregressor_<member>``.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Not used; checked against ``feature_names_in_`` if given.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        return self._feature_names(input_features, [""])


class _Precomputed(BaseEstimator):
    """Serves fixed predictions to a scikit-learn scorer (Caruana with any ``scoring``)."""

    def __init__(self, pred, classes=None):
        self.pred = pred
        self.classes = classes

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor" if self.classes is None else "classifier"
        return tags

    @property
    def classes_(self):
        return self.classes

    def predict(self, X):
        if self.classes is None:
            return self.pred
        return self.classes[self.pred.argmax(axis=1)]

    def predict_proba(self, X):
        return self.pred
