"""Naive-Bayes-weighted n-gram classifiers for raw text: NBSVM and an NB-weighted MLP.

Both classifiers read raw strings, turn each into binary n-gram indicators
(words and single punctuation marks, lower-cased, HTML tags removed; the
``max_features`` n-grams most frequent in the training texts) and scale every
indicator by its naive-Bayes log-count ratio
``r = log((p / |p|_1) / (q / |q|_1))``, where ``p`` and ``q`` are the
``alpha``-smoothed counts of the n-gram in texts of the class and of the other
classes (Wang & Manning, *Baselines and Bigrams*, ACL 2012). On the scaled
features, :class:`NBSVMClassifier` fits a logistic regression (with Wang &
Manning's interpolation towards the mean weight magnitude) and
:class:`NBMLPClassifier` a one-hidden-layer perceptron. With more than two
classes, each class has its own ratio, one-vs-rest.

The fitted state is float32 arrays plus the vocabulary; pickled and ``skops``
files store the vocabulary as a zlib-compressed JSON list (a ``dict`` of
200,000 n-grams costs about 70 MB in a ``skops`` file, the list about 0.7 MB).
"""

from __future__ import annotations

import json
import numbers
import re
import warnings
import zlib

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
)

__all__ = ["NBMLPClassifier", "NBSVMClassifier"]

_TAGS = re.compile(r"<[^>]*>")
_TOKENS = r"(?u)\w+|[^\w\s]"  # words, and each punctuation mark on its own ("!", "?", ":)" as ":" ")")


class _NBFeatures(ClassifierMixin, BaseEstimator):
    """Shared part: vocabulary and naive-Bayes log-count ratios; subclasses fit a model on the scaled features."""

    def _preprocess(self, text: str) -> str:
        if self.strip_html:
            text = _TAGS.sub(" ", text)
        return text.lower() if self.lowercase else text

    def _vectorizer(self, vocabulary=None):
        from sklearn.feature_extraction.text import CountVectorizer

        return CountVectorizer(
            preprocessor=self._preprocess, token_pattern=self.token_pattern, ngram_range=tuple(self.ngram_range),
            max_features=None if vocabulary is not None else self.max_features, min_df=self.min_df,
            binary=True, dtype=np.float32, vocabulary=vocabulary,
        )

    def _check_params(self) -> None:
        low, high = self.ngram_range
        if not (isinstance(low, numbers.Integral) and isinstance(high, numbers.Integral) and 1 <= low <= high):
            raise ValueError(f"ngram_range must be (low, high) with 1 <= low <= high, got {self.ngram_range!r}")
        if self.max_features is not None and not (isinstance(self.max_features, numbers.Integral) and self.max_features >= 1):
            raise ValueError(f"max_features must be a positive integer or None, got {self.max_features!r}")
        if not (isinstance(self.alpha, numbers.Real) and self.alpha > 0):
            raise ValueError(f"alpha must be a positive number, got {self.alpha!r}")

    def _fit_features(self, X, y):
        """Learn classes, vocabulary and ratios; return the scaled training features and y as class indices."""
        self._check_params()
        X = _check_texts(X)
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two classes in y; got {self.classes_.tolist()}")
        vectorizer = self._vectorizer()
        counts = vectorizer.fit_transform(X).tocsr()
        self.vocabulary_ = {term: int(i) for term, i in vectorizer.vocabulary_.items()}
        del vectorizer  # its stop_words_ would hold every pruned n-gram
        self.log_count_ratio_ = _log_count_ratios(counts, y_index, len(self.classes_), self.alpha)
        return self._scale(counts), y_index

    def _features(self, X):
        check_is_fitted(self, "vocabulary_")
        return self._scale(self._vectorizer(self.vocabulary_).transform(_check_texts(X)).tocsr())

    def _scale(self, counts):
        """Indicators times each class's ratio, side by side (one block for two classes)."""
        import scipy.sparse as sp

        blocks = [counts.multiply(r).tocsr() for r in self.log_count_ratio_]  # float32 times float32
        return blocks[0] if len(blocks) == 1 else sp.hstack(blocks, format="csr")

    def get_feature_names_out(self, input_features=None):
        """The n-grams, in feature order."""
        check_is_fitted(self, "vocabulary_")
        terms = np.empty(len(self.vocabulary_), dtype=object)
        for term, i in self.vocabulary_.items():
            terms[i] = term
        return terms

    def predict(self, X):
        """Most probable class of each text."""
        proba = self.predict_proba(X)  # checks that the model is fitted
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags

    # A vocabulary dict of 200,000 n-grams is ~70 MB in a skops file; its terms as compressed JSON ~0.7 MB.
    def __getstate__(self):
        state = dict(super().__getstate__())  # object.__getstate__ returns __dict__ itself
        vocabulary = state.pop("vocabulary_", None)
        if vocabulary is not None:
            terms = json.dumps(sorted(vocabulary, key=vocabulary.__getitem__), ensure_ascii=False).encode("utf-8")
            state["_vocabulary_zlib"] = np.frombuffer(zlib.compress(terms, 6), dtype=np.uint8)
        return state

    def __setstate__(self, state):
        state = dict(state)
        packed = state.pop("_vocabulary_zlib", None)
        if packed is not None:
            try:
                terms = json.loads(zlib.decompress(np.asarray(packed, dtype=np.uint8).tobytes()).decode("utf-8"))
            except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValueError(f"corrupt NB classifier state: unreadable vocabulary ({exc})") from None
            if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
                raise ValueError("corrupt NB classifier state: the vocabulary is not a list of strings")
            state["vocabulary_"] = {t: i for i, t in enumerate(terms)}
        super().__setstate__(state)


