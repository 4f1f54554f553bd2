"""Keras models refuse inputs whose dtype, range or shape they were not trained on, before predicting."""

import warnings

import keras
import numpy as np
import pytest
from sklearn.exceptions import DataConversionWarning

import zoo
from ensemble import BlendClassifier, KerasMember
from zoo.models import scores


@pytest.fixture(scope="module")
def mnist():
    X, y = zoo.datasets.load("mnist", "validation")
    return X[:200], y[:200], zoo.load("mnist_mlp")


@pytest.fixture(scope="module")
def float_model():
    """A small model trained on float features (input dtype float32)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(4,), dtype="float32")
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4)).astype("float32")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(X, rng.integers(0, 3, 120), epochs=1, verbose=0)
    return model, X


def _bad_images(X):
    return {
        "floats in [0, 1]": (X / 255.0).astype("float32"),
        "NaN": np.where(X > 128, np.nan, X.astype("float32")),
        "negative": X.astype(np.int64) - 1,
        "above 255": X.astype(np.int64) + 1,
        "bool": X > 128,
    }


@pytest.mark.parametrize("case", ["floats in [0, 1]", "NaN", "negative", "above 255", "bool"])
def test_uint8_image_models_refuse_other_dtypes_and_ranges(mnist, case):
    X, y, model = mnist
    bad = _bad_images(X)[case]
    for predict in (lambda A: zoo.predict_proba(model, A), lambda A: KerasMember(model).predict_proba(A)):
        with pytest.raises(ValueError, match=r"takes uint8 inputs \(integers 0 to 255") as info:
            predict(bad)
        assert "X holds" in str(info.value)
    with pytest.raises(ValueError, match=r"Member 'mlp': .*uint8"):
        BlendClassifier([("mlp", model)]).fit(bad, y)


def test_uint8_image_models_take_uint8_and_in_range_integers(mnist):
    X, _, model = mnist
    expected = zoo.predict_proba(model, X)
    np.testing.assert_array_equal(zoo.predict_proba(model, X.astype(np.int64)), expected)
    np.testing.assert_allclose(KerasMember(model).predict_proba(X[..., 0]), expected, atol=1e-12)
    with pytest.raises(ValueError, match="give the unscaled values"):
        zoo.predict_proba(model, X.astype("float32"))  # even integral floats: the caller scaled or converted


def test_float_models_take_numbers_but_not_nan(float_model):
    model, X = float_model
    member = KerasMember(model)
    assert member.predict_proba(X).shape == (120, 3)
    assert member.predict_proba(X.astype(np.float64)).shape == (120, 3)
    assert member.predict_proba(np.round(X).astype(np.int64)).shape == (120, 3)
    for bad in (np.where(X > 1, np.nan, X), np.where(X > 1, np.inf, X)):
        with pytest.raises(ValueError, match="NaN or infinite"):
            member.predict_proba(bad)
    with pytest.raises(ValueError, match="takes numbers"):
        member.predict_proba(X.astype(str))


def test_text_models_take_strings_only():
    model = zoo.load("imdb_bow")
    reviews = ["A wonderful, moving film.", "Dull and far too long."]
    assert zoo.predict_proba(model, reviews).shape == (2, 2)
    with pytest.raises(ValueError, match=r"takes raw text \(strings\); X holds float64 values"):
        zoo.predict_proba(model, np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match="takes raw text"):
        KerasMember(model).predict_proba(np.array(["fine", None], dtype=object))


@pytest.mark.parametrize("X", [np.zeros((0, 28, 28, 1), np.uint8), np.array(3, np.uint8)], ids=["empty", "0-d"])
def test_empty_and_scalar_inputs_are_refused(mnist, X):
    model = mnist[2]
    match = "no samples" if X.ndim else "single value"
    with pytest.raises(ValueError, match=match):
        zoo.predict_proba(model, X)
    with pytest.raises(ValueError, match=match):
        KerasMember(model).predict(X)


def test_scores_ravel_a_column_of_labels_with_a_warning(mnist):
    X, y, model = mnist
    proba = zoo.predict_proba(model, X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = scores(y, proba)
    with pytest.warns(DataConversionWarning):
        assert scores(y[:, None], proba) == expected
    assert expected["accuracy"] > 0.9
    with pytest.raises(ValueError, match="1d array"):
        scores(np.stack([y, y], axis=1), proba)
