"""Training length from the data size (batch_size="auto", epochs="auto") and the TrainingWarnings of a fit cut short.

Real TensorFlow on a few hundred MNIST images; the rule itself is checked for 50,000 examples without training.
"""

import warnings

import numpy as np
import pytest
from sklearn.base import clone

from zoo import datasets
from zoo.estimator import FEW_STEPS, TrainingWarning, ZooClassifier, resolve_auto


def test_auto_resolves_from_the_examples_trained_on():
    assert resolve_auto(270) == (16, 118)  # 300 images less the 10% slice: 17 steps per epoch, ~2,000 steps
    assert resolve_auto(45_000) == (128, 20)  # 50,000 images: 352 steps per epoch, the floor of 20 epochs
    assert resolve_auto(5_000) == (64, 26)  # 50 -> 64; 79 steps per epoch
    assert resolve_auto(40) == (16, 200)  # 3 steps per epoch: the cap of 200 epochs
    assert resolve_auto(45_000, batch_size=32) == (32, 20)  # an explicit value is kept, the other resolved with it
    assert resolve_auto(270, epochs=7) == (16, 7)
    assert resolve_auto(270, 128, 7) == (128, 7)


def test_the_defaults_are_auto_and_explicit_values_from_recipes_are_kept():
    clf = ZooClassifier("mlp")
    assert clf.get_params()["epochs"] == "auto" and clf.get_params()["batch_size"] == "auto"
    assert clone(clf).get_params()["epochs"] == "auto"
    zoo_entry = ZooClassifier.from_zoo("mnist_mlp")
    assert isinstance(zoo_entry.epochs, int) and isinstance(zoo_entry.batch_size, int)
    with pytest.raises(ValueError, match='epochs must be a positive integer or "auto"'):
        ZooClassifier("mlp", epochs="auto-ish").fit(np.zeros((4, 3)), [0, 1, 0, 1])


def _images(n=300):
    X, y = datasets.load("mnist", "train")
    return X[:n], y[:n]


def test_an_auto_fit_on_300_images_uses_the_resolved_values_and_records_them(data_dir):
    X, y = _images()
    clf = ZooClassifier("mlp", builder__units=(16,), patience=2, learning_rate=3e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingWarning)
        clf.fit(X, y)
    assert (clf.batch_size_, clf.epochs_) == (16, 118)
    assert clf.spec_["recipe"]["batch_size"] == 16 and clf.spec_["recipe"]["epochs"] == 118
    assert 1 <= len(clf.history_["loss"]) <= 118
    assert clf.get_params()["epochs"] == "auto"  # the parameter is left as given


def _fit(X, y, **params):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = ZooClassifier("mlp", builder__units=(16,), **params).fit(X, y)
    return clf, [str(w.message) for w in caught if issubclass(w.category, TrainingWarning)]


def test_a_best_last_epoch_and_too_few_steps_warn(data_dir):
    X, y = _images()
    clf, messages = _fit(X, y, epochs=3, batch_size=128, learning_rate=1e-3)
    assert clf.best_epoch_ == 3 == len(clf.history_["loss"])
    assert any("the best epoch on the early-stopping slice is the last one (3)" in m and "epochs=6" in m for m in messages)
    assert any(f"only 9 optimisation steps (3 epochs of batches of 128), fewer than {FEW_STEPS}" in m for m in messages)


def test_no_warning_when_training_was_long_enough(data_dir):
    X, y = _images()
    # no slice, hence no best epoch to judge; 19 steps per epoch for 30 epochs
    clf, messages = _fit(X, y, epochs=30, batch_size=16, early_stopping_size=None)
    assert len(clf.history_["loss"]) == 30 and messages == []
    # early stopping ended it before the last epoch, after more than FEW_STEPS steps
    clf, messages = _fit(X, y, epochs=30, batch_size=1, monitor="val_accuracy", patience=0, learning_rate=3e-3)
    assert clf.best_epoch_ < len(clf.history_["loss"]) < 30 and messages == []
