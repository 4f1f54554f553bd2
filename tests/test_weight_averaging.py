"""Weight averaging: ``ZooClassifier(ema=m)``, Keras' exponential moving average of the weights.

Real TensorFlow, real Fashion-MNIST images (a few hundred), tiny models, a few epochs.
"""

import json
import pickle
import warnings

import keras
import numpy as np
import pytest

from zoo import datasets
from zoo.estimator import TrainingWarning, ZooClassifier
from interrupt import InterruptAfter

PARAMS = dict(builder__filters=(8, 16), epochs=4, batch_size=32, learning_rate=3e-3, patience=10, early_stopping_size=40)


def _images(n=340):
    X, y = datasets.load("fashion_mnist", "train")
    return X[:n], y[:n]


class _Record(keras.callbacks.Callback):
    """The model's weights and the optimizer's averages at every epoch's end (a user callback: after the raw weights are back)."""

    def __init__(self):
        super().__init__()
        self.weights, self.averages, self.val_loss = [], [], []

    def on_epoch_end(self, epoch, logs=None):
        self.val_loss.append(float((logs or {}).get("val_loss", np.nan)))
        self.weights.append(self.model.get_weights())
        self.averages.append(_averages(self.model))


def _averages(model) -> list:
    return [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables if "average" in v.path]


def _fit(record=None, **params):
    X, y = _images()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingWarning)  # 36 steps: tiny on purpose
        return ZooClassifier("bn_cnn", **{**PARAMS, **params}).fit(X, y, callbacks=[record] if record else None)


@pytest.fixture(scope="module")
def fits(data_dir):
    record = _Record()
    return _fit(record, ema=0.8), record, _fit()


def test_the_model_holds_the_averaged_weights_of_the_best_epoch_scored_on_the_slice(fits):
    clf, record, plain = fits
    best = clf.best_epoch_ - 1
    trainable = {id(v) for v in clf.model_.trainable_weights}
    is_trainable = [id(v) in trainable for v in clf.model_.weights]
    final = clf.model_.get_weights()
    averages = iter(record.averages[best])
    for w, raw, train in zip(final, record.weights[best], is_trainable):
        if train:  # the average, not the raw weights of that epoch
            np.testing.assert_allclose(w, next(averages), rtol=1e-6, atol=1e-7)
        else:  # BatchNormalization's moving statistics: the raw run's
            np.testing.assert_array_equal(w, raw)
    assert max(float(np.abs(w - raw).max()) for w, raw, t in zip(final, record.weights[best], is_trainable) if t) > 1e-3
    # the slice's val_loss of the best epoch is that of model_ (the averaged weights), as early_stopping_scores_ measures it
    assert clf.history_["val_loss"][best] == pytest.approx(clf.early_stopping_scores_["log_loss"], rel=1e-4)
    assert clf.best_epoch_ == int(np.argmin(clf.history_["val_loss"])) + 1
    assert set(clf.history_) >= {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} and len(clf.history_["val_loss"]) == 4
    # the same seed without averaging trains other weights
    assert max(float(np.abs(a - b).max()) for a, b in zip(final, plain.model_.get_weights())) > 1e-3


