"""BlendClassifier / BlendRegressor with scikit-learn members on real data (MNIST, IMDB, diabetes)."""

import os

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier, VotingClassifier
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import log_loss, mean_squared_error
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    cross_val_predict,
    cross_val_score,
)
from sklearn.naive_bayes import GaussianNB, MultinomialNB
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from ensemble import BlendClassifier, BlendRegressor, solvers

NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


def flat(est):
    """``est`` after flattening uint8 images to 784 pixel columns (picklable, no lambda)."""
    return make_pipeline(FunctionTransformer(np.reshape, kw_args={"shape": (-1, 784)}), est)


def forest():
    return flat(RandomForestClassifier(n_estimators=30, random_state=0))


def tree():
    return flat(DecisionTreeClassifier(max_depth=8, random_state=0))


@pytest.fixture(scope="module")
def digits():
    from zoo import datasets

    X, y = datasets.load("mnist", "train")
    Xv, yv = datasets.load("mnist", "validation")
    return X[:2000], y[:2000], Xv[:1000], yv[:1000]


@pytest.fixture(scope="module")
def frozen(digits):
    """Members trained on the training subset: a good forest, a tree, naive Bayes, the prior."""
    X, y, _, _ = digits
    ests = {"forest": forest(), "tree": tree(), "nb": flat(GaussianNB()), "prior": DummyClassifier()}
    return {name: FrozenEstimator(est.fit(X, y)) for name, est in ests.items()}


class CountingForest(RandomForestClassifier):
    """A random forest that counts its predict_proba calls (class-level, so not part of its hash)."""

    calls = 0

    def predict_proba(self, X):
        type(self).calls += 1
        return super().predict_proba(X)


# --- equivalence with scikit-learn -------------------------------------------------------


def test_mean_equals_voting_classifier_soft(digits, frozen):
    _, _, Xv, yv = digits
    members = [(n, frozen[n]) for n in ("forest", "tree", "nb")]
    blend = BlendClassifier(members).fit(Xv, yv)
    voting = VotingClassifier(members, voting="soft").fit(Xv, yv)
    np.testing.assert_allclose(blend.predict_proba(Xv), voting.predict_proba(Xv), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(blend.predict(Xv), voting.predict(Xv))
    np.testing.assert_array_equal(blend.weights_, [1 / 3] * 3)

    weighted = BlendClassifier(members, weights=[3, 1, 1]).fit(Xv, yv)
    voting = VotingClassifier(members, voting="soft", weights=[3, 1, 1]).fit(Xv, yv)
    np.testing.assert_allclose(weighted.predict_proba(Xv), voting.predict_proba(Xv), rtol=0, atol=1e-12)
    np.testing.assert_allclose(weighted.weights_, [0.6, 0.2, 0.2])


def test_hard_voting_equals_voting_classifier_hard(digits, frozen):
    _, _, Xv, yv = digits
    members = [(n, frozen[n]) for n in ("forest", "tree", "nb")]
    blend = BlendClassifier(members, voting="hard", weights=[1, 2, 1]).fit(Xv, yv)
    voting = VotingClassifier(members, voting="hard", weights=[1, 2, 1]).fit(Xv, yv)
    np.testing.assert_array_equal(blend.predict(Xv), voting.predict(Xv))
    assert not hasattr(blend, "predict_proba")


# --- learned weights ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["slsqp", "nnls", "caruana"])
def test_learned_weights_favour_the_good_member(digits, frozen, method):
    _, _, Xv, yv = digits
    members = [(n, frozen[n]) for n in ("prior", "forest", "nb")]
    blend = BlendClassifier(members, method=method).fit(Xv, yv)
    w = blend.weights_
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0)
    assert w.argmax() == 1 and w[0] < 0.1
    mean = BlendClassifier(members).fit(Xv, yv)
    assert log_loss(yv, blend.predict_proba(Xv)) <= log_loss(yv, mean.predict_proba(Xv))


