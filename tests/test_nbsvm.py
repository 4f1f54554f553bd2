"""zoo.nbsvm: naive-Bayes-weighted n-gram classifiers on real IMDB reviews; saved without pickle."""

import pickle
import zipfile

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils import estimator_checks as checks

import ensemble
import zoo
from zoo.nbsvm import NBMLPClassifier, NBSVMClassifier

SMALL = {"max_features": 20000, "random_state": 0}
# 2 epochs suit 20,000 reviews; 2,000 need about as many steps
ESTIMATORS = [NBSVMClassifier(**SMALL), NBMLPClassifier(**SMALL, epochs=8)]
# scikit-learn's checks feed 2-D numeric arrays; those that need no data apply to a text classifier
API_CHECKS = [
    "check_estimator_cloneable", "check_estimator_repr", "check_no_attributes_set_in_init", "check_estimators_unfitted",
    "check_do_not_raise_errors_in_init_or_set_params", "check_mixin_order", "check_parameters_default_constructible",
    "check_get_params_invariance", "check_set_params", "check_estimator_tags_renamed", "check_valid_tag_types",
]


@pytest.fixture(scope="module")
def imdb():
    X, y = zoo.datasets.load("imdb", "train")
    X_val, y_val = zoo.datasets.load("imdb", "validation")
    return X[:2000], y[:2000], X_val[:1000], y_val[:1000]


@pytest.fixture(scope="module")
def fitted(imdb):
    X, y, _, _ = imdb
    return [clone(e).fit(X, y) for e in ESTIMATORS]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("check", API_CHECKS)
def test_scikit_learn_api_checks(estimator, check):
    getattr(checks, check)(type(estimator).__name__, estimator)


def test_beat_a_tfidf_baseline_on_imdb(imdb, fitted):
    X, y, X_val, y_val = imdb
    baseline = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000)).fit(X, y).score(X_val, y_val)
    scores = [m.score(X_val, y_val) for m in fitted]
    assert baseline > 0.75  # a sane baseline on 2,000 reviews
    assert all(s >= baseline + 0.01 for s in scores), (baseline, scores)


def test_fitted_state_and_outputs(imdb, fitted):
    X, y, X_val, _ = imdb
    for m in fitted:
        assert m.get_params() == clone(m).get_params() and m.fit is not None
        assert list(m.classes_) == [0, 1] and len(m.vocabulary_) == 20000 == m.log_count_ratio_.shape[1]
        proba = m.predict_proba(X_val[:50])
        assert proba.shape == (50, 2) and np.allclose(proba.sum(axis=1), 1)
        np.testing.assert_array_equal(m.predict(X_val[:50]), m.classes_[proba.argmax(axis=1)])
        names = m.get_feature_names_out()
        assert all(m.vocabulary_[t] == i for i, t in enumerate(names[:100]))
    nbsvm = fitted[0]
    # the most positive and negative n-grams of a sentiment model are sentiment words
    order = np.argsort(nbsvm.log_count_ratio_[0] * nbsvm.coef_[0])
    top = set(nbsvm.get_feature_names_out()[order[-30:]]) | set(nbsvm.get_feature_names_out()[order[:30]])
    assert top & {"great", "excellent", "worst", "waste", "bad", "awful", "perfect", "best"}
    np.testing.assert_allclose(nbsvm.predict_proba(X_val[:20])[:, 1], 1 / (1 + np.exp(-nbsvm.decision_function(X_val[:20]))))
    assert fitted[1].coefs_[0].shape == (20000, 8) and fitted[1].coefs_[0].dtype == np.float32


def test_fit_returns_self_and_does_not_change_params(imdb):
    X, y, _, _ = imdb
    est = NBSVMClassifier(max_features=500, ngram_range=(1, 1))
    params = est.get_params()
    assert est.fit(X[:300], y[:300]) is est
    assert est.get_params() == params


