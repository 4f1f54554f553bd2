"""StackClassifier / StackRegressor on real data, compared with scikit-learn's stacking."""

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.ensemble import (
    RandomForestClassifier,
    StackingClassifier,
    StackingRegressor,
)
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    StratifiedKFold,
    cross_val_score,
)
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from xgboost import XGBClassifier

from ensemble import StackClassifier, StackRegressor

NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


def flat(est):
    return make_pipeline(FunctionTransformer(np.reshape, kw_args={"shape": (-1, 784)}), est)


def members():
    return [
        ("forest", flat(RandomForestClassifier(n_estimators=20, random_state=0))),
        ("nb", flat(GaussianNB())),
    ]


@pytest.fixture(scope="module")
def digits():
    from zoo import datasets

    X, y = datasets.load("mnist", "train")
    Xv, yv = datasets.load("mnist", "validation")
    return X[:1500], y[:1500], Xv[:1000], yv[:1000]


@pytest.fixture(scope="module")
def frozen(digits):
    X, y, _, _ = digits
    return [(name, FrozenEstimator(est.fit(X, y))) for name, est in members()]


@pytest.mark.parametrize("binary", [False, True])
def test_out_of_fold_meta_features_match_sklearn(digits, binary):
    X, y, Xv, _ = digits
    X, y = X[:600], y[:600]
    if binary:
        y = (y == 7).astype(int)
    cv = StratifiedKFold(3)
    ours = StackClassifier(members(), cv=cv).fit(X, y)
    theirs = StackingClassifier(members(), cv=cv).fit(X, y)
    # same out-of-fold meta-features => same meta-learner
    np.testing.assert_allclose(ours.final_estimator_.coef_, theirs.final_estimator_.coef_, atol=1e-8)
    np.testing.assert_allclose(ours.predict_proba(Xv), theirs.predict_proba(Xv), atol=1e-10)
    assert ours.transform(Xv).shape[1] == (2 if binary else 20)  # binary: one column per member


def test_prefit_members_feed_their_predictions_on_the_given_data(digits, frozen):
    _, _, Xv, yv = digits
    stack = StackClassifier(frozen).fit(Xv, yv)
    meta = np.hstack([est.predict_proba(Xv) for _, est in frozen])
    np.testing.assert_array_equal(stack.transform(Xv), meta)
    expected = LogisticRegression().fit(meta, yv)
    np.testing.assert_allclose(stack.final_estimator_.coef_, expected.coef_, atol=1e-10)


@pytest.mark.parametrize(
    "final", [RandomForestClassifier(n_estimators=50, random_state=0), XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1)]
)
def test_tree_meta_learners_with_string_labels(digits, frozen, final):
    X, y, Xv, yv = digits
    named = [(name, FrozenEstimator(flat(GaussianNB()).fit(X, NAMES[y]))) for name in ("nb",)]
    named.append(("tree", flat(DecisionTreeClassifier(max_depth=6, random_state=0))))
    stack = StackClassifier(named, final_estimator=final, cv=3).fit(Xv[:600], NAMES[yv[:600]])
    np.testing.assert_array_equal(stack.classes_, np.sort(NAMES))
    assert np.mean(stack.predict(Xv[600:]) == NAMES[yv[600:]]) > 0.6
    assert stack.predict_proba(Xv[600:]).shape == (400, 10)


def test_grid_search_over_meta_learner_depth(digits, frozen):
    _, _, Xv, yv = digits
    stack = StackClassifier(frozen, final_estimator=XGBClassifier(n_estimators=20, n_jobs=1))
    search = GridSearchCV(stack, {"final_estimator__max_depth": [1, 3]}, cv=2).fit(Xv, yv)
    assert search.best_estimator_.final_estimator_.max_depth == search.best_params_["final_estimator__max_depth"]
    assert cross_val_score(stack, Xv, yv, cv=2).mean() > 0.7


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_passthrough_memory_and_joblib_round_trip(tmp_path, digits, frozen):
    _, _, Xv, yv = digits
    stack = StackClassifier(frozen, passthrough=True, memory=tmp_path / "cache", final_estimator=LogisticRegression(max_iter=50))
    stack.fit(Xv[:300], yv[:300])
    assert stack.transform(Xv[:5]).shape == (5, 20 + 784)
    joblib.dump(stack, tmp_path / "stack.joblib")
    loaded = joblib.load(tmp_path / "stack.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(Xv[:50]), stack.predict_proba(Xv[:50]))


def test_errors(digits, frozen):
    _, _, Xv, yv = digits
    with pytest.raises(ValueError, match="'final_estimator' parameter should be a classifier. Got Ridge()"):
        StackClassifier(frozen, final_estimator=Ridge()).fit(Xv, yv)
    with pytest.raises(ValueError, match="'final_estimator' parameter should be a regressor. Got LogisticRegression()"):
        StackRegressor([Ridge()], final_estimator=LogisticRegression()).fit(np.ones((4, 1)), [1.0, 2, 3, 4])
    with pytest.raises(ValueError, match=r"y has labels"):
        StackClassifier(frozen).fit(Xv, NAMES[yv])


def test_regressor_matches_sklearn_on_diabetes():
    X, y = load_diabetes(return_X_y=True)
    regs = [
        ("ridge", Ridge(alpha=0.1)),
        ("tree", DecisionTreeRegressor(max_depth=3, random_state=0)),
        ("knn", KNeighborsRegressor(20)),
    ]
    cv = KFold(5)
    ours = StackRegressor(regs, cv=cv).fit(X[:300], y[:300])
    theirs = StackingRegressor(regs, cv=cv).fit(X[:300], y[:300])
    np.testing.assert_allclose(ours.predict(X[300:]), theirs.predict(X[300:]), rtol=1e-10)
    assert ours.score(X[300:], y[300:]) > 0.3