def test_unfitted_members_get_out_of_fold_predictions_then_refit(digits):
    X, y, _, _ = digits
    X, y = X[:600], y[:600]
    cv = StratifiedKFold(3)
    blend = BlendClassifier([forest(), tree()], method="slsqp", cv=cv).fit(X, y)
    P = np.stack([cross_val_predict(est, X, y, cv=cv, method="predict_proba") for est in (forest(), tree())])
    np.testing.assert_allclose(blend.weights_, solvers.slsqp_weights(P, y), atol=1e-10)
    refit = forest().fit(X, y)  # refit on all of the data
    np.testing.assert_array_equal(blend.estimators_[0].predict_proba(X), refit.predict_proba(X))
    assert list(blend.named_estimators_) == ["pipeline", "pipeline-2"]


def test_caruana_options_and_reproducibility(digits, frozen):
    _, _, Xv, yv = digits
    members = list(frozen.items())
    kwargs = dict(method="caruana", n_bags=5, bag_fraction=0.5, ensemble_size=10)
    a = BlendClassifier(members, random_state=0, **kwargs).fit(Xv, yv).weights_
    b = BlendClassifier(members, random_state=0, **kwargs).fit(Xv, yv).weights_
    np.testing.assert_array_equal(a, b)
    assert a.sum() == pytest.approx(1.0)
    acc = BlendClassifier(members, method="caruana", scoring="accuracy", n_init=2).fit(Xv, yv)
    assert acc.weights_[list(frozen).index("forest")] > 0


def test_fixed_weights_fit_unfitted_members_on_all_data(digits):
    X, y, Xv, _ = digits
    blend = BlendClassifier([forest(), flat(GaussianNB())], weights=[2, 1]).fit(X, y)
    expected = 2 / 3 * forest().fit(X, y).predict_proba(Xv) + 1 / 3 * flat(GaussianNB()).fit(X, y).predict_proba(Xv)
    np.testing.assert_allclose(blend.predict_proba(Xv), expected, atol=1e-12)


# --- labels ---------------------------------------------------------------------------------


def test_string_labels(digits):
    X, y, Xv, yv = digits
    frozen_names = FrozenEstimator(forest().fit(X, NAMES[y]))
    blend = BlendClassifier([frozen_names, tree()], method="slsqp", cv=3).fit(Xv, NAMES[yv])
    np.testing.assert_array_equal(blend.classes_, np.sort(NAMES))
    pred = blend.predict(Xv)
    assert set(pred) <= set(NAMES) and np.mean(pred == NAMES[yv]) > 0.7


def test_members_disagreeing_on_classes(digits, frozen):
    X, y, Xv, yv = digits
    small = FrozenEstimator(tree().fit(X[y < 5], y[y < 5]))
    with pytest.raises(ValueError, match=r"disagree on the classes: 'forest' has .* 'small' has \[0, 1, 2, 3, 4\]"):
        BlendClassifier([("forest", frozen["forest"]), ("small", small)]).fit(Xv, yv)
    named = FrozenEstimator(tree().fit(X, NAMES[y]))
    with pytest.raises(ValueError, match="disagree on the classes"):
        BlendClassifier([frozen["forest"], named]).fit(Xv, yv)
    with pytest.raises(ValueError, match=r"y has labels .*\['forest'\]"):
        BlendClassifier([("forest", frozen["forest"])]).fit(Xv, NAMES[yv])


# --- bad input ------------------------------------------------------------------------------


class CountingFit(DecisionTreeClassifier):
    fits = 0

    def fit(self, X, y):
        type(self).fits += 1
        return super().fit(X, y)


