"""diversity(): values checked by hand on small arrays."""

import math

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from ensemble import BlendClassifier, Diversity, diversity


class Lookup(ClassifierMixin, BaseEstimator):
    """A classifier whose probabilities for example ``i`` (``X[i, 0] == i``) are ``proba[i]``."""

    def __init__(self, proba):
        self.proba = proba

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        return np.asarray(self.proba)[np.asarray(X)[:, 0].astype(int)]


X = np.arange(6)[:, None]
y = np.array([0, 0, 1, 1, 1, 0])
P = {  # predicted labels: a = 0 1 1 1 0 0 (wrong on 1, 4); b = 0 0 1 0 0 0 (wrong on 3, 4); c = y (never wrong)
    "a": [[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.8, 0.2]],
    "b": [[0.7, 0.3], [0.8, 0.2], [0.1, 0.9], [0.9, 0.1], [0.7, 0.3], [0.6, 0.4]],
    "c": [[0.6, 0.4], [0.6, 0.4], [0.4, 0.6], [0.4, 0.6], [0.4, 0.6], [0.6, 0.4]],
}


def members():
    return [(name, FrozenEstimator(Lookup(p).fit(X, y))) for name, p in P.items()]


def test_values_by_hand():
    report = diversity(members(), X, y)
    by_name = {m["name"]: m for m in report.members}
    assert by_name["a"]["accuracy"] == pytest.approx(4 / 6)
    true_class = [0.9, 0.4, 0.8, 0.7, 0.4, 0.8]
    assert by_name["a"]["log_loss"] == pytest.approx(-np.mean(np.log(true_class)))
    assert by_name["c"]["accuracy"] == 1.0

    ab = report.pairs[0]
    assert (ab["a"], ab["b"]) == ("a", "b")
    assert ab["disagreement"] == pytest.approx(2 / 6)  # examples 1 and 3
    assert ab["double_fault"] == pytest.approx(1 / 6)  # example 4
    # phi of error indicators ea = 010010, eb = 000110: (p11 - pa pb) / sqrt(pa(1-pa) pb(1-pb))
    pa = pb = 2 / 6
    assert ab["error_correlation"] == pytest.approx((1 / 6 - pa * pb) / (pa * (1 - pa)))
    ac = report.pairs[1]
    assert ac["double_fault"] == 0 and math.isnan(ac["error_correlation"])  # c is never wrong
    assert len(report.pairs) == 3


def test_fitted_blend_table_and_dict():
    blend = BlendClassifier(members()).fit(X, y)
    report = diversity(blend, X, y)
    assert isinstance(report, Diversity)
    assert str(report) == str(diversity(members(), X, y))  # (NaN != NaN defeats dict equality)
    text = str(report)
    assert "member" in text and "a / b" in text and "0.6667" in text and "nan" in text
    assert report.to_dict()["members"][0] == report.members[0]


def test_unfitted_member_is_an_error():
    with pytest.raises(NotFittedError, match="'lr' is not fitted"):
        diversity([("lr", LogisticRegression())], X, y)
    with pytest.raises(NotFittedError, match="'f' is a FrozenEstimator around an unfitted"):
        diversity([("f", FrozenEstimator(LogisticRegression()))], X, y)
