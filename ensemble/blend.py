"""Blending: a weighted average of the members' probabilities or predictions."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.utils import Bunch
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ensemble import solvers
from ensemble._base import _BaseEnsemble, check_labels, prefit_classes
from ensemble._cache import check_cache
from ensemble._keras import KerasMember, fuse
from ensemble._members import check_output, fit_members, predict_members

_METHODS = ("mean", "slsqp", "nnls", "caruana")
_FAST_SCORING = (None, "neg_log_loss", "neg_mean_squared_error")


class _BaseBlend(_BaseEnsemble):
    """Fitting and applying blend weights; subclasses define targets and alignment."""

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
        cv=5,
        memory=None,
        n_jobs=None,
        random_state=None,
    ):
        self.estimators = estimators
        self.method = method
        self.weights = weights
        self.scoring = scoring
        self.ensemble_size = ensemble_size
        self.n_init = n_init
        self.n_bags = n_bags
        self.bag_fraction = bag_fraction
        self.cv = cv
        self.memory = memory
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _check_params(self, n_members):
        if self.method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}; got {self.method!r}")
        if self.weights is not None:
            if self.method != "mean":
                raise ValueError(f"weights are fixed by the user only with method='mean'; got method={self.method!r}")
            w = np.asarray(self.weights, dtype=np.float64)
            if w.shape != (n_members,):
                raise ValueError(f"weights must have one entry per member ({n_members}); got {len(np.atleast_1d(w))}")
            if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise ValueError(f"weights must be finite, non-negative and not all zero; got {w.tolist()}")
        if self.method == "caruana":
            for name in ("ensemble_size", "n_init", "n_bags"):
                value = getattr(self, name)
                if not isinstance(value, Integral) or value < 1:
                    raise ValueError(f"{name} must be a positive integer; got {value!r}")
            if not isinstance(self.bag_fraction, Real) or not 0 < self.bag_fraction <= 1:
                raise ValueError(f"bag_fraction must be in (0, 1]; got {self.bag_fraction!r}")

    def _fit(self, X, checked, response, y_members, y_solver, columns):
        """Fit members and weights. ``columns(i, est)`` maps member outputs to ours."""
        names, members, prefit = checked
        learn = self.method != "mean"
        todo = [i for i, p in enumerate(prefit) if not p]
        cv = check_cv(self.cv, y_members, classifier=is_classifier(self)) if learn else None
        fitted, oof = fit_members([members[i] for i in todo], X, y_members, cv=cv, method=response, n_jobs=self.n_jobs)
        estimators = list(members)
        for i, est in zip(todo, fitted):
            estimators[i] = est
        self.estimators_ = estimators
        self.named_estimators_ = Bunch(**dict(zip(names, estimators)))
        self._columns = [columns(i, est) for i, est in enumerate(estimators)]

        if not learn:
            w = np.ones(len(members)) if self.weights is None else np.asarray(self.weights, dtype=np.float64)
            self.weights_ = w / w.sum()
            return self
        outputs = [None] * len(members)
        for i, out in zip(todo, oof):
            outputs[i] = check_output(names[i], out)
        done = [i for i, p in enumerate(prefit) if p]
        cached = predict_members(
            [names[i] for i in done], [members[i] for i in done], X, response,
            memory=check_cache(self.memory), n_jobs=self.n_jobs,
        )
        for i, out in zip(done, cached):
            outputs[i] = out
        P = np.stack([self._align(names[i], out, self._columns[i]) for i, out in enumerate(outputs)])
        self.weights_ = self._solve(P, y_solver)
        return self

    def _solve(self, P, y):
        if self.method == "slsqp":
            return solvers.slsqp_weights(P, y)
        if self.method == "nnls":
            return solvers.nnls_weights(P, y)
        return solvers.caruana_weights(
            P, y, score=self._caruana_score(), ensemble_size=self.ensemble_size, n_init=self.n_init,
            n_bags=self.n_bags, bag_fraction=self.bag_fraction, random_state=self.random_state,
        )

    def _outputs(self, X, response):
        """Outputs, names and indices of the members with non-zero weight."""
        check_is_fitted(self)
        self._check_X(X, reset=False)
        used = np.flatnonzero(self.weights_ > 0)
        all_names = list(self.named_estimators_)
        names = [all_names[i] for i in used]
        outputs = predict_members(
            names, [self.estimators_[i] for i in used], X, response,
            memory=check_cache(self.memory), n_jobs=self.n_jobs,
        )
        return outputs, names, used

    def _average(self, X, response):
        outputs, names, used = self._outputs(X, response)
        total = 0.0
        for name, i, out in zip(names, used, outputs):
            total = total + self.weights_[i] * self._align(name, out, self._columns[i])
        return total

    def to_keras(self):
        """One ``keras.Model`` computing the blend, members called as layers.

        Requires every member to be a Keras model (or :class:`KerasMember`)
        taking the same input. The weighted average is a frozen ``Dense``
        layer; classifier outputs follow ``classes_``.

        Returns
        -------
        model : keras.Model
        """
        check_is_fitted(self)
        if getattr(self, "voting", "soft") != "soft":
            raise ValueError("to_keras() needs voting='soft'")
        names = list(self.named_estimators_)
        others = [n for n, est in zip(names, self.estimators_) if not isinstance(est, KerasMember)]
        if others:
            raise ValueError(f"to_keras() needs Keras members only; not Keras: {others}")
        return fuse(self.estimators_, self.weights_, names)


class BlendClassifier(ClassifierMixin, _BaseBlend):
    """Weighted average of the members' class probabilities.

    Parameters
    ----------
    estimators : list of (str, estimator) or of estimators
        Members. Keras models, :class:`KerasMember` and
        ``sklearn.frozen.FrozenEstimator`` are prefit and used as-is; other
        estimators are cloned and fitted (encoded labels ``0 .. k-1``).
        Bare estimators are named after their class.
    method : {"mean", "slsqp", "nnls", "caruana"}, default="mean"
        How to weight the members: equal (or ``weights``); minimum log loss on
        the simplex (SLSQP); non-negative least squares on one-hot targets;
        Caruana's greedy selection. Learned weights use the prefit members'
        predictions on the given data and out-of-fold (``cv``) predictions of
        the others, which are then refit on all of it.
    weights : array-like of shape (n_members,), default=None
        Fixed non-negative weights for ``method="mean"``; normalised to sum to 1.
    voting : {"soft", "hard"}, default="soft"
        Average probabilities, or take a weighted majority vote of the
        members' ``predict``.
    scoring : str or callable, default=None
        Scikit-learn scorer maximised by ``method="caruana"``; None means
        negative log loss.
    ensemble_size, n_init, n_bags, bag_fraction :
        Caruana's selection: number of selections, sorted initialisation
        size, number of bags and fraction of members per bag.
    cv : int, cross-validation generator or iterable, default=5
        Folds for out-of-fold predictions of unfitted members.
    memory : str, joblib.Memory or None, default=None
        Cache for member predictions, keyed by member fingerprint and
        ``joblib.hash(X)``.
    n_jobs : int, default=None
        Parallel member fits (processes) and predictions (threads).
    random_state : int, RandomState instance or None, default=None
        Draws Caruana's bags.

    Attributes
    ----------
    estimators_ : list
        Fitted members (Keras models wrapped in :class:`KerasMember`).
    named_estimators_ : Bunch
        Fitted members by name.
    weights_ : ndarray of shape (n_members,)
        Non-negative weights summing to 1.
    classes_ : ndarray of shape (n_classes,)
        Class labels: those of the prefit members, else those of ``y``.
    n_features_in_ : int
        Number of features, when ``X`` is a 2-D numeric array.
    """

    def __init__(
        self,
        estimators,
        *,
        method="mean",
        weights=None,
        voting="soft",
        scoring=None,
        ensemble_size=25,
        n_init=1,
        n_bags=1,
        bag_fraction=0.5,
        cv=5,
        memory=None,
        n_jobs=None,
        random_state=None,
    ):
        super().__init__(
            estimators, method=method, weights=weights, scoring=scoring, ensemble_size=ensemble_size,
            n_init=n_init, n_bags=n_bags, bag_fraction=bag_fraction, cv=cv, memory=memory,
            n_jobs=n_jobs, random_state=random_state,
        )
        self.voting = voting

    def fit(self, X, y):
        """Fit the members that need it and the weights.

        Parameters
        ----------
        X : array-like
            Raw inputs, passed unchanged to every member.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : BlendClassifier
        """
        if self.voting not in ("soft", "hard"):
            raise ValueError(f"voting must be 'soft' or 'hard'; got {self.voting!r}")
        y = self._check_y(X, y)
        response = "predict" if self.voting == "hard" and self.method == "mean" else "predict_proba"
        checked = names, members, prefit = self._check_members(response, X)
        self._check_params(len(members))
        self._check_X(X, reset=True)
        y_classes = np.unique(y)
        classes = prefit_classes(names, members, prefit)
        if classes is None:
            classes = y_classes
        check_labels(y_classes, classes, names, prefit)
        self.classes_ = classes
        y_index = np.searchsorted(classes, y)
        present = np.searchsorted(classes, y_classes)  # our columns of the labels in y

        def columns(i, est):  # members we fit saw codes 0 .. len(present) - 1
            return np.arange(len(classes)) if prefit[i] else present[np.asarray(est.classes_)]

        return self._fit(X, checked, response, np.searchsorted(y_classes, y), y_index, columns)

    def _align(self, name, proba, columns):
        if proba.ndim != 2 or proba.shape[1] != len(columns):
            raise ValueError(f"Member {name!r} predicted probabilities of shape {proba.shape} for {len(columns)} classes")
        if len(columns) == len(self.classes_):  # columns are increasing: all classes, in order
            return proba
        full = np.zeros((proba.shape[0], len(self.classes_)))
        full[:, columns] = proba
        return full

    def _member_classes(self, i):
        """Label of each output column of member ``i``."""
        return self.classes_[self._columns[i]]

    def _caruana_score(self):
        if self.scoring in _FAST_SCORING:
            return None
        scorer = check_scoring(self, scoring=self.scoring)
        classes = self.classes_
        return lambda y, proba: scorer(_Precomputed(proba, classes), None, classes[y])

    def _soft(self):
        return self.voting == "soft"

    @available_if(_soft)
    def predict_proba(self, X):
        """Weighted average of the members' probabilities.

        Parameters
        ----------
        X : array-like
            Raw inputs.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        return self._average(X, "predict_proba")

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
        labels, names, used = self._outputs(X, "predict")
        votes = 0.0
        for i, pred in zip(used, labels):
            member_classes = np.asarray(self.estimators_[i].classes_)
            codes = self._columns[i][np.searchsorted(member_classes, pred)]
            votes = votes + self.weights_[i] * np.eye(len(self.classes_))[codes]
        return self.classes_[np.argmax(votes, axis=1)]


