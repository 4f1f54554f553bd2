"""The prediction cache: verified .npy entries, never a pickle, safe under damage, forgery attempts and concurrency."""

import hashlib
import io
import os
import pickle
import threading
import warnings

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from ensemble import BlendClassifier
from ensemble._cache import CacheWarning, PredictionCache, cached_output, check_cache


class CountingForest(RandomForestClassifier):
    """A random forest that counts its predict_proba calls (class-level, so not part of its hash)."""

    calls = 0

    def predict_proba(self, X):
        type(self).calls += 1
        return super().predict_proba(X)


class MarkerPayload:
    """Unpickling this creates ``path``, and does nothing else."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    forest = FrozenEstimator(CountingForest(n_estimators=20, random_state=0).fit(X[:1000], y[:1000]))
    linear = FrozenEstimator(LogisticRegression(max_iter=2000).fit(X[:1000], y[:1000]))
    return X[1000:1500], y[1000:1500], [("forest", forest), ("linear", linear)]


def _entries(folder):
    return sorted(p for p in folder.iterdir() if p.suffix == ".npy")


def _fit(data, folder):
    X, y, members = data
    return BlendClassifier(members, method="slsqp", memory=str(folder)).fit(X, y)


def test_entries_are_plain_npy_files_named_after_their_digest(tmp_path, data):
    X, y, members = data
    blend = _fit(data, tmp_path)
    entries = _entries(tmp_path)
    assert len(entries) == 2 and sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in entries]
    for path in entries:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.stem.rpartition("-")[2]
        assert np.load(path, allow_pickle=False).shape == (len(X), 10)
    CountingForest.calls = 0
    cached = _fit(data, tmp_path)
    assert CountingForest.calls == 0  # served from the cache
    np.testing.assert_array_equal(cached.weights_, blend.weights_)


def test_planted_pickles_never_run(tmp_path, data):
    X, y, members = data
    reference = BlendClassifier(members, method="slsqp").fit(X, y)
    marker = tmp_path / "marker"
    payload = pickle.dumps(MarkerPayload(marker))
    pickle.loads(payload)  # the payload is real: unpickling it creates the marker
    assert marker.exists()
    marker.unlink()

    folder = tmp_path / "cache"
    _fit(data, folder)
    keys = [p.stem.rpartition("-")[0] for p in _entries(folder)]
    for path in _entries(folder):
        path.write_bytes(payload)  # a pickle under a valid entry name (digest no longer matches)
    object_npy = io.BytesIO()
    np.save(object_npy, np.array([MarkerPayload(marker)], dtype=object), allow_pickle=True)
    for key in keys:  # names carrying the true digest of what they hold: a pickle, an object .npy
        for blob in (payload, object_npy.getvalue()):
            (folder / f"{key}-{hashlib.sha256(blob).hexdigest()}.npy").write_bytes(blob)
    (folder / "joblib").mkdir()
    joblib.dump(MarkerPayload(marker), folder / "joblib" / "output.pkl")  # the former joblib store's layout
    (folder / "output.joblib").write_bytes(payload)

    CountingForest.calls = 0
    blend = _fit(data, folder)
    assert not marker.exists()
    assert CountingForest.calls == 1  # recomputed, not read from the planted files
    np.testing.assert_allclose(blend.predict_proba(X), reference.predict_proba(X), atol=1e-12)
    entries = _entries(folder)
    assert sorted(p.stem.rpartition("-")[0] for p in entries) == sorted(keys)  # planted entries removed, good ones rewritten
    for path in entries:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.stem.rpartition("-")[2]
    assert not marker.exists()


def test_altered_truncated_or_linked_entries_are_recomputed(tmp_path, data):
    X, y, members = data
    reference = BlendClassifier(members, method="slsqp").fit(X, y)
    outside = tmp_path / "outside.npy"
    for damage in ("altered", "truncated", "symlink"):
        folder = tmp_path / damage
        _fit(data, folder)
        for path in _entries(folder):
            if damage == "altered":  # a valid .npy with other probabilities under the old name
                proba = np.load(path, allow_pickle=False)
                np.save(path, proba[:, ::-1], allow_pickle=False)
            elif damage == "truncated":
                path.write_bytes(path.read_bytes()[:-40])
            else:  # a link to a file holding exactly the bytes the name promises, elsewhere
                outside.write_bytes(path.read_bytes())
                path.unlink()
                path.symlink_to(outside)
        CountingForest.calls = 0
        blend = _fit(data, folder)
        assert CountingForest.calls == 1, damage
        np.testing.assert_allclose(blend.weights_, reference.weights_, atol=1e-9)
        np.testing.assert_allclose(blend.predict_proba(X), reference.predict_proba(X), atol=1e-12)
        assert not any(p.is_symlink() for p in folder.iterdir())


def test_concurrent_writers_leave_one_valid_entry(tmp_path, data):
    X, _, members = data
    forest = members[0][1]
    expected = forest.predict_proba(X)
    results, barrier = [], threading.Barrier(6)

    def work():
        barrier.wait()
        results.append(cached_output(str(tmp_path), forest, "predict_proba", X))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 and all(np.array_equal(r, expected) for r in results)
    assert [p.suffix for p in tmp_path.iterdir()] == [".npy"]  # one entry, no temporary files left


def test_unwritable_folder_warns_once_and_runs_uncached(tmp_path, data):
    X, y, members = data
    (tmp_path / "file").write_text("not a folder")
    folder = tmp_path / "file" / "cache"  # cannot be created, even by root
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        blends = [_fit(data, folder) for _ in range(3)]
        proba = blends[-1].predict_proba(X)
    messages = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert len(messages) == 1 and str(folder) in messages[0] and "running without it" in messages[0]
    reference = BlendClassifier(members, method="slsqp").fit(X, y)
    np.testing.assert_allclose(proba, reference.predict_proba(X), atol=1e-12)


def test_memory_may_be_a_path_a_joblib_memory_or_none(tmp_path):
    assert check_cache(None) is None
    assert check_cache(joblib.Memory(None)) is None
    assert check_cache(joblib.Memory(tmp_path / "m", verbose=0)).folder == tmp_path / "m"
    cache = check_cache(os.fspath(tmp_path / "p"))
    assert isinstance(cache, PredictionCache) and cache.folder == tmp_path / "p" and check_cache(cache) is cache
    with pytest.raises(ValueError, match="memory must be"):
        check_cache(42)


def test_object_outputs_are_not_stored(tmp_path):
    cache = check_cache(tmp_path)
    cache.put("k" * 64, np.array([{"row": 0}, {"row": 1}], dtype=object))  # would need pickle
    cache.put("s" * 64, np.array(["cat", "dog"]))
    assert [p.name.split("-")[0] for p in tmp_path.iterdir()] == ["s" * 64]
    assert list(cache.get("s" * 64, 2)) == ["cat", "dog"] and cache.get("k" * 64, 2) is None


def test_ensemble_command_with_an_unusable_cache_warns_once_and_succeeds(tmp_path):
    import subprocess
    import sys

    import zoo

    X, y = zoo.datasets.load("mnist", "validation")
    np.savez(tmp_path / "small.npz", X=X[:200], y=y[:200])
    (tmp_path / "file").write_text("not a folder")
    proc = subprocess.run(
        [sys.executable, "-m", "ensemble", "fit-weights", "--members", "mnist_mlp", "mnist_sepconv", "--data", tmp_path / "small.npz",
         "--cache", tmp_path / "file" / "cache", "--out", tmp_path / "blend", "--quiet"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    warnings_ = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings_) == 1 and "prediction cache" in warnings_[0] and "running without it" in warnings_[0], proc.stderr