def test_the_recipe_records_ema_and_from_spec_and_pickling_restore_it(fits):
    clf, _, plain = fits
    assert clf.spec_["recipe"]["ema"] == 0.8 and "ema" not in plain.spec_["recipe"]
    assert clf.spec_["recipe"]["optimizer"] == plain.spec_["recipe"]["optimizer"] == {"name": "adam", "learning_rate": 3e-3}
    again = ZooClassifier.from_spec(json.loads(json.dumps(clf.spec_)))
    assert again.ema == 0.8 and ZooClassifier.from_spec(plain.spec_).ema is None
    X, _ = _images(30)
    restored = pickle.loads(pickle.dumps(clf))
    assert restored.ema == 0.8
    np.testing.assert_allclose(restored.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    state = clf.__getstate__()
    del state["ema"]  # pickled before the parameter existed
    old = ZooClassifier.__new__(ZooClassifier)
    old.__setstate__(state)
    assert old.ema is None


def test_without_a_slice_the_model_is_the_last_average(data_dir):
    record = _Record()
    X, y = _images()
    with pytest.warns(TrainingWarning, match=r"ema=0.99: after 22 optimisation steps 80% of the weight average still sits on the initial weights"):
        clf = ZooClassifier("bn_cnn", builder__filters=(8, 16), epochs=2, batch_size=32, ema=0.99, early_stopping_size=None).fit(X, y, callbacks=[record])
    assert clf.early_stopping_scores_ is None and clf.best_epoch_ == 2
    trainable = {id(v) for v in clf.model_.trainable_weights}
    got = [w for w, v in zip(clf.model_.get_weights(), clf.model_.weights) if id(v) in trainable]
    for w, average in zip(got, record.averages[-1], strict=True):
        np.testing.assert_allclose(w, average, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("params,message", [
    ({"ema": 1.0}, r"ema must be None or a momentum in \(0, 1\) such as 0.99, got 1.0"),
    ({"ema": 0}, r"ema must be None or a momentum in \(0, 1\).*got 0"),
    ({"ema": -0.5}, r"ema must be None or a momentum.*got -0.5"),
    ({"ema": True}, r"ema must be None or a momentum.*got True"),
    ({"ema": "0.99"}, r"ema must be None or a momentum.*got '0.99'"),
    ({"ema": 0.9, "snapshots": 2, "epochs": 4}, r"ema=0.9 cannot be combined with snapshots=2"),
    ({"optimizer_options": {"use_ema": True}}, r"optimizer_options use_ema: set the weight average with ZooClassifier\(ema=MOMENTUM\)"),
    ({"ema": 0.9, "optimizer_options": {"ema_momentum": 0.9}}, r"optimizer_options ema_momentum: set the weight average"),
])
def test_invalid_settings_are_refused_before_training(params, message):
    X, y = np.zeros((20, 8, 8), np.uint8), np.arange(20) % 2
    with pytest.raises(ValueError, match=message):
        ZooClassifier("bn_cnn", **params).fit(X, y)


class _AtStart(keras.callbacks.Callback):
    """The optimizer's averages and step counter when training (re)starts, after the backup was restored."""

    def on_train_begin(self, logs=None):
        self.averages = _averages(self.model)
        self.iterations = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))


def test_a_resumed_fit_goes_on_with_the_backed_up_averages(tmp_path, data_dir):
    X, y = _images()
    params = {**PARAMS, "ema": 0.8}
    record = _Record()
    with pytest.raises(KeyboardInterrupt), warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingWarning)
        ZooClassifier("bn_cnn", **params).fit(X, y, callbacks=[record, InterruptAfter(2)], backup_dir=tmp_path / "b")
    assert json.loads((tmp_path / "b" / "state.json").read_text())["epoch"] == 2
    start = _AtStart()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingWarning)
        resumed = ZooClassifier("bn_cnn", **params).fit(X, y, callbacks=[start], backup_dir=tmp_path / "b")
    assert start.iterations == 2 * 10  # 300 images in batches of 32: 10 steps an epoch
    assert len(start.averages) == len(resumed.model_.trainable_weights) > 0
    for restored, saved in zip(start.averages, record.averages[1], strict=True):  # the averages of epoch 2, not zeros
        np.testing.assert_array_equal(restored, saved)
    assert max(float(np.abs(a).max()) for a in start.averages) > 0.01
    assert len(resumed.history_["loss"]) == 4 and resumed.spec_["recipe"]["ema"] == 0.8
    assert resumed.history_["val_loss"][:2] == pytest.approx(record.val_loss)
    assert resumed.history_["val_loss"][resumed.best_epoch_ - 1] == pytest.approx(resumed.early_stopping_scores_["log_loss"], rel=1e-4)
    assert not (tmp_path / "b").exists()
    with pytest.raises(KeyboardInterrupt), warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingWarning)
        ZooClassifier("bn_cnn", **params).fit(X, y, callbacks=[InterruptAfter(1)], backup_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="holds the backup of another training"):  # ema is part of the fit's identity
        ZooClassifier("bn_cnn", **{**params, "ema": 0.9}).fit(X, y, backup_dir=tmp_path / "c")
