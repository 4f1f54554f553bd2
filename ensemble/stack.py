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
from sklearn.model_selection import check_cv
from sklearn.utils import Bunch
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ensemble._base import _BaseEnsemble, check_labels, prefit_classes
from ensemble._cache import check_cache
from ensemble._keras import KerasMember
from ensemble._members import check_output, fit_members, predict_members


class _BaseStack(_BaseEnsemble):
    """Fitting the members and the meta-learner; subclasses define targets and outputs."""

    _response = None  # member method whose outputs feed the meta-learner

    def __init__(self, estimators, final_estimator=None, *, cv=5, passthrough=False, memory=None, n_jobs=None):
        self.estimators = estimators
        self.final_estimator = final_estimator
        self.cv = cv
        self.passthrough = passthrough
        self.memory = memory
        self.n_jobs = n_jobs

    def _fit(self, X, y, checked):
        """Fit members (out-of-fold outputs for those we train) and the meta-learner on ``y``."""
        names, members, prefit = checked
        final = clone(self._default_final() if self.final_estimator is None else self.final_estimator)
        todo = [i for i, p in enumerate(prefit) if not p]
        cv = check_cv(self.cv, y, classifier=is_classifier(self))
        fitted, oof = fit_members([members[i] for i in todo], X, y, cv=cv, method=self._response, n_jobs=self.n_jobs)
        estimators, outputs = list(members), [None] * len(members)
        for i, est, out in zip(todo, fitted, oof):
            estimators[i], outputs[i] = est, check_output(names[i], out)
        done = [i for i, p in enumerate(prefit) if p]
        predicted = predict_members(
            [names[i] for i in done], [members[i] for i in done], X, self._response,
            memory=check_cache(self.memory), n_jobs=self.n_jobs,
        )
        for i, out in zip(done, predicted):
            outputs[i] = out
        self.estimators_ = estimators
        self.named_estimators_ = Bunch(**dict(zip(names, estimators)))
        self.final_estimator_ = final.fit(self._meta_features(X, outputs), y)
        return self

    def _meta_features(self, X, outputs):
        columns = []
        for out in outputs:
            out = out.reshape(out.shape[0], -1)
            columns.append(out[:, 1:] if self._response == "predict_proba" and out.shape[1] == 2 else out)
        meta = np.hstack(columns)
        if not self.passthrough:
            return meta
        if sp.issparse(X):
            return sp.hstack([meta, X], format="csr")
        X = np.asarray(X)
        return np.hstack([meta, X.reshape(X.shape[0], -1)])

    def _transform(self, X):
        """Features given to the meta-learner: member outputs (and ``X`` if passthrough)."""
        check_is_fitted(self)
        self._check_X(X, reset=False)
        outputs = predict_members(
            list(self.named_estimators_), self.estimators_, X, self._response,
            memory=check_cache(self.memory), n_jobs=self.n_jobs,
        )
        return self._meta_features(X, outputs)

    def _prepare(self, X, y):
        y = self._check_y(X, y)
        checked = self._check_members(self._response, X)
        if self.passthrough and not sp.issparse(X) and np.asarray(X).dtype.kind not in "biuf":
            raise ValueError(f"passthrough=True needs numeric X; got dtype {np.asarray(X).dtype}")
        self._check_X(X, reset=True)
        return y, checked


def _final_has(attr):
    def check(self):
        if hasattr(self, "final_estimator_"):
            return hasattr(self.final_estimator_, attr)
        return hasattr(self._default_final() if self.final_estimator is None else self.final_estimator, attr)

    return check


