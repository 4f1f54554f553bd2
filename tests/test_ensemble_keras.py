"""Keras models as members: adapter, labels, caching, threads, pickling and to_keras() on MNIST."""

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeClassifier

from ensemble import (
    BlendClassifier,
    BlendRegressor,
    KerasMember,
    StackClassifier,
    diversity,
)

keras = pytest.importorskip("keras")
# Keras's own saving (model.save, pickling) trips a NumPy 2 deprecation inside keras.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


def flat(est):
    return make_pipeline(FunctionTransformer(np.reshape, kw_args={"shape": (-1, 784)}), est)


def _train(name, body, X, y, units=10, activation="softmax", loss="sparse_categorical_crossentropy"):
    inputs = keras.Input((28, 28, 1), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for layer in body:
        x = layer(x)
    model = keras.Model(inputs, keras.layers.Dense(units, activation=activation)(x), name=name)
    model.compile("adam", loss)
    model.fit(X, y, epochs=1, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def digits():
    from zoo import datasets

    X, y = datasets.load("mnist", "train")
    Xv, yv = datasets.load("mnist", "validation")
    return X[:2000], y[:2000], Xv[:1000], yv[:1000]


@pytest.fixture(scope="module")
def models(digits):
    """Tiny models trained for one epoch: softmax ``mlp`` and ``cnn``, sigmoid ``is_seven``."""
    X, y, _, _ = digits
    keras.utils.set_random_seed(0)
    L = keras.layers
    return {
        "mlp": _train("mlp", [L.Flatten(), L.Dense(32, activation="relu")], X, y),
        "cnn": _train("cnn", [L.Conv2D(8, 3, strides=2, activation="relu"), L.Flatten()], X, y),
        "is_seven": _train("is_seven", [L.Flatten()], X, (y == 7).astype("float32"), 1, "sigmoid", "binary_crossentropy"),
    }


class CountingMember(KerasMember):
    """A KerasMember counting its predict_proba calls."""

    calls = 0

    def predict_proba(self, X):
        type(self).calls += 1
        return super().predict_proba(X)


def test_keras_model_is_wrapped_and_matches_model_predict(digits, models):
    _, _, Xv, yv = digits
    blend = BlendClassifier([models["mlp"], models["cnn"]]).fit(Xv, yv)
    assert list(blend.named_estimators_) == ["mlp", "cnn"]
    assert all(isinstance(m, KerasMember) and m.model is models[n] for n, m in blend.named_estimators_.items())
    expected = np.mean([models[n].predict(Xv, verbose=0) for n in ("mlp", "cnn")], axis=0)
    np.testing.assert_allclose(blend.predict_proba(Xv), expected, atol=1e-6)
    np.testing.assert_array_equal(blend.classes_, np.arange(10))


def test_learned_weights_mixed_with_sklearn_members(digits, models):
    X, y, Xv, yv = digits
    forest = FrozenEstimator(flat(RandomForestClassifier(n_estimators=20, random_state=0)).fit(X, y))
    tree = flat(DecisionTreeClassifier(max_depth=4))
    members = [("mlp", models["mlp"]), ("cnn", models["cnn"]), ("forest", forest), ("tree", tree)]
    for method in ("slsqp", "nnls", "caruana"):
        blend = BlendClassifier(members, method=method, cv=3).fit(Xv, yv)
        assert blend.weights_.sum() == pytest.approx(1.0) and blend.score(Xv, yv) > 0.8


def test_sigmoid_member_is_read_as_two_classes(digits, models):
    X, y, Xv, yv = digits
    target = (yv == 7).astype(int)
    forest = FrozenEstimator(flat(RandomForestClassifier(n_estimators=20, random_state=0)).fit(X, y == 7))
    blend = BlendClassifier([("sig", models["is_seven"]), ("forest", forest)], method="slsqp").fit(Xv, target)
    np.testing.assert_array_equal(blend.classes_, [0, 1])
    p = models["is_seven"].predict(Xv, verbose=0)[:, 0]
    np.testing.assert_allclose(blend.named_estimators_["sig"].predict_proba(Xv), np.c_[1 - p, p], atol=1e-7)
    assert blend.predict_proba(Xv).shape == (1000, 2) and blend.score(Xv, target) > 0.9
    stack = StackClassifier([("sig", models["is_seven"]), ("forest", forest)]).fit(Xv, target)
    assert stack.transform(Xv).shape == (1000, 2)  # one column per member


def test_keras_member_with_string_classes(digits, models):
    _, _, Xv, yv = digits
    member = KerasMember(models["mlp"], classes=NAMES, batch_size=128)
    np.testing.assert_array_equal(member.classes_, np.sort(NAMES))
    raw = models["mlp"].predict(Xv, verbose=0)
    proba = member.predict_proba(Xv)
    np.testing.assert_allclose(proba[:, list(member.classes_).index("seven")], raw[:, 7], atol=1e-6)
    np.testing.assert_array_equal(member.predict(Xv), NAMES[raw.argmax(axis=1)])
    blend = BlendClassifier([member, KerasMember(models["cnn"], classes=NAMES)], method="caruana").fit(Xv, NAMES[yv])
    assert set(blend.predict(Xv)) <= set(NAMES)
    with pytest.raises(ValueError, match=r"disagree on the classes: 'mlp' has .*'zero'.*'cnn' has \[0, 1"):
        BlendClassifier([member, models["cnn"]]).fit(Xv, NAMES[yv])


def test_keras_member_is_prefit_and_cloned_as_itself(digits, models):
    _, _, Xv, yv = digits
    member = KerasMember(models["mlp"])
    assert clone(member) is member
    blend = BlendClassifier([("mlp", models["mlp"]), ("cnn", member)], method="slsqp")
    copy = clone(blend)
    assert copy.estimators[0][1] is models["mlp"] and copy.estimators[1][1] is member
    search = GridSearchCV(blend, {"method": ["mean", "slsqp"]}, cv=2, scoring="neg_log_loss").fit(Xv, yv)
    assert search.best_estimator_.named_estimators_["mlp"].model is models["mlp"]


def test_wrong_input_shape_named_before_fitting(digits, models):
    X, y, Xv, yv = digits
    flat_X = Xv.reshape(len(Xv), -1)
    message = r"Member 'cnn': X has shape \(1000, 784\) .* expects inputs of shape \(None, 28, 28, 1\)"
    with pytest.raises(ValueError, match=message):
        BlendClassifier([("tree", DecisionTreeClassifier()), ("cnn", models["cnn"])], method="slsqp").fit(flat_X, yv)
    blend = BlendClassifier([models["cnn"]]).fit(Xv, yv)
    with pytest.raises(ValueError, match="Member 'cnn': X has shape"):
        blend.predict(flat_X)


def test_unbuilt_or_non_keras_models_are_rejected(digits, models):
    _, _, Xv, yv = digits
    unbuilt = keras.Sequential([keras.layers.Dense(10, activation="softmax")], name="unbuilt")
    with pytest.raises(NotFittedError, match="Member 'unbuilt': the Keras model 'unbuilt' is not built"):
        BlendClassifier([models["mlp"], unbuilt]).fit(Xv, yv)
    with pytest.raises(TypeError, match="'bad' is a KerasMember around str, not a keras.Model"):
        BlendClassifier([models["mlp"], ("bad", KerasMember("mlp"))]).fit(Xv, yv)


def test_non_probability_outputs_are_rejected(digits, models):
    _, _, Xv, yv = digits
    logits = keras.Model(models["mlp"].inputs, models["mlp"].layers[-1].output * 3.0 - 1.0, name="logits")
    with pytest.raises(ValueError, match="Member 'logits': output rows are not probabilities"):
        BlendClassifier([models["mlp"], logits], method="slsqp").fit(Xv, yv)


def test_joblib_round_trip_gives_identical_predictions(tmp_path, digits, models):
    X, y, Xv, yv = digits
    forest = FrozenEstimator(flat(RandomForestClassifier(n_estimators=10, random_state=0)).fit(X, y))
    blend = BlendClassifier([models["mlp"], KerasMember(models["cnn"], batch_size=100), forest], method="slsqp").fit(Xv, yv)
    joblib.dump(blend, tmp_path / "blend.joblib")
    loaded = joblib.load(tmp_path / "blend.joblib")
    member = loaded.estimators_[0]
    assert member._model is None  # restored lazily, on first use
    np.testing.assert_array_equal(loaded.predict_proba(Xv), blend.predict_proba(Xv))
    assert member.fingerprint() == blend.estimators_[0].fingerprint()


def test_fingerprint_follows_the_weights(models):
    a, b = KerasMember(models["mlp"]), KerasMember(models["mlp"])
    assert a.fingerprint() == b.fingerprint() != KerasMember(models["cnn"]).fingerprint()
    assert KerasMember(models["mlp"], classes=NAMES).fingerprint() != a.fingerprint()
    copy = keras.models.clone_model(models["mlp"])
    copy.set_weights(models["mlp"].get_weights())
    before = KerasMember(copy).fingerprint()
    assert KerasMember(copy).fingerprint() == before
    copy.set_weights([w + 1 for w in models["mlp"].get_weights()])
    assert KerasMember(copy).fingerprint() != before


def test_memory_serves_keras_predictions_from_the_cache(tmp_path, digits, models):
    _, _, Xv, yv = digits
    members = [("mlp", CountingMember(models["mlp"])), ("cnn", CountingMember(models["cnn"]))]
    CountingMember.calls = 0
    for method in ("slsqp", "caruana", "nnls", "slsqp"):
        blend = BlendClassifier(members, method=method, memory=str(tmp_path)).fit(Xv, yv)
    assert CountingMember.calls == 2  # once per member
    StackClassifier(members, memory=str(tmp_path)).fit(Xv, yv)
    assert CountingMember.calls == 2  # another meta-learner on the same data: still cached
    uncached = BlendClassifier(members, method="slsqp").fit(Xv, yv)
    np.testing.assert_allclose(blend.predict_proba(Xv), uncached.predict_proba(Xv), atol=1e-12)
    assert CountingMember.calls == 6  # 2 cached predicts at predict time, 2 + 2 uncached


def test_threads_give_the_same_result(digits, models):
    X, y, Xv, yv = digits
    members = [models["mlp"], models["cnn"], flat(DecisionTreeClassifier(max_depth=4, random_state=0))]
    one = BlendClassifier(members, method="slsqp", cv=3, n_jobs=1).fit(Xv, yv)
    two = BlendClassifier(members, method="slsqp", cv=3, n_jobs=2).fit(Xv, yv)
    np.testing.assert_allclose(one.weights_, two.weights_, atol=1e-12)
    np.testing.assert_array_equal(one.predict_proba(X[:500]), two.predict_proba(X[:500]))


def test_to_keras_matches_predict_proba(tmp_path, digits, models):
    _, _, Xv, yv = digits
    members = [models["mlp"], KerasMember(models["cnn"], classes=NAMES), KerasMember(models["mlp"], classes=NAMES)]
    blend = BlendClassifier(members[1:], weights=[0.7, 0.3]).fit(Xv, NAMES[yv])
    fused = blend.to_keras()
    assert isinstance(fused, keras.Model)
    assert fused.count_params() > 0 and not fused.get_layer("weighted_sum").trainable
    np.testing.assert_allclose(fused.predict(Xv, verbose=0), blend.predict_proba(Xv), atol=1e-5)
    fused.save(tmp_path / "fused.keras")
    reloaded = keras.saving.load_model(tmp_path / "fused.keras")
    np.testing.assert_allclose(reloaded.predict(Xv, verbose=0), blend.predict_proba(Xv), atol=1e-5)

    learned = BlendClassifier([models["mlp"], models["cnn"]], method="slsqp").fit(Xv, yv)
    np.testing.assert_allclose(learned.to_keras().predict(Xv, verbose=0), learned.predict_proba(Xv), atol=1e-5)

    binary = BlendClassifier([models["is_seven"], models["is_seven"]], weights=[1, 3]).fit(Xv, (yv == 7).astype(int))
    np.testing.assert_allclose(binary.to_keras().predict(Xv, verbose=0), binary.predict_proba(Xv), atol=1e-5)


def test_to_keras_errors(digits, models):
    X, y, Xv, yv = digits
    tree = flat(DecisionTreeClassifier(max_depth=2)).fit(X, y)
    with pytest.raises(ValueError, match=r"Keras members only; not Keras: \['tree'\]"):
        BlendClassifier([models["mlp"], ("tree", FrozenEstimator(tree))]).fit(Xv, yv).to_keras()
    inputs = keras.Input((28, 28, 1), dtype="float32")
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    floats = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x), name="floats")
    blend = BlendClassifier([models["mlp"], floats]).fit(Xv, yv)  # uint8 images are cast for 'floats'
    with pytest.raises(ValueError, match="same input; got mlp: .*uint8, floats: .*float32"):
        blend.to_keras()
    with pytest.raises(ValueError, match="voting='soft'"):
        BlendClassifier([models["mlp"]], voting="hard").fit(Xv, yv).to_keras()


