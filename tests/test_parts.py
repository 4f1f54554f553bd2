"""Saved parts that plug in: a kind registered from outside ``ensemble`` round-trips through save and load."""

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

import ensemble
from ensemble import BlendClassifier
from ensemble.parts import get_part, part_for, register_part, register_trusted_types
from ensemble.persistence import BundleError, UntrustedTypesError

KIND = "test_centroids"
_decoded = []  # records this test's decode saw: none may come from a file that failed its check


class Centroids(ClassifierMixin, BaseEstimator):
    """Nearest-centroid classifier, saved in its own format (one ``.npy`` of centroids and one of classes)."""

    def __init__(self, shrink=0.0):
        self.shrink = shrink

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.centroids_ = np.stack([X[y == c].mean(axis=0) * (1 - self.shrink) for c in self.classes_])
        return self

    def predict_proba(self, X):
        d = ((np.asarray(X, dtype=np.float64)[:, None, :] - self.centroids_[None]) ** 2).sum(-1)
        e = np.exp(-(d - d.min(axis=1, keepdims=True)) / X.shape[1])
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _encode(obj, writer):
    record = {"shrink": obj.shrink, "centroids": None, "classes": None}
    if hasattr(obj, "centroids_"):  # an ensemble's unfitted template is its parameters only
        for key, value in (("centroids", obj.centroids_), ("classes", obj.classes_)):
            record[key], path = writer.file(f"{writer.hint}.{key}", ".npy")
            np.save(path, value, allow_pickle=False)
    return record


def _decode(record, reader):
    _decoded.append(record)
    obj = Centroids(shrink=float(record["shrink"]))
    if record["centroids"] is not None:
        obj.centroids_ = np.load(reader.path(record["centroids"]), allow_pickle=False)
        obj.classes_ = np.load(reader.path(record["classes"]), allow_pickle=False)
    return obj


register_part(KIND, lambda obj: isinstance(obj, Centroids), _encode, _decode)


class Doubler(TransformerMixin, BaseEstimator):
    """A transformer skops saves whole, but whose type is not on the allow-list."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X) * 2.0


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600], y[:600], X[600:800]


@pytest.fixture(scope="module")
def saved(digits, tmp_path_factory):
    X, y, X_test = digits
    blend = BlendClassifier([("centroids", Centroids(shrink=0.1)), ("lr", LogisticRegression(max_iter=300))], cv=3).fit(X, y)
    path = tmp_path_factory.mktemp("parts") / "bundle"
    ensemble.save(blend, path)
    return path, blend, blend.predict_proba(X_test)


def _manifest(path: Path):
    (version,) = [p for p in path.iterdir() if p.name.startswith("v-")]
    return version, json.loads((version / "manifest.json").read_text())


def test_a_registered_kind_round_trips_through_save_and_load(saved, digits):
    path, blend, expected = saved
    version, manifest = _manifest(path)
    records = [p for p in manifest["parts"] if p["kind"] == KIND]
    assert len(records) == 2  # the unfitted template and the fitted member
    fitted = next(r for r in records if r["centroids"] is not None)
    assert fitted["centroids"] in manifest["files"] and fitted["classes"] in manifest["files"]
    assert np.load(version / fitted["centroids"]).shape == (10, 64)
    loaded = ensemble.load(path)
    member = loaded.named_estimators_["centroids"]
    assert type(member) is Centroids and member.shrink == 0.1
    np.testing.assert_array_equal(loaded.predict_proba(digits[2]), expected)


def test_plug_in_kinds_are_tried_before_the_built_in_skops(saved):
    assert part_for(Centroids()).kind == KIND  # a scikit-learn estimator skops would otherwise save whole
    assert part_for(LogisticRegression()).kind == "skops"
    assert get_part(KIND).decode is _decode


def test_a_part_file_that_fails_its_check_is_never_decoded(saved, tmp_path):
    import shutil

    path = tmp_path / "bundle"
    shutil.copytree(saved[0], path)
    version, manifest = _manifest(path)
    name = next(p for p in manifest["parts"] if p["kind"] == KIND and p["centroids"])["centroids"]
    np.save(version / name, np.zeros((10, 64)), allow_pickle=False)
    _decoded.clear()
    with pytest.raises(BundleError, match="sha256"):
        ensemble.load(path)
    assert _decoded == []


def test_a_part_reads_only_files_its_manifest_lists(saved, tmp_path):
    import shutil

    path = tmp_path / "bundle"
    shutil.copytree(saved[0], path)
    version, manifest = _manifest(path)
    (tmp_path / "outside.npy").write_bytes((version / next(iter(manifest["files"]))).read_bytes())
    record = next(p for p in manifest["parts"] if p["kind"] == KIND and p["centroids"])
    record["centroids"] = "../outside.npy"
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not one of its verified files"):
        ensemble.load(path)


def test_a_kind_nobody_registered_names_itself(saved, tmp_path):
    import shutil

    path = tmp_path / "bundle"
    shutil.copytree(saved[0], path)
    version, manifest = _manifest(path)
    next(p for p in manifest["parts"] if p["kind"] == KIND)["kind"] = "no_such_kind"
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="unknown part kind 'no_such_kind'"):
        ensemble.load(path)


def test_a_writer_keeps_part_files_in_the_folder(tmp_path):
    from ensemble._codec import Encoder

    writer = Encoder(tmp_path)
    name, path = writer.file("../../etc/passwd", ".npy")
    assert path.parent == tmp_path and "/" not in name and name.endswith(".npy")
    for suffix in ("/x", ".npy/../..", "", ".a b"):
        with pytest.raises(ValueError, match="suffix"):
            writer.file("x", suffix)


def test_registered_trusted_types_extend_the_allow_list(digits, tmp_path):
    X, y, X_test = digits
    blend = BlendClassifier([make_pipeline(Doubler(), LogisticRegression(max_iter=300))], cv=2).fit(X, y)
    ensemble.save(blend, tmp_path / "bundle")
    qualname = f"{Doubler.__module__}.Doubler"
    with pytest.raises(UntrustedTypesError, match="Doubler"):
        ensemble.load(tmp_path / "bundle")
    register_trusted_types(qualname)
    np.testing.assert_array_equal(ensemble.load(tmp_path / "bundle").predict_proba(X_test), blend.predict_proba(X_test))


def test_register_part_refuses_malformed_kinds():
    with pytest.raises(ValueError, match="part kind"):
        register_part("$npy", bool, _encode, _decode)
    with pytest.raises(TypeError, match="callable"):
        register_part("x_kind", bool, None, _decode)
    with pytest.raises(ValueError, match="qualified"):
        register_trusted_types("Doubler")