class NBSVMClassifier(_NBFeatures):
    """NBSVM: logistic regression on naive-Bayes-scaled binary n-gram features, for raw text.

    Parameters
    ----------
    ngram_range : tuple (low, high), default=(1, 3)
        Lengths of the n-grams, in tokens (words and punctuation marks).
    max_features : int or None, default=200000
        Keep the n-grams found in most training texts; ``None`` keeps all
        (millions for trigrams: large files).
    min_df : int, default=1
        Drop n-grams found in fewer training texts.
    alpha : float, default=1.0
        Smoothing of the naive-Bayes counts.
    C : float, default=1.0
        Inverse L2 regularisation strength of the logistic regression.
    interpolation : float in (0, 1], default=1.0
        Wang & Manning's beta: the weights become ``(1 - beta) * mean|w| + beta * w``;
        1 keeps the fitted weights.
    lowercase, strip_html : bool, default=True
        Lower-case the texts; replace HTML tags (``<br />``) by spaces.
    token_pattern : str, default=r"(?u)\\w+|[^\\w\\s]"
        Regular expression of a token: by default words and single punctuation marks.
    max_iter : int, default=1000
        Iterations of the ``liblinear`` solver.
    random_state : int, RandomState instance or None, default=None
        Seeds ``liblinear``'s coordinate order.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    vocabulary_ : dict
        N-gram to feature index.
    log_count_ratio_ : float32 ndarray of shape (1 or n_classes, n_features)
        Naive-Bayes ratio per class (one row, for the second class, with two classes).
    coef_ : ndarray of shape (1 or n_classes, n_features)
        Weights on the scaled features, after interpolation.
    intercept_ : ndarray of shape (1 or n_classes,)

    Examples
    --------
    >>> X, y = zoo.datasets.load("imdb", "train")                   # doctest: +SKIP
    >>> clf = NBSVMClassifier(C=1.0, interpolation=0.5).fit(X, y)    # doctest: +SKIP
    >>> clf.predict_proba(["A wonderful, moving film."])            # doctest: +SKIP
    """

    def __init__(self, ngram_range=(1, 3), max_features=200000, min_df=1, alpha=1.0, C=1.0, interpolation=1.0,
                 lowercase=True, strip_html=True, token_pattern=_TOKENS, max_iter=1000, random_state=None):
        self.ngram_range = ngram_range
        self.max_features = max_features
        self.min_df = min_df
        self.alpha = alpha
        self.C = C
        self.interpolation = interpolation
        self.lowercase = lowercase
        self.strip_html = strip_html
        self.token_pattern = token_pattern
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X, y):
        """Learn the vocabulary, the ratios and the weights from texts ``X`` and labels ``y``."""
        from sklearn.linear_model import LogisticRegression

        if not (isinstance(self.interpolation, numbers.Real) and 0 < self.interpolation <= 1):
            raise ValueError(f"interpolation must be in (0, 1], got {self.interpolation!r}")
        features, y_index = self._fit_features(X, y)
        n_features = len(self.vocabulary_)
        targets = [y_index == 1] if len(self.classes_) == 2 else [y_index == k for k in range(len(self.classes_))]
        coef, intercept = [], []
        for j, target in enumerate(targets):
            block = features[:, j * n_features:(j + 1) * n_features]
            lr = LogisticRegression(C=self.C, solver="liblinear", dual=True, max_iter=self.max_iter, random_state=self.random_state)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Liblinear failed to converge", category=UserWarning)
                lr.fit(block, target.astype(int))
            w = lr.coef_.ravel()
            beta = float(self.interpolation)
            coef.append((1 - beta) * np.abs(w).mean() + beta * w)
            intercept.append(lr.intercept_[0])
        self.coef_ = np.asarray(coef)
        self.intercept_ = np.asarray(intercept)
        return self

    def decision_function(self, X):
        """Signed scores: shape ``(n,)`` for two classes (positive: the second), else ``(n, n_classes)``."""
        check_is_fitted(self, "coef_")
        features = self._features(X)
        n_features = len(self.vocabulary_)
        scores = np.column_stack([
            features[:, j * n_features:(j + 1) * n_features] @ self.coef_[j].astype(np.float64) + self.intercept_[j]
            for j in range(len(self.coef_))
        ])
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict_proba(self, X):
        """Class probabilities: the logistic of the scores (one-vs-rest, normalised, for more than two classes)."""
        from scipy.special import expit

        p = expit(self.decision_function(X))
        if p.ndim == 1:
            return np.column_stack([1.0 - p, p])
        return p / p.sum(axis=1, keepdims=True)


