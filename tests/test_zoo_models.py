"""Every shipped model loads offline, matches its registry entry and still scores what the registry says."""

import shutil

import numpy as np
import pytest

import zoo
from zoo import ChecksumError, Registry
from kze.files import sha256_file

REGISTRY = Registry()


@pytest.mark.parametrize("name", REGISTRY.names())
def test_entry_loads_matches_hash_and_parameters_and_keeps_its_accuracy(name):
    entry = REGISTRY.entry(name)
    assert sha256_file(REGISTRY.weights_path(name)) == entry["weights"]["sha256"]
    model = zoo.load(name)
    assert model.count_params() == entry["parameters"]
    assert model.compiled
    X, y = zoo.datasets.load(entry["dataset"], "test")
    proba = zoo.predict_proba(model, X[:1000])
    assert proba.shape == (1000, len(entry["classes"]))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    accuracy = float(np.mean(proba.argmax(axis=1) == y[:1000]))
    assert accuracy >= entry["metrics"]["test"]["accuracy"] - 0.015


def test_untrained_architecture_has_the_same_shape_but_not_the_weights():
    trained = zoo.load("mnist_sepconv")
    fresh = zoo.load("mnist_sepconv", weights=None)
    assert fresh.count_params() == trained.count_params()
    X, y = zoo.datasets.load("mnist", "test")
    assert np.mean(zoo.predict_proba(fresh, X[:500]).argmax(1) == y[:500]) < 0.5


def test_text_model_predicts_from_raw_strings():
    model = zoo.load("imdb_bow")
    proba = zoo.predict_proba(model, np.array(["A wonderful, moving film. Superb acting.", "Dull, boring and far too long. A waste of time."], dtype=object))
    assert proba[0, 1] > 0.5 > proba[1, 1]


@pytest.fixture
def copied_registry(tmp_path):
    """The shipped registry and one entry's weights, copied where a test may damage them."""
    shutil.copy(REGISTRY.path, tmp_path / "registry.yaml")
    (tmp_path / "weights").mkdir()
    shutil.copy(REGISTRY.weights_path("mnist_mlp"), tmp_path / "weights")
    return Registry(tmp_path / "registry.yaml")


def test_tampered_weights_give_a_clear_error_and_no_model(copied_registry):
    path = copied_registry.weights_path("mnist_mlp")
    assert zoo.load("mnist_mlp", registry=copied_registry).count_params() > 0
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match=r"mnist_mlp weights file .* has sha256 .* expected"):
        zoo.load("mnist_mlp", registry=copied_registry)


def test_missing_weights_give_a_clear_error(copied_registry):
    copied_registry.weights_path("mnist_mlp").unlink()
    with pytest.raises(FileNotFoundError, match="mnist_mlp: weights file .* is missing"):
        zoo.load("mnist_mlp", registry=copied_registry)


def test_weights_argument_is_checked():
    with pytest.raises(ValueError, match="weights must be 'pretrained' or None"):
        zoo.load("mnist_mlp", weights="imagenet")