def test_diversity_and_keras_regressors(digits, models):
    _, _, Xv, yv = digits
    report = diversity([models["mlp"], models["cnn"]], Xv, yv)
    assert [m["name"] for m in report.members] == ["mlp", "cnn"]
    assert 0 < report.pairs[0]["disagreement"] < 0.5
    # a Keras regressor: predict the mean pixel intensity
    inputs = keras.Input((28, 28, 1), dtype="uint8")
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    reg = keras.Model(inputs, keras.layers.Dense(1)(x), name="intensity")
    target = Xv.reshape(len(Xv), -1).mean(axis=1) / 255
    blend = BlendRegressor([reg, flat(Ridge())], method="slsqp", cv=3).fit(Xv, target)
    assert blend.predict(Xv).shape == (1000,) and blend.weights_[1] > 0.9  # the untrained Keras model is noise
    keras_only = BlendRegressor([reg, models["is_seven"]], weights=[1, 3]).fit(Xv, target)
    np.testing.assert_allclose(keras_only.to_keras().predict(Xv, verbose=0)[:, 0], keras_only.predict(Xv), atol=1e-5)


def test_keras_is_a_registered_member_kind_with_unchanged_cache_keys(models, digits):
    import hashlib

    from ensemble import kind_of
    from ensemble.kinds import keras_weights_digest

    model = models["mlp"]
    kind = kind_of(model)
    assert kind.name == "keras" and kind.fuses_to_keras
    member = kind.wrap(model)
    assert isinstance(member, KerasMember) and kind_of(member) is kind and member.default_name() == "mlp"
    assert kind_of(keras.layers.Dense(3)) is None  # a layer is not a model
    # the digest of release 0.1 (path, dtype, shape, then the bytes of each weight), computed here by hand:
    # fingerprints (cache keys) of Keras members did not change
    old = hashlib.sha256()
    for w in model.weights:
        a = np.ascontiguousarray(w.numpy())
        old.update(f"{w.path}:{a.dtype}:{a.shape}".encode() + a.tobytes())
    assert keras_weights_digest(model) == old.hexdigest()
    assert member.fingerprint() != kind.wrap(models["cnn"]).fingerprint()
    _, _, Xv, yv = digits
    with pytest.raises(ValueError, match="Member 'mlp': the Keras model 'mlp' takes uint8 inputs"):
        BlendClassifier([model]).fit(Xv / 255.0, yv)
