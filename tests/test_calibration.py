"""Temperature scaling of ensemble members (ensemble.calibration, calibrate= on blends and stacks), on scikit-learn data."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_digits, load_iris
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

import ensemble
from ensemble import BlendClassifier, StackClassifier
from ensemble.calibration import TEMPERATURE_BOUNDS, apply_temperature, fit_temperature
from ensemble.solvers import caruana_weights


class Scaled(ClassifierMixin, BaseEstimator):
    """A fitted classifier whose probabilities are made over- or under-confident by ``temperature``."""

    def __init__(self, estimator=None, temperature=1.0):
        self.estimator = estimator
        self.temperature = temperature

    def fit(self, X, y):
        self.estimator_ = self.estimator
        self.classes_ = self.estimator.classes_
        return self

    def predict_proba(self, X):
        return apply_temperature(self.estimator_.predict_proba(X), self.temperature)


@pytest.fixture(scope="module")
def digits():
    """Members fitted on the first 700 digits; 550 to fit blends on, the rest to test."""
    X, y = load_digits(return_X_y=True)
    fitted = {
        "lr": LogisticRegression(C=0.01, max_iter=1000).fit(X[:700], y[:700]),
        "nb": GaussianNB().fit(X[:700], y[:700]),
        "tree": DecisionTreeClassifier(max_depth=8, random_state=0).fit(X[:700], y[:700]),
        "knn": KNeighborsClassifier(15).fit(X[:700], y[:700]),
    }
    return fitted, (X[700:1250], y[700:1250]), (X[1250:], y[1250:])


def members(fitted, scale=None):
    """Prefit members; ``scale={name: T}`` makes a member over- (T < 1) or under-confident (T > 1)."""
    scale = scale or {}
    return [(n, FrozenEstimator(Scaled(est, scale[n]).fit(None, None) if n in scale else est)) for n, est in fitted.items()]


def softmax(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("k", [2, 10])
@pytest.mark.parametrize("true", [0.4, 2.5])
def test_fit_temperature_recovers_the_temperature_of_synthetic_probabilities(k, true):
    # labels drawn from softmax(z); the member reports softmax(z / true): over-confident if true < 1
    rng = np.random.default_rng(0)
    Z = rng.normal(scale=2.0, size=(20000, k))
    y = (rng.random(len(Z))[:, None] > np.cumsum(softmax(Z), axis=1)).sum(axis=1)
    reported = softmax(Z / true)
    assert fit_temperature(reported, y) == pytest.approx(1 / true, rel=0.05)
    calibrated = apply_temperature(reported, fit_temperature(reported, y))
    assert log_loss(y, calibrated) < log_loss(y, reported)
    np.testing.assert_array_equal(calibrated.argmax(axis=1), reported.argmax(axis=1))  # never changes a prediction


def test_fit_temperature_undoes_a_known_distortion_of_a_real_model(digits):
    fitted, (Xv, yv), _ = digits
    proba = fitted["lr"].predict_proba(Xv)
    own = fit_temperature(proba, yv)
    for distortion in (0.3, 3.0):  # sharper / flatter than the model
        assert fit_temperature(apply_temperature(proba, distortion), yv) * distortion == pytest.approx(own, rel=1e-3)
    # a sigmoid member's [1 - p, p]: the same as scaling its logit
    binary = LogisticRegression(C=1e-4).fit(Xv, yv == 3)  # logits of moderate size, no probability of exactly 0 or 1
    p = binary.predict_proba(Xv)
    logit = binary.decision_function(Xv)
    t = fit_temperature(p, (yv == 3).astype(int))
    np.testing.assert_allclose(apply_temperature(p, t)[:, 1], 1 / (1 + np.exp(-logit / t)), rtol=1e-9)


def test_fit_temperature_edge_cases():
    p = np.array([[0.9, 0.1], [0.2, 0.8], [1.0, 0.0]])
    assert apply_temperature(p, 1.0) is p
    assert fit_temperature(p[:, :1], np.zeros(3, int)) == 1.0  # one column: nothing to scale
    assert fit_temperature(p, np.array([0, 1, 0]), sample_weight=np.zeros(3)) == 1.0
    t = fit_temperature(p, np.array([0, 1, 0]))  # all right and confident: as sharp as allowed
    assert t == pytest.approx(TEMPERATURE_BOUNDS[0], rel=1e-3)
    assert np.isfinite(apply_temperature(p, 50.0)).all()
    # integer sample weights are repeated samples
    rng = np.random.default_rng(1)
    q = softmax(rng.normal(size=(300, 4)) * 3)
    y = rng.integers(0, 4, 300)
    counts = rng.integers(0, 4, 300)
    assert fit_temperature(q, y, sample_weight=counts) == pytest.approx(fit_temperature(np.repeat(q, counts, 0), np.repeat(y, counts)), rel=1e-5)
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="positive"):
            apply_temperature(p, bad)
    with pytest.raises(ValueError, match="bounds"):
        fit_temperature(p, np.array([0, 1, 0]), bounds=(2.0, 3.0))


@pytest.mark.parametrize("method", ["mean", "slsqp", "nnls", "caruana"])
def test_calibrate_lowers_the_validation_log_loss_and_scales_every_output(digits, method):
    fitted, (Xv, yv), (Xt, _) = digits
    plain = BlendClassifier(members(fitted), method=method).fit(Xv, yv)
    calibrated = BlendClassifier(members(fitted), method=method, calibrate=True).fit(Xv, yv)
    np.testing.assert_array_equal(plain.temperatures_, np.ones(4))
    assert plain.blend_temperature_ == 1.0
    assert log_loss(yv, calibrated.predict_proba(Xv)) < log_loss(yv, plain.predict_proba(Xv))
    T = calibrated.temperatures_
    assert T[2] > 3 and T[0] < 1  # the deep tree is over-confident, the regularised logistic regression under-confident
    # predict_proba: the weighted average of the scaled members, then the blend's temperature; transform: the scaled members
    raw = [est.predict_proba(Xt) for est in fitted.values()]
    scaled = [apply_temperature(p, t) for p, t in zip(raw, T)]
    np.testing.assert_allclose(calibrated.transform(Xt), np.hstack(scaled), rtol=1e-12)
    expected = apply_temperature(sum(w * p for w, p in zip(calibrated.weights_, scaled)), calibrated.blend_temperature_)
    np.testing.assert_allclose(calibrated.predict_proba(Xt), expected, rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(calibrated.predict(Xt), calibrated.classes_[expected.argmax(axis=1)])


@pytest.mark.parametrize("method", ["slsqp", "caruana"])
def test_calibrated_weights_ignore_how_confident_a_member_is(digits, method):
    """An accurate member made under-confident (as label smoothing does) loses weight, unless calibrated."""
    fitted, (Xv, yv), (Xt, yt) = digits
    original = BlendClassifier(members(fitted), method=method, calibrate=True).fit(Xv, yv)
    flattened = BlendClassifier(members(fitted, {"knn": 2.0}), method=method, calibrate=True).fit(Xv, yv)
    np.testing.assert_allclose(flattened.weights_, original.weights_, atol=1e-4)
    np.testing.assert_allclose(flattened.temperatures_ * [1, 1, 1, 2.0], original.temperatures_, rtol=1e-4)
    np.testing.assert_allclose(flattened.predict_proba(Xt), original.predict_proba(Xt), atol=1e-5)
    uncalibrated = BlendClassifier(members(fitted, {"knn": 2.0}), method=method).fit(Xv, yv)
    assert uncalibrated.weights_[3] < 0.6 * original.weights_[3]
    assert log_loss(yt, uncalibrated.predict_proba(Xt)) > log_loss(yt, flattened.predict_proba(Xt))


def test_members_fitted_here_are_calibrated_out_of_fold_and_sample_weights_count(digits):
    fitted, (Xv, yv), _ = digits
    unfitted = [("tree", DecisionTreeClassifier(max_depth=8, random_state=0)), ("nb", GaussianNB())]
    blend = BlendClassifier(unfitted, method="slsqp", calibrate=True, cv=3).fit(Xv, yv)
    assert blend.temperatures_[0] > 2  # out-of-fold predictions of a deep tree are over-confident
    counts = np.random.default_rng(0).integers(0, 4, len(yv))
    counts[:20] = 1
    three = members(fitted)[:3]  # not k-NN: its ties fall differently on repeated rows
    weighted = BlendClassifier(three, method="slsqp", calibrate=True).fit(Xv, yv, sample_weight=counts)
    repeated = BlendClassifier(three, method="slsqp", calibrate=True).fit(np.repeat(Xv, counts, 0), np.repeat(yv, counts))
    np.testing.assert_allclose(weighted.temperatures_, repeated.temperatures_, rtol=1e-4)
    np.testing.assert_allclose(weighted.weights_, repeated.weights_, atol=1e-4)


def test_a_member_that_knows_fewer_classes_and_dropped_members():
    X, y = load_iris(return_X_y=True)
    three = FrozenEstimator(GaussianNB().fit(X, y))  # prefit: the blend's classes are 0, 1, 2
    blend = BlendClassifier([("two", LogisticRegression()), ("gone", "drop"), ("three", three)], calibrate="temperature", cv=3)
    blend.fit(X[y < 2], y[y < 2])  # "two" is fitted here on classes 0 and 1 only
    assert blend.temperatures_.shape == (3,) and blend.temperatures_[1] == 1.0 and blend.temperatures_[0] != 1.0
    proba = blend.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba[y == 2, 2].min() > 0 and blend.transform(X)[:, 2].max() == 0  # "two" never predicts class 2


def test_stack_calibrates_its_probability_inputs(digits):
    fitted, (Xv, yv), (Xt, _) = digits
    final = LogisticRegression(max_iter=1000)
    stack = StackClassifier([*members(fitted)[:2], ("svc", LinearSVC())], final, calibrate=True, cv=3).fit(Xv, yv)
    assert stack.stack_method_ == ["predict_proba", "predict_proba", "decision_function"]
    assert stack.temperatures_[2] == 1.0 and stack.temperatures_[0] != 1.0
    scaled = [apply_temperature(fitted[n].predict_proba(Xt), t) for n, t in zip(["lr", "nb"], stack.temperatures_)]
    np.testing.assert_allclose(stack.transform(Xt)[:, :20], np.hstack(scaled), rtol=1e-12)
    plain = StackClassifier([*members(fitted)[:2], ("svc", LinearSVC())], final, cv=3).fit(Xv, yv)
    np.testing.assert_array_equal(plain.temperatures_, np.ones(3))
    binary = StackClassifier([("tree", DecisionTreeClassifier(max_depth=6, random_state=0)), ("nb", GaussianNB())], calibrate=True, cv=3)
    binary.fit(Xv, yv == 7)  # one column per member: the scaled probability of True
    assert binary.transform(Xt).shape == (len(Xt), 2) and (binary.temperatures_ != 1).all()


def test_saved_and_loaded_with_the_temperatures(digits, tmp_path):
    fitted, (Xv, yv), (Xt, _) = digits
    blend = BlendClassifier(members(fitted)[:3], method="caruana", calibrate=True, random_state=0).fit(Xv, yv)
    stack = StackClassifier(members(fitted)[:3], calibrate=True).fit(Xv, yv)
    for model, folder in ((blend, tmp_path / "blend"), (stack, tmp_path / "stack")):
        ensemble.save(model, folder)
        loaded = ensemble.load(folder)
        np.testing.assert_array_equal(loaded.temperatures_, model.temperatures_)
        np.testing.assert_array_equal(loaded.predict_proba(Xt), model.predict_proba(Xt))
    assert ensemble.load(tmp_path / "blend").blend_temperature_ == blend.blend_temperature_


def test_errors(digits):
    fitted, (Xv, yv), _ = digits
    for bad in ("isotonic", 1, None):
        with pytest.raises(ValueError, match="calibrate must be False, True or 'temperature'"):
            BlendClassifier(members(fitted), calibrate=bad).fit(Xv, yv)
        with pytest.raises(ValueError, match="calibrate must be False, True or 'temperature'"):
            StackClassifier(members(fitted), calibrate=bad).fit(Xv, yv)
    with pytest.raises(ValueError, match="needs voting='soft'"):
        BlendClassifier(members(fitted), voting="hard", calibrate=True).fit(Xv, yv)
    for n_best in (0, 1.5):
        with pytest.raises(ValueError, match="n_best must be None or a positive integer"):
            BlendClassifier(members(fitted), method="caruana", n_best=n_best).fit(Xv, yv)


def test_to_keras_applies_temperatures(digits):
    import keras

    _, (Xv, yv), (Xt, _) = digits
    inputs = keras.Input((64,))
    models = [keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(inputs)) for _ in range(2)]
    assert BlendClassifier(models, method="slsqp").fit(Xv, yv).to_keras() is not None
    calibrated = BlendClassifier(models, method="slsqp", calibrate=True).fit(Xv, yv)  # tests/test_fusion.py: zoo models
    np.testing.assert_allclose(calibrated.to_keras().predict(Xt, verbose=0), calibrated.predict_proba(Xt), atol=1e-5)


def test_caruana_library_pruning(digits):
    fitted, (Xv, yv), _ = digits
    P = np.stack([est.predict_proba(Xv) for est in fitted.values()])
    alone = [-log_loss(yv, p) for p in P]
    best_two = np.argsort(alone)[-2:]
    w = caruana_weights(P, yv, n_best=2, ensemble_size=20)
    assert set(np.flatnonzero(w)) <= set(best_two) and w.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(caruana_weights(P, yv, n_best=4), caruana_weights(P, yv))
    bagged = caruana_weights(P, yv, n_best=3, n_bags=10, bag_fraction=0.5, random_state=0)
    assert bagged[np.argmin(alone)] == 0 and bagged.sum() == pytest.approx(1.0)
    blend = BlendClassifier(members(fitted), method="caruana", n_best=2, ensemble_size=20).fit(Xv, yv)
    np.testing.assert_array_equal(blend.weights_, w)


def _sklearn_members():
    return [LogisticRegression(), DecisionTreeClassifier(max_depth=3, random_state=0)]


@parametrize_with_checks(
    [BlendClassifier(_sklearn_members(), method="slsqp", calibrate=True, cv=3), StackClassifier(_sklearn_members(), calibrate=True, cv=3)],
    expected_failed_checks=lambda estimator: {},
)
def test_calibrated_ensembles_pass_sklearn_checks(estimator, check):
    check(estimator)
