"""zoo.ZooClassifier: the zoo's architectures as a scikit-learn classifier, on data the zoo never saw."""

import pickle

import joblib
import keras
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

import ensemble
import zoo
from zoo import ZooClassifier

# A configuration small enough for scikit-learn's checks, which fit some hundred times.
TINY = {"builder__units": (8,), "epochs": 2, "batch_size": 16, "learning_rate": 0.03}


def _expected_failed_checks(estimator):
    return {
        "check_do_not_raise_errors_in_init_or_set_params": (
            "__init__ raises TypeError for a keyword that is neither a parameter nor a builder__ "
            "hyperparameter, as any Python function does; the check passes the name of the "
            "**builder_params catch-all itself as a keyword"
        ),
    }


@parametrize_with_checks([ZooClassifier(**TINY)], expected_failed_checks=_expected_failed_checks)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    """sklearn's 8x8 digit images (values 0-16) as uint8 images of shape (n, 8, 8), split."""
    d = load_digits()
    images = np.minimum(d.images * 16, 255).astype(np.uint8)
    return train_test_split(images, d.target, test_size=300, stratify=d.target, random_state=0)


@pytest.fixture(scope="module")
def digits_cnn(digits):
    X_train, _, y_train, _ = digits
    clf = ZooClassifier("bn_cnn", builder__filters=(8, 16), builder__dense=16, builder__dropout=0.1, epochs=4, batch_size=64, learning_rate=3e-3)
    return clf.fit(X_train, y_train)