def test_string_labels_and_three_classes():
    texts = ["the food was great", "great food and wine", "awful food, cold", "cold and awful service",
             "the train was late", "a late train again", "food great, wine great", "awful, awful food",
             "late train, late again"] * 3
    labels = ["good", "good", "bad", "bad", "travel", "travel", "good", "bad", "travel"] * 3
    for est in (NBSVMClassifier(ngram_range=(1, 2), C=10.0), NBMLPClassifier(ngram_range=(1, 2), hidden_units=4, epochs=30, batch_size=8, learning_rate=0.01, random_state=0)):
        est.fit(texts, labels)
        assert list(est.classes_) == ["bad", "good", "travel"] and est.log_count_ratio_.shape[0] == 3
        assert list(est.predict(["great wine", "cold awful soup", "the late train"])) == ["good", "bad", "travel"]
        assert np.allclose(est.predict_proba(["great wine"]).sum(), 1)


def test_bad_inputs_are_refused(imdb):
    X, y, _, _ = imdb
    with pytest.raises(NotFittedError):
        NBSVMClassifier().predict(["a text"])
    with pytest.raises(ValueError, match="single string"):
        NBSVMClassifier().fit("one text", [1])
    with pytest.raises(ValueError, match="texts"):
        NBSVMClassifier().fit(np.zeros((4, 3)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="two classes"):
        NBSVMClassifier().fit(X[:10], np.zeros(10))
    with pytest.raises(ValueError, match="interpolation"):
        NBSVMClassifier(interpolation=0).fit(X[:10], y[:10])
    with pytest.raises(ValueError, match="ngram_range"):
        NBMLPClassifier(ngram_range=(2, 1)).fit(X[:10], y[:10])


def test_interpolation_moves_weights_toward_their_mean_magnitude(imdb):
    X, y, _, _ = imdb
    plain = NBSVMClassifier(max_features=2000, random_state=0).fit(X[:500], y[:500])
    half = clone(plain).set_params(interpolation=0.5).fit(X[:500], y[:500])
    w = plain.coef_[0]
    np.testing.assert_allclose(half.coef_[0], 0.5 * np.abs(w).mean() + 0.5 * w, rtol=1e-6)


def test_pickle_round_trip_keeps_the_vocabulary(fitted, imdb):
    X_val = imdb[2]
    for m in fitted:
        again = pickle.loads(pickle.dumps(m))
        assert again.vocabulary_ == m.vocabulary_ and "vocabulary_" in vars(m)
        np.testing.assert_array_equal(again.predict_proba(X_val[:100]), m.predict_proba(X_val[:100]))


def test_saved_in_an_ensemble_without_pickle_and_small(fitted, imdb, tmp_path):
    _, _, X_val, y_val = imdb
    blend = ensemble.BlendClassifier([(type(m).__name__, FrozenEstimator(m)) for m in fitted], method="slsqp")
    blend.fit(X_val[:500], y_val[:500])
    expected = blend.predict_proba(X_val[500:])
    ensemble.save(blend, tmp_path / "nb")
    version = next(p for p in (tmp_path / "nb").iterdir() if p.name.startswith("v-"))
    files = [f for f in version.iterdir() if f.suffix == ".skops"]
    assert len(files) == 2
    for f in files:
        with zipfile.ZipFile(f) as z:
            assert not any(n.endswith((".pkl", ".pickle")) for n in z.namelist())
    # 20,000 n-grams: weights (8 bytes each for NBSVM, 8 x 4 for the MLP), float32 ratios and the
    # compressed vocabulary (~4 bytes an n-gram); a vocabulary dict alone would take ~7 MB
    nbsvm_size, mlp_size = sorted(f.stat().st_size for f in files)
    assert nbsvm_size < 20000 * (8 + 4 + 8) and mlp_size < 20000 * (32 + 4 + 12)
    loaded = ensemble.load(tmp_path / "nb")
    np.testing.assert_array_equal(loaded.predict_proba(X_val[500:]), expected)
    assert loaded.score(X_val[500:], y_val[500:]) > 0.8
