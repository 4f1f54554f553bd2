"""Small stateless transformers for ensemble members, safe to save without pickle."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class Flatten(TransformerMixin, BaseEstimator):
    """Reshape each sample to one row: ``(n, ...)`` becomes ``(n, prod(...))``.

    Use it in front of scikit-learn or XGBoost models that take images;
    unlike ``FunctionTransformer(np.reshape, ...)`` it needs no trusted
    function when a saved ensemble is loaded (see :func:`ensemble.load`).

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.linear_model import LogisticRegression
    >>> model = make_pipeline(Flatten(), LogisticRegression())  # doctest: +SKIP
    """

    def fit(self, X, y=None):
        """Nothing to learn. Returns ``self``."""
        return self

    def transform(self, X):
        """``X`` as a 2-D array of one row per sample."""
        X = np.asarray(X)
        return X.reshape(len(X), -1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = True
        return tags