class NBMLPClassifier(_NBFeatures):
    """A one-hidden-layer perceptron on naive-Bayes-scaled binary n-gram features, for raw text.

    The features are those of :class:`NBSVMClassifier`; the network (ReLU
    hidden layer, logistic or softmax output) is trained with Adam for a fixed
    number of epochs by scikit-learn's ``MLPClassifier``, and only its weights
    are kept (float32).

    Parameters
    ----------
    ngram_range, max_features, min_df, alpha, lowercase, strip_html, token_pattern
        As for :class:`NBSVMClassifier`.
    hidden_units : int, default=8
        Width of the hidden layer; the first weight matrix has
        ``max_features * hidden_units`` entries (6.4 MB for 200,000 x 8).
    epochs : int, default=2
        Passes over the training data (no early stopping: the naive-Bayes ratios
        have seen every training text, so a held-out slice would look too good).
    batch_size : int, default=128
    learning_rate : float, default=1e-3
        Adam's initial learning rate.
    l2 : float, default=1e-4
        L2 penalty on the weights (``MLPClassifier``'s ``alpha``).
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights and the batch order.

    Attributes
    ----------
    classes_, vocabulary_, log_count_ratio_
        As for :class:`NBSVMClassifier`.
    coefs_ : list of two float32 ndarrays
        Weights of the hidden and the output layer.
    intercepts_ : list of two float32 ndarrays
    loss_curve_ : list of float
        Training loss after each epoch.
    """

    def __init__(self, ngram_range=(1, 3), max_features=200000, min_df=1, alpha=1.0, hidden_units=8, epochs=2, batch_size=128,
                 learning_rate=1e-3, l2=1e-4, lowercase=True, strip_html=True, token_pattern=_TOKENS, random_state=None):
        self.ngram_range = ngram_range
        self.max_features = max_features
        self.min_df = min_df
        self.alpha = alpha
        self.hidden_units = hidden_units
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.l2 = l2
        self.lowercase = lowercase
        self.strip_html = strip_html
        self.token_pattern = token_pattern
        self.random_state = random_state

    def fit(self, X, y):
        """Learn the vocabulary, the ratios and the network from texts ``X`` and labels ``y``."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        for name in ("hidden_units", "epochs", "batch_size"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Integral) and value >= 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        features, y_index = self._fit_features(X, y)
        mlp = MLPClassifier(
            (self.hidden_units,), alpha=self.l2, batch_size=self.batch_size, learning_rate_init=self.learning_rate,
            max_iter=self.epochs, n_iter_no_change=self.epochs + 1, tol=0.0, random_state=self.random_state,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=ConvergenceWarning)  # a fixed number of epochs, on purpose
            mlp.fit(features, y_index)
        self.coefs_ = [np.asarray(c, dtype=np.float32) for c in mlp.coefs_]
        self.intercepts_ = [np.asarray(b, dtype=np.float32) for b in mlp.intercepts_]
        self.loss_curve_ = [float(v) for v in mlp.loss_curve_]
        return self

    def predict_proba(self, X):
        """Class probabilities."""
        from scipy.special import expit, softmax

        check_is_fitted(self, "coefs_")
        hidden = np.maximum(self._features(X) @ self.coefs_[0] + self.intercepts_[0], 0).astype(np.float64)
        out = hidden @ self.coefs_[1].astype(np.float64) + self.intercepts_[1]
        if out.shape[1] == 1:
            p = expit(out[:, 0])
            return np.column_stack([1.0 - p, p])
        return softmax(out, axis=1)


def _check_texts(X) -> np.ndarray:
    """Raw texts as a 1-D object array; a lone string, non-strings or 2-D input are refused."""
    if isinstance(X, (str, bytes)):
        raise ValueError("expected an iterable of texts, got a single string; wrap it in a list")
    X = np.asarray(list(X) if not hasattr(X, "__len__") else X, dtype=object)
    if X.ndim == 2 and X.shape[1] == 1:
        X = X[:, 0]
    if X.ndim != 1:
        raise ValueError(f"expected a 1-D sequence of texts, got an array of shape {X.shape}")
    if len(X) == 0:
        raise ValueError("expected at least one text, got none")
    bad = next((v for v in X if not isinstance(v, str)), None)
    if bad is not None:
        raise ValueError(f"expected texts (str), got a {type(bad).__name__}: {str(bad)[:40]!r}")
    return X


def _log_count_ratios(counts, y_index: np.ndarray, n_classes: int, alpha: float) -> np.ndarray:
    """Naive-Bayes log-count ratio per class vs the rest; one row (the second class) for two classes."""
    rows = []
    for k in ([1] if n_classes == 2 else range(n_classes)):
        p = alpha + np.asarray(counts[y_index == k].sum(axis=0), dtype=np.float64).ravel()
        q = alpha + np.asarray(counts[y_index != k].sum(axis=0), dtype=np.float64).ravel()
        rows.append(np.log((p / p.sum()) / (q / q.sum())))
    return np.asarray(rows, dtype=np.float32)