class BlendRegressor(RegressorMixin, _BaseBlend):
    """Weighted average of the members' predictions.

    Parameters
    ----------
    estimators : list of (str, estimator) or of estimators
        Members; see :class:`BlendClassifier`.
    method : {"mean", "slsqp", "nnls", "caruana"}, default="mean"
        How to weight the members; SLSQP minimises squared error.
    weights : array-like of shape (n_members,), default=None
        Fixed non-negative weights for ``method="mean"``.
    scoring : str or callable, default=None
        Scorer maximised by ``method="caruana"``; None means negative mean
        squared error.
    ensemble_size, n_init, n_bags, bag_fraction, cv, memory, n_jobs, random_state :
        See :class:`BlendClassifier`.

    Attributes
    ----------
    estimators_ : list
        Fitted members.
    named_estimators_ : Bunch
        Fitted members by name.
    weights_ : ndarray of shape (n_members,)
        Non-negative weights summing to 1.
    n_features_in_ : int
        Number of features, when ``X`` is a 2-D numeric array.
    """

    def fit(self, X, y):
        """Fit the members that need it and the weights.

        Parameters
        ----------
        X : array-like
            Raw inputs, passed unchanged to every member.
        y : array-like of shape (n_samples,)
            Targets.

        Returns
        -------
        self : BlendRegressor
        """
        y = self._check_y(X, y)
        checked = self._check_members("predict", X)
        self._check_params(len(checked[1]))
        self._check_X(X, reset=True)
        return self._fit(X, checked, "predict", y, y, lambda i, est: None)

    def _align(self, name, pred, columns):
        pred = pred.reshape(pred.shape[0], -1)
        if pred.shape[1] != 1:
            raise ValueError(f"Member {name!r} predicted shape {pred.shape}; expected one target")
        return pred[:, 0]

    def _caruana_score(self):
        if self.scoring in _FAST_SCORING:
            return None
        scorer = check_scoring(self, scoring=self.scoring)
        return lambda y, pred: scorer(_Precomputed(pred), None, y)

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
