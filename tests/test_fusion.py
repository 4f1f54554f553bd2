"""Fusion of calibrated blends and logistic stacks into one Keras model, and its SavedModel export.

Real zoo models (``mnist_bn_cnn``, ``mnist_sepconv``) on a few hundred MNIST
validation images; tiny sigmoid models trained here for the binary case. The
``.keras`` and SavedModel round trips run in fresh processes: the first
imports Keras alone (``safe_mode=True``), the second TensorFlow alone.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

import ensemble
from ensemble import BlendClassifier, StackClassifier
from ensemble.preprocessing import Flatten

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

ATOL = 1e-5


@pytest.fixture(scope="module")
def digits():
    """300 validation images to fit on, the next 200 to compare on."""
    from zoo import datasets

    X, y = datasets.load("mnist", "validation")
    return X[:300], y[:300], X[300:500]


@pytest.fixture(scope="module")
def members():
    import zoo

    return [("cnn", zoo.load("mnist_bn_cnn")), ("sep", zoo.load("mnist_sepconv"))]


@pytest.fixture(scope="module")
def blend(digits, members):
    X, y, _ = digits
    return BlendClassifier(members, method="slsqp", calibrate=True).fit(X, y)


@pytest.fixture(scope="module")
def stack(digits, members):
    X, y, _ = digits
    return StackClassifier(members, final_estimator=LogisticRegression(max_iter=2000), calibrate=True).fit(X, y)


def _layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _layers(layer)


def _run(code, *args):
    """Run ``code`` in a fresh Python process; its last stdout line, parsed as JSON."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_calibrated_blend_is_fused(digits, blend):
    _, _, Xt = digits
    assert np.all(blend.temperatures_ != 1) and blend.blend_temperature_ != 1 and np.all(blend.weights_ > 0)
    fused = blend.to_keras()
    np.testing.assert_allclose(fused.predict(Xt, verbose=0), blend.predict_proba(Xt), atol=ATOL, rtol=0)
    names = {layer.name for layer in fused.layers}
    assert {"cnn_temperature", "sep_temperature", "weighted_sum", "blend_temperature"} <= names
    assert not any(type(layer).__name__ == "Lambda" for layer in _layers(fused))


def test_logistic_stacks_are_fused(digits, members, stack):
    X, y, Xt = digits
    assert np.all(stack.temperatures_ != 1)
    np.testing.assert_allclose(stack.to_keras().predict(Xt, verbose=0), stack.predict_proba(Xt), atol=ATOL, rtol=0)

    # the meta-learner never saw class 9: its column is 0, placed by a frozen Dense layer
    partial = StackClassifier(members, final_estimator=LogisticRegression(max_iter=2000)).fit(X[y != 9], y[y != 9])
    fused = partial.to_keras()
    assert fused.get_layer("classes") is not None
    np.testing.assert_allclose(fused.predict(Xt, verbose=0), partial.predict_proba(Xt), atol=ATOL, rtol=0)


def test_binary_stack_of_sigmoid_members_is_fused(digits):
    from zoo import datasets

    X_train, y_train = datasets.load("mnist", "train")
    X, y, Xt = digits
    keras.utils.set_random_seed(0)
    sigmoids = []
    for name, units in (("is_seven_a", 8), ("is_seven_b", 4)):
        inputs = keras.Input((28, 28, 1), dtype="uint8")
        x = keras.layers.Dense(units, activation="relu")(keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs)))
        model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x), name=name)
        model.compile("adam", "binary_crossentropy")
        model.fit(X_train[:1000], (y_train[:1000] == 7).astype("float32"), epochs=1, batch_size=64, verbose=0)
        sigmoids.append(model)
    binary = StackClassifier(sigmoids, final_estimator=LogisticRegression(), calibrate=True).fit(X, (y == 7).astype(int))
    assert binary.transform(X).shape == (len(X), 2)  # one column per member, as scikit-learn
    proba = binary.to_keras().predict(Xt, verbose=0)
    assert proba.shape == (len(Xt), 2)
    np.testing.assert_allclose(proba, binary.predict_proba(Xt), atol=ATOL, rtol=0)
    plain = BlendClassifier(sigmoids, calibrate=True).fit(X, (y == 7).astype(int))
    np.testing.assert_allclose(plain.to_keras().predict(Xt, verbose=0), plain.predict_proba(Xt), atol=ATOL, rtol=0)