class StackClassifier(ClassifierMixin, _BaseStack):
    """Meta-classifier on the members' class probabilities.

    Parameters
    ----------
    estimators : list of (str, estimator) or of estimators
        Members; prefit ones (Keras models, :class:`KerasMember`,
        ``FrozenEstimator``) give their predictions on the training data,
        the others out-of-fold predictions (``cv``) and are then refit on all
        of it.
    final_estimator : classifier, default=None
        Meta-learner, fitted on labels encoded ``0 .. k-1`` (so XGBoost works);
        None means ``LogisticRegression()``.
    cv : int, cross-validation generator or iterable, default=5
        Folds for the out-of-fold predictions.
    passthrough : bool, default=False
        Also give the meta-learner ``X`` (numeric, flattened to 2-D).
    memory : str, joblib.Memory or None, default=None
        Cache for member predictions.
    n_jobs : int, default=None
        Parallel member fits (processes) and predictions (threads).

    Attributes
    ----------
    estimators_ : list
        Fitted members.
    named_estimators_ : Bunch
        Fitted members by name.
    final_estimator_ : estimator
        The fitted meta-learner. Its inputs are, per member, the probability
        of the second class for binary problems, all probabilities otherwise.
    classes_ : ndarray of shape (n_classes,)
        Class labels of ``y``.
    n_features_in_ : int
        Number of features, when ``X`` is a 2-D numeric array.
    """

    _response = "predict_proba"

    def _default_final(self):
        return LogisticRegression()

    def fit(self, X, y):
        """Fit the members and the meta-learner.

        Parameters
        ----------
        X : array-like
            Raw inputs, passed unchanged to every member.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : StackClassifier
        """
        y, checked = self._prepare(X, y)
        names, members, prefit = checked
        if self.final_estimator is not None and not is_classifier(self.final_estimator):
            raise ValueError(f"final_estimator must be a classifier; got {self.final_estimator!r}")
        self.classes_ = np.unique(y)
        classes = prefit_classes(names, members, prefit)
        if classes is not None:
            check_labels(self.classes_, classes, names, prefit)
        return self._fit(X, np.searchsorted(self.classes_, y), checked)

    def _member_classes(self, i):
        """Label of each output column of member ``i`` (members we fit saw codes)."""
        member = self.estimators_[i]
        if isinstance(member, (KerasMember, FrozenEstimator)):
            return np.asarray(member.classes_)
        return self.classes_[member.classes_]

    def predict(self, X):
        """Class predicted by the meta-learner.

        Parameters
        ----------
        X : array-like
            Raw inputs.

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        meta = self._transform(X)
        return self.classes_[self.final_estimator_.predict(meta)]

    @available_if(_final_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities from the meta-learner.

        Parameters
        ----------
        X : array-like
            Raw inputs.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        meta = self._transform(X)
        return self.final_estimator_.predict_proba(meta)


class StackRegressor(RegressorMixin, _BaseStack):
    """Meta-regressor on the members' predictions.

    Parameters
    ----------
    estimators : list of (str, estimator) or of estimators
        Members; see :class:`StackClassifier`.
    final_estimator : regressor, default=None
        Meta-learner; None means ``RidgeCV()``.
    cv, passthrough, memory, n_jobs :
        See :class:`StackClassifier`.

    Attributes
    ----------
    estimators_ : list
        Fitted members.
    named_estimators_ : Bunch
        Fitted members by name.
    final_estimator_ : estimator
        The fitted meta-learner, one input per member.
    n_features_in_ : int
        Number of features, when ``X`` is a 2-D numeric array.
    """

    _response = "predict"

    def _default_final(self):
        return RidgeCV()

    def fit(self, X, y):
        """Fit the members and the meta-learner.

        Parameters
        ----------
        X : array-like
            Raw inputs, passed unchanged to every member.
        y : array-like of shape (n_samples,)
            Targets.

        Returns
        -------
        self : StackRegressor
        """
        y, checked = self._prepare(X, y)
        if self.final_estimator is not None and not is_regressor(self.final_estimator):
            raise ValueError(f"final_estimator must be a regressor; got {self.final_estimator!r}")
        return self._fit(X, y, checked)

    def predict(self, X):
        """Prediction of the meta-learner.

        Parameters
        ----------
        X : array-like
            Raw inputs.

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        meta = self._transform(X)
        return self.final_estimator_.predict(meta)
