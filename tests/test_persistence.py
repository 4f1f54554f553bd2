"""Saved ensembles: pickle-free round trips, verification before reading, atomic replacement."""

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_digits
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from xgboost import XGBClassifier

import ensemble
from ensemble import BlendClassifier, BlendRegressor, StackClassifier, StackRegressor
from ensemble.persistence import BundleError, BundleVersionWarning, UntrustedTypesError
from ensemble.preprocessing import Flatten

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:900], y[:900], X[900:1200], y[900:1200]


def _sk_members():
    return [
        ("lr", make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))),
        ("rf", RandomForestClassifier(30, random_state=0)),
        ("xgb", make_pipeline(Flatten(), XGBClassifier(n_estimators=20, max_depth=3, random_state=0))),
    ]


def _files(folder: Path):
    (version,) = [p for p in folder.iterdir() if p.name.startswith("v-")]
    return version, json.loads((version / "manifest.json").read_text())


def _fresh_process_proba(path, X, extra=""):
    """predict_proba of the ensemble saved at ``path``, computed in a new Python process."""
    out = Path(path).parent / "proba.npy"
    np.save(Path(path).parent / "X.npy", X)
    code = textwrap.dedent(f"""
        import numpy as np, ensemble
        {extra}
        est = ensemble.load({str(path)!r})
        np.save({str(out)!r}, est.predict_proba(np.load({str(Path(path).parent / 'X.npy')!r})))
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300, capture_output=True)
    return np.load(out)


@pytest.mark.parametrize("kind", ["blend", "stack"])
def test_sklearn_xgboost_round_trip_in_a_fresh_process_without_pickle(digits, tmp_path, kind):
    X, y, X_test, _ = digits
    if kind == "blend":
        est = BlendClassifier(_sk_members(), method="caruana", cv=3, random_state=0)
    else:
        est = StackClassifier(_sk_members(), final_estimator=XGBClassifier(n_estimators=10), cv=3)
    expected = est.fit(X, y).predict_proba(X_test)
    path = tmp_path / "bundle"
    ensemble.save(est, path, metadata={"note": "digits"})
    version, manifest = _files(path)
    assert manifest["class"] == type(est).__name__ and manifest["metadata"] == {"note": "digits"}
    kinds = {p["kind"] for p in manifest["parts"]}
    assert {"skops", "xgboost", "pipeline"} <= kinds
    assert not any(_is_pickle(f) for f in version.iterdir())
    np.testing.assert_array_equal(_fresh_process_proba(path, X_test), expected)
    loaded = ensemble.load(path)
    np.testing.assert_array_equal(loaded.predict(X_test), est.predict(X_test))
    assert loaded.get_params(deep=False).keys() == est.get_params(deep=False).keys()


def _is_pickle(path: Path) -> bool:
    """A pickle stream, or a zip (skops) holding one."""
    data = path.read_bytes()
    if data[:1] == b"\x80":
        return True
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return any(z.read(n)[:1] == b"\x80" for n in z.namelist())
    return False


def test_regressors_round_trip(tmp_path):
    X, y = load_diabetes(return_X_y=True)
    for est in (BlendRegressor([Ridge(), RandomForestRegressor(20, random_state=0)], method="nnls", cv=3),
                StackRegressor([Ridge(), RandomForestRegressor(20, random_state=0)], cv=3)):
        expected = est.fit(X, y).predict(X)
        path = tmp_path / type(est).__name__
        ensemble.save(est, path)
        np.testing.assert_array_equal(ensemble.load(path).predict(X), expected)


def test_keras_sklearn_pipeline_and_xgboost_members_round_trip_in_a_fresh_process(tmp_path):
    import keras

    import zoo

    X, y = zoo.datasets.load("mnist", "validation")
    X, y = X[:400], y[:400]
    inputs = keras.Input((28, 28, 1), dtype="uint8")
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    custom = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x), name="custom")
    custom.compile("adam", "sparse_categorical_crossentropy")
    custom.fit(X, y, epochs=1, verbose=0)
    tuned = zoo.load("mnist_mlp")  # a zoo model whose weights changed: saved as weights, not by reference
    tuned.layers[-1].bias.assign(tuned.layers[-1].bias.numpy() + 0.5)
    members = [("zoo", zoo.load("mnist_mlp")), ("custom", custom), ("tuned", tuned), ("lr", make_pipeline(Flatten(), LogisticRegression(max_iter=100))),
               ("xgb", make_pipeline(Flatten(), XGBClassifier(n_estimators=5, max_depth=2)))]
    blend = BlendClassifier(members, method="slsqp", cv=2).fit(X, y)
    path = tmp_path / "keras-bundle"
    ensemble.save(blend, path)
    version, manifest = _files(path)
    kinds = [p["kind"] for p in manifest["parts"]]
    assert {"zoo", "keras", "zoo_build", "keras_member", "skops", "xgboost", "pipeline"} <= set(kinds)
    assert not any(f.suffix == ".h5" and "zoo" in f.name for f in version.iterdir())  # the shipped model is a reference
    assert not any(_is_pickle(f) for f in version.iterdir())
    np.testing.assert_allclose(_fresh_process_proba(path, X[:200]), blend.predict_proba(X[:200]), rtol=0, atol=1e-12)


def test_tampered_file_is_refused_before_it_is_read(digits, tmp_path):
    X, y, _, _ = digits
    path = tmp_path / "bundle"
    ensemble.save(StackClassifier(_sk_members()[:2], cv=3).fit(X, y), path)
    version, manifest = _files(path)
    skops_file = version / next(p["file"] for p in manifest["parts"] if p["kind"] == "skops")
    marker = tmp_path / "marker"
    skops_file.write_bytes(pickle.dumps(_Marker(marker)))
    with pytest.raises(BundleError, match="sha256"):
        ensemble.load(path)
    assert not marker.exists()
    # Whoever edits the files can edit the manifest: the sha256 then matches, but nothing is unpickled.
    from kze.files import sha256_file

    manifest["files"][skops_file.name] = sha256_file(skops_file)
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do, as long as the pickle does not run
        ensemble.load(path)
    assert not marker.exists()


class _Marker:
    """Unpickling this creates a marker file: the only effect of a malicious pickle here."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_manifest_paths_stay_inside_the_folder(digits, tmp_path):
    X, y, _, _ = digits
    path = tmp_path / "bundle"
    ensemble.save(StackClassifier(_sk_members()[:1], cv=3).fit(X, y), path)
    version, manifest = _files(path)
    outside = tmp_path / "outside.skops"
    outside.write_bytes(b"x")
    from kze.files import sha256_file

    for bad in ("../outside.skops", str(outside), "sub/dir.skops"):
        doc = json.loads(json.dumps(manifest))
        doc["files"][bad] = sha256_file(outside)
        (version / "manifest.json").write_text(json.dumps(doc))
        with pytest.raises(BundleError, match="bare file names"):
            ensemble.load(path)
    # a listed file that is a symlink to a file elsewhere
    (version / "manifest.json").write_text(json.dumps(manifest))
    name = next(iter(manifest["files"]))
    target = version / name
    os.replace(target, outside)
    target.symlink_to(outside)
    with pytest.raises(BundleError, match="link"):
        ensemble.load(path)
    # CURRENT naming a folder outside
    os.replace(outside, target.with_suffix(".bak"))
    (path / "CURRENT").write_text("../elsewhere\n")
    with pytest.raises(BundleError, match="not a version folder"):
        ensemble.load(path)


def test_untrusted_types_are_refused_and_can_be_trusted_one_by_one(digits, tmp_path):
    X, y, X_test, _ = digits
    reshape = FunctionTransformer(np.reshape, kw_args={"shape": (-1, 64)})
    est = BlendClassifier([("lr", make_pipeline(reshape, LogisticRegression(max_iter=300)))]).fit(X, y)
    path = tmp_path / "bundle"
    ensemble.save(est, path)
    with pytest.raises(UntrustedTypesError, match="numpy.reshape"):
        ensemble.load(path)
    loaded = ensemble.load(path, trusted=["numpy.reshape"])
    np.testing.assert_array_equal(loaded.predict_proba(X_test), est.predict_proba(X_test))


def test_versions_recorded_and_checked(digits, tmp_path):
    X, y, _, _ = digits
    path = tmp_path / "bundle"
    ensemble.save(BlendClassifier([LogisticRegression(max_iter=300)]).fit(X, y), path)
    version, manifest = _files(path)
    assert {"numpy", "scikit-learn", "skops", "keras-zoo-ensemble"} <= set(manifest["versions"])
    manifest["versions"]["scikit-learn"] = "1.0.0"
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(BundleVersionWarning, match=r"scikit-learn 1\.0\.0.*scikit-learn 1\."):
        ensemble.load(path)
    manifest["format_version"] = 99
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format_version 99"):
        ensemble.load(path)


def test_save_refuses_unfitted_and_foreign_folders(digits, tmp_path):
    from sklearn.exceptions import NotFittedError

    X, y, _, _ = digits
    with pytest.raises(NotFittedError):
        ensemble.save(BlendClassifier([LogisticRegression()]), tmp_path / "a")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(BundleError, match="non-empty folder"):
        ensemble.save(BlendClassifier([LogisticRegression(max_iter=300)]).fit(X, y), tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_resave_replaces_and_keeps_one_previous_version(digits, tmp_path):
    X, y, X_test, _ = digits
    path = tmp_path / "bundle"
    for c in (0.01, 0.1, 1.0):
        est = BlendClassifier([LogisticRegression(C=c, max_iter=300)]).fit(X, y)
        ensemble.save(est, path)
    assert len([p for p in path.iterdir() if p.name.startswith("v-")]) == 2
    np.testing.assert_array_equal(ensemble.load(path).predict_proba(X_test), est.predict_proba(X_test))


_SAVER = """
import sys, numpy as np, ensemble
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
X, y = load_digits(return_X_y=True)
est = ensemble.StackClassifier([RandomForestClassifier(100, random_state=int(sys.argv[2])), LogisticRegression(max_iter=300)], cv=2).fit(X, y)
print("ready", flush=True)
while True:
    ensemble.save(est, sys.argv[1])
"""


def test_a_save_killed_midway_leaves_the_previous_ensemble_loadable(digits, tmp_path):
    X, y, X_test, _ = digits
    path = tmp_path / "bundle"
    first = BlendClassifier([LogisticRegression(max_iter=300)]).fit(X, y)
    ensemble.save(first, path)
    script = tmp_path / "saver.py"
    script.write_text(_SAVER)
    rng = np.random.default_rng(0)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(script), str(path), "0"], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.2, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        loaded = ensemble.load(path)  # the first ensemble, or a complete later one
        assert type(loaded).__name__ in ("BlendClassifier", "StackClassifier")
        assert loaded.predict_proba(X_test).shape == (len(X_test), 10)


def test_concurrent_saves_leave_one_complete_ensemble(tmp_path):
    path = tmp_path / "bundle"
    script = tmp_path / "saver.py"
    script.write_text(_SAVER.replace("while True:", "for _ in range(3):"))
    procs = [subprocess.Popen([sys.executable, str(script), str(path), str(seed)], stdout=subprocess.PIPE) for seed in (1, 2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    X, _ = load_digits(return_X_y=True)
    loaded = ensemble.load(path)
    assert loaded.predict(X[:50]).shape == (50,)
    assert not list(path.glob(".tmp-*"))


def test_zoo_classifier_member_round_trip(tmp_path):
    from zoo import ZooClassifier

    X, y = load_digits(return_X_y=True)
    X = (X * 16).clip(0, 255).astype("uint8").reshape(-1, 8, 8)
    stack = StackClassifier([("net", ZooClassifier("mlp", epochs=1, builder__units=(16,))), make_pipeline(Flatten(), LogisticRegression(max_iter=200))], cv=2)
    expected = stack.fit(X[:300], y[:300]).predict_proba(X[300:400])
    ensemble.save(stack, tmp_path / "bundle")
    version, _ = _files(tmp_path / "bundle")
    assert not any(_is_pickle(f) for f in version.iterdir())
    np.testing.assert_array_equal(ensemble.load(tmp_path / "bundle").predict_proba(X[300:400]), expected)


def test_a_zoo_classifier_saves_on_its_own(tmp_path):
    from zoo import ZooClassifier

    X, y = load_digits(return_X_y=True)
    X = (X * 16).clip(0, 255).astype("uint8").reshape(-1, 8, 8)
    clf = ZooClassifier("mlp", epochs=1, builder__units=(16,)).fit(X[:300], y[:300])
    ensemble.save(clf, tmp_path / "clf")
    loaded = ensemble.load(tmp_path / "clf")
    assert loaded.get_params() == clf.get_params() and loaded.best_epoch_ == clf.best_epoch_
    np.testing.assert_array_equal(loaded.predict_proba(X[300:400]), clf.predict_proba(X[300:400]))