def test_fused_keras_files_load_in_safe_mode_in_a_fresh_process(tmp_path, digits, blend, stack):
    _, _, Xt = digits
    np.save(tmp_path / "x.npy", Xt)
    for name, model in (("blend", blend), ("stack", stack)):
        model.to_keras().save(tmp_path / f"{name}.keras")
    result = _run(
        """
        import json, sys
        import numpy as np
        import keras
        folder = sys.argv[1]
        X = np.load(folder + "/x.npy")
        for name in ("blend", "stack"):
            model = keras.saving.load_model(f"{folder}/{name}.keras", safe_mode=True)
            np.save(f"{folder}/{name}.npy", model.predict(X, verbose=0))
        print(json.dumps(sorted(m for m in ("ensemble", "zoo") if m in sys.modules)))
        """,
        tmp_path,
    )
    assert result == []
    for name, model in (("blend", blend), ("stack", stack)):
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), model.predict_proba(Xt), atol=ATOL, rtol=0)


def test_saved_model_round_trip_with_tensorflow_alone(tmp_path, digits, blend):
    _, _, Xt = digits
    out = ensemble.export_saved_model(blend, tmp_path / "served")
    assert (out / "saved_model.pb").is_file() and not list(tmp_path.glob(".tmp-*"))
    np.save(tmp_path / "x.npy", Xt)
    result = _run(
        """
        import json, sys
        import numpy as np
        import tensorflow as tf
        folder = sys.argv[1]
        served = tf.saved_model.load(folder + "/served")
        np.save(folder + "/p.npy", served.serve(tf.constant(np.load(folder + "/x.npy"))).numpy())
        print(json.dumps(sorted(m for m in ("ensemble", "zoo") if m in sys.modules)))
        """,
        tmp_path,
    )
    assert result == []  # (TensorFlow itself may import keras as its tf.keras; the script does not use it)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), blend.predict_proba(Xt), atol=ATOL, rtol=0)
    with pytest.raises(FileExistsError, match="non-empty folder"):
        ensemble.export_saved_model(blend, out)


def test_what_cannot_be_fused_is_refused(tmp_path, digits, members):
    X, y, _ = digits
    flat_lr = FrozenEstimator(make_pipeline(Flatten(), LogisticRegression(max_iter=200)).fit(X, y))
    mixed = BlendClassifier(members + [("lr", flat_lr)], calibrate=True).fit(X, y)
    with pytest.raises(ValueError, match=r"Keras members only; not Keras: \['lr'\]"):
        mixed.to_keras()
    forest = StackClassifier(members, final_estimator=RandomForestClassifier(10, random_state=0)).fit(X, y)
    with pytest.raises(ValueError, match="LogisticRegression meta-learner only .*got RandomForestClassifier"):
        forest.to_keras()
    with pytest.raises(ValueError, match=r"Keras members only; not Keras: \['lr'\]"):
        StackClassifier(members + [("lr", flat_lr)]).fit(X, y).to_keras()
    passthrough = StackClassifier(members, passthrough=True).fit(X, y)
    with pytest.raises(ValueError, match="cannot fuse passthrough=True"):
        passthrough.to_keras()
    with pytest.raises(ValueError, match="Keras members only"):
        ensemble.export_saved_model(mixed, tmp_path / "never")
    assert not any(tmp_path.iterdir())


def test_export_command(tmp_path, digits, stack, capsys):
    from ensemble.cli import main

    _, _, Xt = digits
    ensemble.save(stack, tmp_path / "stack")
    assert main(["export", str(tmp_path / "stack"), "--out", str(tmp_path / "served"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(tmp_path / "served")
    import tensorflow as tf

    served = tf.saved_model.load(str(tmp_path / "served"))
    np.testing.assert_allclose(served.serve(tf.constant(Xt)).numpy(), stack.predict_proba(Xt), atol=ATOL, rtol=0)

    assert main(["export", str(tmp_path / "stack"), "--out", str(tmp_path / "served")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-empty folder" in err[0]

    done = subprocess.run(
        [sys.executable, "-m", "ensemble", "export", str(tmp_path / "missing"), "--out", str(tmp_path / "x")],
        capture_output=True, text=True, timeout=300,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("ensemble export: error:") and "missing" in lines[0]
    assert not (tmp_path / "x").exists()