@pytest.mark.parametrize(
    "members, kwargs, error, match",
    [
        ([], {}, ValueError, "non-empty list"),
        (["tree", "tree"], {}, ValueError, r"Names provided are not unique: \['tree', 'tree', 'counting'\]"),
        (["tree", "prior"], dict(weights=[1, 2]), ValueError, r"Number of `estimators` and weights must be equal; got 2 weights, 3 estimators"),
        (["tree", "prior"], dict(weights=[1, -1, 1]), ValueError, "non-negative"),
        (["tree", "prior"], dict(weights=[1, 1, 1], method="slsqp"), ValueError, "only with method='mean'"),
        (["tree", "prior"], dict(method="median"), ValueError, "method must be one of"),
        (["tree", "prior"], dict(voting="soft-ish"), ValueError, "voting must be"),
        (["tree", "unfitted"], {}, NotFittedError, "'unfitted' is a FrozenEstimator around an unfitted DecisionTree"),
        (["tree", "svc"], {}, ValueError, r"'svc' \(Pipeline\) has no predict_proba"),
        (["tree", "method"], {}, ValueError, "conflict with constructor arguments"),
        (["tree", "a__b"], {}, ValueError, r"Estimator names must not contain __: got \['a__b'\]"),
    ],
)
def test_bad_input_fails_before_fitting_anything(digits, frozen, members, kwargs, error, match):
    _, _, Xv, yv = digits
    available = {**frozen, "unfitted": FrozenEstimator(DecisionTreeClassifier()), "svc": flat(SVC()),
                 "method": frozen["nb"], "a__b": frozen["nb"]}
    estimators = [(name, available[name]) for name in members]
    if estimators:
        estimators.append(("counting", CountingFit()))  # would be fitted by the blend
    CountingFit.fits = 0
    with pytest.raises(error, match=match):
        BlendClassifier(estimators, **kwargs).fit(Xv, yv)
    assert CountingFit.fits == 0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_nan_member_output_named(digits, frozen):
    X, y, Xv, yv = digits
    broken = flat(LogisticRegression(max_iter=5)).fit(X[:200] / 255.0, y[:200])
    broken[-1].coef_[:] = np.nan
    with pytest.raises(ValueError, match="'broken' predicted NaN or infinite"):
        BlendClassifier([("ok", frozen["tree"]), ("broken", FrozenEstimator(broken))], method="slsqp").fit(Xv, yv)


def test_2d_features_recorded_only_for_2d_numeric_input(digits, frozen):
    _, _, Xv, yv = digits
    blend = BlendClassifier([frozen["tree"]]).fit(Xv, yv)
    assert not hasattr(blend, "n_features_in_")  # images: no feature count
    flat_X = Xv.reshape(len(Xv), -1)
    blend = BlendClassifier([flat(DecisionTreeClassifier(max_depth=3))]).fit(flat_X, yv)
    assert blend.n_features_in_ == 784
    with pytest.raises(ValueError, match="X has 10 features, but BlendClassifier is expecting 784"):
        blend.predict(flat_X[:, :10])


# --- scikit-learn tooling -------------------------------------------------------------------


def test_pipeline_grid_search_cross_val_score_clone(digits, frozen):
    _, _, X, y = digits
    X, y = X[:600], y[:600]
    blend = BlendClassifier([("forest", frozen["forest"]), ("tree", tree())], cv=3)
    pipe = Pipeline([("identity", FunctionTransformer()), ("blend", blend)])
    grid = {"blend__method": ["mean", "slsqp"], "blend__tree__decisiontreeclassifier__max_depth": [2, 8]}
    search = GridSearchCV(pipe, grid, cv=2, scoring="neg_log_loss").fit(X, y)
    assert len(search.cv_results_["params"]) == 4 and np.isfinite(search.best_score_)
    best = search.best_estimator_[-1]
    assert best.method == search.best_params_["blend__method"]
    assert best.named_estimators_["tree"][-1].max_depth == search.best_params_["blend__tree__decisiontreeclassifier__max_depth"]
    scores = cross_val_score(blend, X, y, cv=2, scoring="neg_log_loss")
    assert scores.shape == (2,) and np.all(np.isfinite(scores))

    before = joblib.hash(frozen["forest"].estimator)
    copy = clone(blend)
    assert copy.estimators[0][1] is frozen["forest"]  # prefit members are kept, not copied
    assert copy.estimators[1][1] is not blend.estimators[1][1]
    copy.fit(X, y)
    assert joblib.hash(frozen["forest"].estimator) == before