def _shapes(n, seed):
    """32x32 RGB images of a horizontal bar, a vertical bar or a square, at random places and colours."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(np.array(["hbar", "square", "vbar"]), size=n)
    X = rng.integers(0, 60, size=(n, 32, 32, 3)).astype(np.uint8)
    for img, label in zip(X, labels):
        r, c = rng.integers(4, 20, size=2)
        h, w = {"hbar": (3, 12), "vbar": (12, 3), "square": (7, 7)}[label]
        img[r : r + h, c : c + w] = rng.integers(150, 256, size=3)
    return X, labels


# --------------------------------------------------------------------------- data the zoo never saw


def test_8x8_grey_images_without_a_channel_axis(digits, digits_cnn):
    _, X_test, y_train, y_test = digits
    clf = digits_cnn
    assert clf.model_.input_shape == (None, 8, 8, 1) and clf.model_.output_shape == (None, 10)
    assert clf.spec_["params"] == {"input_shape": [8, 8, 1], "num_classes": 10, "filters": [8, 16], "dense": 16, "dropout": 0.1}
    np.testing.assert_array_equal(clf.classes_, np.arange(10))
    proba = clf.predict_proba(X_test)
    assert proba.shape == (300, 10) and np.allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(clf.predict(X_test), proba.argmax(axis=1))
    np.testing.assert_array_equal(clf.predict(X_test[..., None]), clf.predict(X_test))  # the channel axis is optional
    assert clf.score(X_test, y_test) > 0.8

    # history_ and the early-stopping slice: 10 % of the fit data, the restored epoch's score
    assert set(clf.history_) >= {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    assert len(clf.history_["loss"]) == 4 and 1 <= clf.best_epoch_ <= 4
    assert clf.best_epoch_ == 1 + int(np.argmin(clf.history_["val_loss"]))
    assert clf.spec_["recipe"]["early_stopping_size"] == int(np.ceil(0.1 * len(y_train)))
    assert clf.early_stopping_scores_["accuracy"] == pytest.approx(clf.history_["val_accuracy"][clf.best_epoch_ - 1], abs=1e-6)
    assert clf.early_stopping_scores_["log_loss"] == pytest.approx(clf.history_["val_loss"][clf.best_epoch_ - 1], rel=1e-3)


def test_32x32_colour_images_with_three_string_classes():
    X, y = _shapes(900, seed=0)
    X_test, y_test = _shapes(300, seed=1)
    clf = ZooClassifier("residual", builder__stem=8, builder__filters=(8, 16), builder__blocks=1, epochs=6, batch_size=32, learning_rate=3e-3)
    clf.fit(X, y)
    np.testing.assert_array_equal(clf.classes_, ["hbar", "square", "vbar"])
    assert clf.model_.input_shape == (None, 32, 32, 3)
    assert set(clf.predict(X_test)) <= set(clf.classes_)
    assert clf.score(X_test, y_test) > 0.9


def test_raw_strings_for_text_builders(data_dir):
    X, y = zoo.datasets.load("imdb", "validation")  # 5,000 reviews the shipped models never trained on
    labels = np.array(["negative", "positive"])[y]
    clf = ZooClassifier("text_bow", builder__max_tokens=5000, builder__units=8, epochs=3, batch_size=64, early_stopping_size=300)
    clf.fit(list(X[:2000]), labels[:2000])
    assert clf.model_.output_shape[-1] == 1 and len(clf.vocabulary_) == 5000 - 1  # one sigmoid unit; the OOV token aside
    np.testing.assert_array_equal(clf.classes_, ["negative", "positive"])
    proba = clf.predict_proba(X[4000:])
    assert proba.shape == (1000, 2)
    positive = clf.model_.predict(X[4000:4010], verbose=0)[:, 0]  # the sigmoid is P(classes_[1])
    np.testing.assert_allclose(proba[:10, 1], positive, rtol=1e-6)
    assert clf.score(X[4000:], labels[4000:]) > 0.75


def test_text_builders_take_more_than_two_classes():
    rng = np.random.default_rng(0)
    topics = {"sport": "goal match team score coach", "food": "bread cheese soup salt oven", "code": "python bug compile test merge"}
    filler = ["the", "a", "of", "and", "to", "in", "is", "it", "that"]
    texts, labels = [], []
    for _ in range(600):
        topic = rng.choice(list(topics))
        words = list(rng.choice(topics[topic].split(), size=3)) + list(rng.choice(filler, size=8))
        texts.append(" ".join(rng.permutation(words)))
        labels.append(topic)
    clf = ZooClassifier("text_conv1d", builder__max_tokens=100, builder__sequence_length=16, builder__embedding_dim=8, builder__filters=8, builder__conv_layers=1, epochs=8, batch_size=32, learning_rate=1e-2)
    clf.fit(np.array(texts[:500]), labels[:500])
    assert clf.model_.output_shape == (None, 3)
    assert clf.score(texts[500:], labels[500:]) > 0.9


# --------------------------------------------------------------------------- scikit-learn integration


def test_builder_hyperparameters_are_parameters():
    clf = ZooClassifier("bn_cnn", builder__filters=(8, 16), epochs=3)
    params = clf.get_params()
    assert params["builder__filters"] == (8, 16) and params["epochs"] == 3 and params["builder"] == "bn_cnn"
    copy = clone(clf)
    assert copy.get_params() == params and copy is not clf
    copy.set_params(builder__dropout=0.5, builder__filters=(4,), learning_rate=0.1)
    assert copy.get_params()["builder__dropout"] == 0.5 and copy.get_params()["builder__filters"] == (4,)
    assert clf.get_params() == params  # the original is untouched
    assert "builder__filters=(8, 16)" in repr(clf)
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'"):
        ZooClassifier(epoch=3)
    with pytest.raises(ValueError, match="Invalid parameter 'epoch'"):
        clf.set_params(epoch=3)


def test_bad_settings_are_clear_errors(digits):
    X_train, _, y_train, _ = digits
    X, y = X_train[:100], y_train[:100]
    with pytest.raises(ValueError, match="builder 'bn_cnn' has no hyperparameter units; it takes builder__filters"):
        ZooClassifier("bn_cnn", builder__units=3).fit(X, y)
    with pytest.raises(ValueError, match="builder__num_classes: set by fit from the data"):
        ZooClassifier("bn_cnn", builder__num_classes=3).fit(X, y)
    with pytest.raises(ValueError, match="unknown builder 'vgg'"):
        ZooClassifier("vgg").fit(X, y)
    with pytest.raises(ValueError, match="uint8 images"):
        ZooClassifier("bn_cnn").fit(X.astype(np.float32), y)
    with pytest.raises(ValueError, match="use builder='mlp' for feature vectors"):
        ZooClassifier("bn_cnn").fit(X.reshape(100, -1), y)
    with pytest.raises(ValueError, match="raw strings"):
        ZooClassifier("text_bow").fit(X, y)
    with pytest.raises(ValueError, match="at least 2 classes; got 1 class"):
        ZooClassifier("bn_cnn").fit(X, np.zeros(100))
    with pytest.raises(ValueError, match="early_stopping_size"):
        ZooClassifier("bn_cnn", early_stopping_size=1.5).fit(X, y)
    with pytest.raises(ValueError, match="monitor must be one of"):
        ZooClassifier("bn_cnn", monitor="loss").fit(X, y)


def test_wrong_inputs_at_predict_time_are_clear_errors(digits, digits_cnn):
    _, X_test, _, _ = digits
    with pytest.raises(ValueError, match=r"images of shape \(9, 9, 1\), but ZooClassifier was fitted on images of shape \(8, 8, 1\)"):
        digits_cnn.predict(np.zeros((2, 9, 9), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        digits_cnn.predict(X_test.astype(float))


def test_grid_search_and_cross_validation_on_feature_vectors():
    X, y = load_iris(return_X_y=True)
    search = GridSearchCV(ZooClassifier(**TINY), {"builder__units": [(4,), (16,)], "learning_rate": [0.03]}, cv=2)
    search.fit(X, y)
    assert set(search.best_params_) == {"builder__units", "learning_rate"}
    assert search.best_estimator_.spec_["params"]["units"] == list(search.best_params_["builder__units"])
    assert search.best_estimator_.n_features_in_ == 4
    assert search.score(X, y) > 0.6
    scores = cross_val_score(ZooClassifier(**TINY), X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.6


def test_unfitted_member_of_a_stack_with_out_of_fold_fits(digits):
    X_train, X_test, y_train, y_test = digits
    cnn = ZooClassifier("bn_cnn", builder__filters=(8,), builder__dense=8, epochs=3, batch_size=64, learning_rate=3e-3)
    flat = make_pipeline(FunctionTransformer(np.reshape, kw_args={"shape": (-1, 64)}), LogisticRegression(max_iter=500))
    stack = ensemble.StackClassifier([("cnn", cnn), ("logreg", flat)], cv=2).fit(X_train, y_train)
    fitted_cnn = stack.named_estimators_["cnn"]
    assert fitted_cnn is not cnn and not hasattr(cnn, "model_")  # the member given stays unfitted
    assert isinstance(fitted_cnn.model_, keras.Model)
    assert stack.predict_proba(X_test).shape == (300, 10)
    assert stack.score(X_test, y_test) > 0.8


def test_joblib_round_trip_predicts_identically(tmp_path, digits, digits_cnn):
    _, X_test, _, _ = digits
    joblib.dump(digits_cnn, tmp_path / "cnn.joblib")
    restored = joblib.load(tmp_path / "cnn.joblib")
    np.testing.assert_array_equal(restored.predict_proba(X_test), digits_cnn.predict_proba(X_test))
    assert restored.model_ is not digits_cnn.model_ and restored.get_params() == digits_cnn.get_params()
    assert restored.best_epoch_ == digits_cnn.best_epoch_ and restored.spec_ == digits_cnn.spec_
    # the pickled state holds weights, not the Keras model: the same model hashes the same (prediction caches)
    assert joblib.hash(restored) == joblib.hash(digits_cnn)
    assert pickle.loads(pickle.dumps(clone(digits_cnn))).get_params() == digits_cnn.get_params()


def test_joblib_round_trip_of_text_and_feature_models(tmp_path):
    X, y = load_iris(return_X_y=True)
    features = ZooClassifier(**TINY).fit(X, y)
    restored = pickle.loads(pickle.dumps(features))  # the Normalization layer's statistics come back
    np.testing.assert_array_equal(restored.predict_proba(X), features.predict_proba(X))
    texts = np.array(["good fun film", "bad dull film", "fun and good", "dull and bad"] * 10)
    labels = np.array(["pos", "neg", "pos", "neg"] * 10)
    text = ZooClassifier("text_bow", builder__max_tokens=50, epochs=2).fit(texts, labels)
    joblib.dump(text, tmp_path / "text.joblib")
    restored = joblib.load(tmp_path / "text.joblib")
    assert restored.vocabulary_ == text.vocabulary_
    np.testing.assert_array_equal(restored.predict_proba(texts), text.predict_proba(texts))


def test_same_seed_same_model_other_seed_other_model():
    X, y = load_iris(return_X_y=True)
    a = ZooClassifier(**TINY, random_state=3).fit(X, y).predict_proba(X)
    b = ZooClassifier(**TINY, random_state=3).fit(X, y).predict_proba(X)
    c = ZooClassifier(**TINY, random_state=4).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


# --------------------------------------------------------------------------- training settings


def test_callbacks_see_every_epoch_and_can_stop_training():
    X, y = load_iris(return_X_y=True)
    seen = []
    recorder = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(dict(logs)))

    class StopAfterTwo(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    clf = ZooClassifier(**{**TINY, "epochs": 5}).fit(X, y, callbacks=[recorder, StopAfterTwo()])
    assert len(seen) == 2 and len(clf.history_["loss"]) == 2
    assert [round(s["val_loss"], 6) for s in seen] == [round(v, 6) for v in clf.history_["val_loss"]]
    assert all({"val_loss", "val_accuracy"} <= set(s) for s in seen)  # what a pruning callback reads


def test_without_a_slice_nothing_is_held_out():
    X, y = load_iris(return_X_y=True)
    clf = ZooClassifier(**TINY, early_stopping_size=None).fit(X, y)
    assert clf.early_stopping_scores_ is None and "val_loss" not in clf.history_
    assert clf.best_epoch_ == 2 and clf.spec_["recipe"]["early_stopping_size"] == 0
    assert "early_stopping" not in clf.spec_["recipe"]["callbacks"]
    assert ZooClassifier.from_spec(clf.spec_).early_stopping_size is None


def test_mixed_precision_training_gives_a_float32_model():
    X, y = load_iris(return_X_y=True)
    before = keras.config.dtype_policy().name
    clf = ZooClassifier(**TINY, precision="mixed_bfloat16").fit(X, y)
    assert keras.config.dtype_policy().name == before
    assert clf.model_.compute_dtype == "float32" and clf.spec_["recipe"]["precision"] == "mixed_bfloat16"
    assert clf.predict_proba(X).shape == (150, 3)


# --------------------------------------------------------------------------- from the zoo


@pytest.mark.parametrize("name", zoo.list_models())
def test_from_zoo_carries_the_entry(name):
    entry = zoo.info(name)
    clf = ZooClassifier.from_zoo(name)
    params = clf.get_params()
    assert params["builder"] == entry["builder"]
    assert {k[len("builder__") :]: v for k, v in params.items() if k.startswith("builder__")} == {
        k: v for k, v in entry["params"].items() if k not in ("input_shape", "num_classes")
    }
    recipe = entry["recipe"]
    assert (params["epochs"], params["batch_size"], params["random_state"], params["precision"]) == (
        recipe["epochs"],
        recipe["batch_size"],
        recipe["seed"],
        recipe["precision"],
    )
    assert (params["optimizer"], params["learning_rate"]) == (recipe["optimizer"]["name"], recipe["optimizer"]["learning_rate"])
    assert params["early_stopping_size"] == recipe["early_stopping_size"]
    assert params["monitor"] == recipe["callbacks"]["early_stopping"]["monitor"]
    assert params["patience"] == recipe["callbacks"]["early_stopping"]["patience"]


def test_from_zoo_builds_the_entrys_architecture_and_records_its_recipe(data_dir):
    name = "fashion_mnist_bn_cnn"
    entry = zoo.info(name)
    X, y = zoo.datasets.load("fashion_mnist", "train")
    clf = ZooClassifier.from_zoo(name, epochs=1, early_stopping_size=64).fit(X[:320], y[:320])
    assert clf.model_.count_params() == entry["parameters"]
    assert clf.spec_ == {"builder": "bn_cnn", "params": entry["params"], "recipe": {**entry["recipe"], "epochs": 1, "early_stopping_size": 64}}
    with pytest.raises(zoo.RegistryError, match="unknown model 'fashion_mnist_vgg'"):
        ZooClassifier.from_zoo("fashion_mnist_vgg")


# --------------------------------------------------------------------------- label smoothing and the learning-rate schedule


def _iris_fit(**params):
    X, y = load_iris(return_X_y=True)
    kwargs = {**TINY, "builder__units": (16,), "epochs": 8, "early_stopping_size": 30, "patience": 20, **params}
    return ZooClassifier(**kwargs).fit(X, y), X, y


def test_label_smoothing_gives_under_confident_probabilities_and_true_label_slice_scores():
    from sklearn.metrics import log_loss

    from zoo.estimator import _carve

    plain, X, y = _iris_fit()
    smoothed, _, _ = _iris_fit(label_smoothing=0.3)
    p_plain, p_smooth = plain.predict_proba(X), smoothed.predict_proba(X)
    assert p_smooth.max(axis=1).mean() < p_plain.max(axis=1).mean() - 0.1
    assert np.median(p_smooth.max(axis=1)) < 0.85 < np.median(p_plain.max(axis=1))  # the smoothed target of the true class: 1 - 0.3 + 0.3 / 3 = 0.8
    assert smoothed.score(X, y) > 0.8 and smoothed.spec_["recipe"]["label_smoothing"] == 0.3
    assert "label_smoothing" not in plain.spec_["recipe"]

    # the slice's scores are measured against the true labels; Keras' val_loss is the smoothed loss
    _, es_idx = _carve(y, 30, 0)
    scores = smoothed.early_stopping_scores_
    best = smoothed.best_epoch_ - 1
    assert scores["log_loss"] == pytest.approx(log_loss(y[es_idx], smoothed.predict_proba(X[es_idx])), rel=1e-9)
    assert scores["log_loss"] != pytest.approx(smoothed.history_["val_loss"][best], rel=0.05)
    assert scores["accuracy"] == pytest.approx(smoothed.history_["val_accuracy"][best], abs=1e-6)  # accuracy on one-hot targets
    # model_ takes integer labels afterwards, like an unpickled or zoo.load-ed model
    loss, accuracy = smoothed.model_.evaluate(X, y, verbose=0)
    assert accuracy == pytest.approx(smoothed.score(X, y), abs=1e-6)
    assert loss == pytest.approx(log_loss(y, p_smooth), rel=1e-3)


def test_label_smoothing_of_a_sigmoid_text_model():
    texts = np.array(["good fun film", "bad dull film", "fun and good", "dull and bad"] * 10)
    labels = np.array(["pos", "neg", "pos", "neg"] * 10)
    kwargs = {"builder__max_tokens": 50, "epochs": 15, "learning_rate": 0.05, "early_stopping_size": None}
    plain = ZooClassifier("text_bow", **kwargs).fit(texts, labels)
    smoothed = ZooClassifier("text_bow", **kwargs, label_smoothing=0.4).fit(texts, labels)
    assert smoothed.model_.output_shape[-1] == 1 and smoothed.score(texts, labels) == 1.0
    assert smoothed.predict_proba(texts).max() < 0.9 < plain.predict_proba(texts).max()  # the smoothed target is 0.8


def test_cosine_schedule_decays_the_rate_without_reduce_lr_on_plateau():
    clf = _iris_fit(lr_schedule="cosine", epochs=4)[0]
    rates = clf.history_["learning_rate"]
    assert len(rates) == 4 and rates[0] > 0.5 * TINY["learning_rate"] and rates == sorted(rates, reverse=True)
    assert float(clf.model_.optimizer.learning_rate) < 1e-3 * TINY["learning_rate"]  # ~0 after the last step
    callbacks = clf.spec_["recipe"]["callbacks"]
    assert "reduce_lr_on_plateau" not in callbacks and "early_stopping" in callbacks
    assert not any(isinstance(c, keras.callbacks.ReduceLROnPlateau) for c in clf._callbacks(has_slice=True))
    steps = 4 * int(np.ceil(120 / TINY["batch_size"]))  # 150 iris flowers minus the 30 of the slice
    assert clf.spec_["recipe"]["lr_schedule"] == {"name": "cosine", "warmup_steps": steps // 10, "decay_steps": steps - steps // 10}
    assert clf.spec_["recipe"]["optimizer"]["learning_rate"] == TINY["learning_rate"]  # the peak rate

    plateau, _, _ = _iris_fit()
    assert any(isinstance(c, keras.callbacks.ReduceLROnPlateau) for c in plateau._callbacks(has_slice=True))
    assert "lr_schedule" not in plateau.spec_["recipe"] and "reduce_lr_on_plateau" in plateau.spec_["recipe"]["callbacks"]


def test_new_settings_round_trip_through_the_spec_pickling_and_clone(tmp_path):
    clf, X, y = _iris_fit(label_smoothing=0.1, lr_schedule="cosine", epochs=2)
    again = ZooClassifier.from_spec(clf.spec_)
    assert (again.label_smoothing, again.lr_schedule) == (0.1, "cosine")
    again.fit(X, y)
    assert again.spec_ == clf.spec_
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))  # same seed, same model
    joblib.dump(clf, tmp_path / "clf.joblib")
    restored = joblib.load(tmp_path / "clf.joblib")
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    params = clone(clf).get_params()
    assert (params["label_smoothing"], params["lr_schedule"]) == (0.1, "cosine")
    assert ZooClassifier().set_params(label_smoothing=0.2, lr_schedule="cosine").get_params()["label_smoothing"] == 0.2
    defaults = ZooClassifier.from_zoo("mnist_mlp").get_params()  # recipes without the settings: today's training
    assert (defaults["label_smoothing"], defaults["lr_schedule"]) == (0.0, "plateau")


def test_new_settings_are_searchable_and_checked():
    from zoo.search_spaces import TRAINING_PARAMS, resolve

    space = resolve("mlp", {"label_smoothing": {"low": 0.0, "high": 0.2}, "lr_schedule": {"choices": ["plateau", "cosine"]}})
    assert {"label_smoothing", "lr_schedule"} <= set(space) and {"label_smoothing", "lr_schedule"} <= set(TRAINING_PARAMS)
    X, y = load_iris(return_X_y=True)
    for value in (1.0, -0.1, True, "0.1"):
        with pytest.raises(ValueError, match=r"label_smoothing must be a number in \[0, 1\)"):
            ZooClassifier(**TINY, label_smoothing=value).fit(X, y)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        ZooClassifier(**TINY, lr_schedule="step").fit(X, y)