def test_joblib_round_trip(tmp_path, digits, frozen):
    X, y, Xv, yv = digits
    blend = BlendClassifier([frozen["forest"], tree()], method="caruana", cv=3).fit(Xv, yv)
    joblib.dump(blend, tmp_path / "blend.joblib")
    loaded = joblib.load(tmp_path / "blend.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X), blend.predict_proba(X))


def test_memory_caches_prefit_member_predictions(tmp_path, digits):
    X, y, Xv, yv = digits
    counting = FrozenEstimator(flat(CountingForest(n_estimators=20, random_state=0)).fit(X, y))
    members = [("counting", counting), ("tree", tree())]
    CountingForest.calls = 0
    for method in ("slsqp", "slsqp", "caruana", "nnls"):
        blend = BlendClassifier(members, method=method, cv=3, memory=str(tmp_path)).fit(Xv, yv)
    assert CountingForest.calls == 1  # the unfitted 'tree' is refitted; the prefit member comes from the cache
    first = blend.predict_proba(X)
    np.testing.assert_array_equal(blend.predict_proba(X), first)
    assert CountingForest.calls == 2
    uncached = clone(blend).set_params(memory=None).fit(Xv, yv)
    np.testing.assert_allclose(uncached.predict_proba(X), first, atol=1e-12)
    assert CountingForest.calls == 4
    assert sum(len(files) for _, _, files in os.walk(tmp_path)) >= 2


def test_n_jobs_gives_the_same_result(digits, frozen):
    X, y, Xv, _ = digits
    X, y = X[:600], y[:600]
    members = [("forest", frozen["forest"]), ("tree", tree()), ("nb", flat(GaussianNB()))]
    one = BlendClassifier(members, method="slsqp", cv=3, n_jobs=1).fit(X, y)
    two = BlendClassifier(members, method="slsqp", cv=3, n_jobs=2).fit(X, y)
    np.testing.assert_allclose(one.weights_, two.weights_, atol=1e-12)
    np.testing.assert_allclose(one.predict_proba(Xv), two.predict_proba(Xv), atol=1e-12)


# --- other inputs and targets ---------------------------------------------------------------


def test_raw_text_members():
    from zoo import datasets

    X, y = datasets.load("imdb", "validation")
    X, y, Xt, yt = X[:800], y[:800], X[800:1200], y[800:1200]
    members = [
        ("lr", make_pipeline(TfidfVectorizer(min_df=2), LogisticRegression())),
        ("nb", make_pipeline(TfidfVectorizer(min_df=2), MultinomialNB())),
    ]
    blend = BlendClassifier(members, method="slsqp", cv=3).fit(X, y)
    assert not hasattr(blend, "n_features_in_")
    assert blend.score(Xt, yt) > 0.7


@pytest.mark.parametrize("method", ["mean", "slsqp", "nnls", "caruana"])
def test_regressor_on_diabetes(method):
    X, y = load_diabetes(return_X_y=True)
    X, y, Xt, yt = X[:300], y[:300], X[300:], y[300:]
    members = [("ridge", Ridge(alpha=0.1)), ("tree", DecisionTreeRegressor(max_depth=3, random_state=0)),
               ("knn", KNeighborsRegressor(30))]
    blend = BlendRegressor(members, method=method, cv=5).fit(X, y)
    assert blend.weights_.sum() == pytest.approx(1.0) and np.all(blend.weights_ >= 0)
    fitted = [clone(est).fit(X, y) for _, est in members]
    expected = sum(w * est.predict(Xt) for w, est in zip(blend.weights_, fitted))
    np.testing.assert_allclose(blend.predict(Xt), expected, atol=1e-9)
    assert mean_squared_error(yt, blend.predict(Xt)) < 3500
