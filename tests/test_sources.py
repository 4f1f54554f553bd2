"""ensemble.sources: registries the plug-ins fill (datasets, member names, libraries) and model files by suffix."""

import subprocess
import sys

import joblib
import numpy as np
import pytest
import skops.io
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline

import ensemble
import zoo
from ensemble import sources
from ensemble.preprocessing import Flatten
from kze.files import sha256_file


@pytest.fixture(scope="module")
def logreg(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sources")
    X, y = zoo.datasets.load("mnist", "train")
    model = make_pipeline(Flatten(), LogisticRegression(max_iter=100)).fit(X[:1000] / 255.0, y[:1000])
    skops.io.dump(model, folder / "logreg.skops")
    joblib.dump(model, folder / "logreg.joblib")
    return folder


def test_the_zoo_plugin_registers_its_datasets_in_its_order():
    assert sources.dataset_names()[:3] == ["mnist", "fashion_mnist", "imdb"]
    X, y = sources.load_dataset("mnist", "validation", progress=False)
    X0, y0 = zoo.datasets.load("mnist", "validation")
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    with pytest.raises(ValueError, match="unknown dataset 'mnsit'; the registered datasets are mnist, fashion_mnist, imdb"):
        sources.load_dataset("mnsit", "test")


def test_a_zoo_name_resolves_to_a_checked_member_with_its_dataset():
    member = sources.load_member("mnist_mlp", progress=False)
    sha = zoo.info("mnist_mlp")["weights"]["sha256"]
    assert member.record() == {"name": "mnist_mlp", "kind": "zoo", "source": "mnist_mlp", "sha256": sha}
    assert member.dataset == "mnist" and isinstance(member.estimator, ensemble.KerasMember)
    assert member.estimator.classes_.tolist() == list(range(10))
    with pytest.raises(ValueError, match="weights changed since the ensemble was fitted"):
        sources.load_member("mnist_mlp", sha256="0" * 64)
    with pytest.raises(ValueError, match=r"member 'mnist_resnet' is neither a zoo model \(see `zoo list`\) nor an existing file"):
        sources.load_member("mnist_resnet")
    blend = ensemble.BlendClassifier([("mlp", member.estimator), ("other", FrozenEstimator(_fitted_forest()))], method="mean")
    blend.fit(*_validation(200))
    assert sources.member_datasets(blend) == ["mnist", None]  # from the zoo's record; a scikit-learn model has none


def _validation(n):
    X, y = zoo.datasets.load("mnist", "validation")
    return X[:n], y[:n]


def _fitted_forest():
    from sklearn.ensemble import RandomForestClassifier

    X, y = _validation(300)
    return make_pipeline(Flatten(), RandomForestClassifier(n_estimators=5, random_state=0)).fit(X, y)


def test_model_files_by_suffix_checked_against_their_sha256_before_opening(logreg, tmp_path):
    member = sources.load_member(str(logreg / "logreg.skops"))
    assert (member.name, member.kind, member.sha256) == ("logreg", "sklearn", sha256_file(logreg / "logreg.skops"))
    X, _ = _validation(50)
    expected = skops.io.load(logreg / "logreg.skops", trusted=skops.io.get_untrusted_types(file=logreg / "logreg.skops")).predict_proba(X / 255.0)
    np.testing.assert_allclose(member.estimator.predict_proba(X / 255.0), expected)

    with pytest.raises(ValueError, match="--allow-pickle"):
        sources.load_member(str(logreg / "logreg.joblib"))
    assert sources.load_member(str(logreg / "logreg.joblib"), allow_pickle=True).kind == "sklearn"

    marker = tmp_path / "marker"
    evil = tmp_path / "evil.joblib"
    joblib.dump(_Marker(marker), evil)
    with pytest.raises(ValueError, match="refusing to open it"):
        sources.load_member(str(evil), sha256=sha256_file(logreg / "logreg.joblib"), allow_pickle=True)
    assert not marker.exists()  # refused before unpickling

    skops.io.dump(LinearRegression().fit(np.eye(3), [0, 1, 2]), tmp_path / "regressor.skops")
    with pytest.raises(ValueError, match="not a fitted classifier"):
        sources.load_model_file(tmp_path / "regressor.skops")
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown model file type '.onnx'"):
        sources.load_member(str(tmp_path / "model.onnx"))


class _Marker:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_member_lists_refuse_duplicates_and_mixed_datasets(logreg, tmp_path):
    members = sources.load_members(["mnist_mlp", str(logreg / "logreg.skops")], dataset="mnist", progress=False)
    assert [m.name for m in members] == ["mnist_mlp", "logreg"]
    with pytest.raises(ValueError, match="more than once: mnist_mlp"):
        sources.load_members(["mnist_mlp", "mnist_mlp"], progress=False)
    with pytest.raises(ValueError, match="mnist_mlp is a model for mnist; the data are imdb"):
        sources.load_members(["mnist_mlp"], dataset="imdb", progress=False)
    with pytest.raises(ValueError, match="different datasets"):
        sources.check_datasets(sources.load_members(["mnist_mlp", "fashion_mnist_mlp"], progress=False), None)
    with pytest.raises(sources.LibraryError, match="not a model library .a folder holding registry.yaml, as `zoo search` writes"):
        sources.library_members(tmp_path)


def test_sources_load_the_plugins_lazily_and_a_script_can_register_a_dataset(logreg, tmp_path):
    """Importing ensemble.sources imports no zoo; a dataset registered in a plain script is a --dataset choice."""
    code = f"""
import json, sys
import ensemble.sources as sources
print(json.dumps('zoo' in sys.modules))
import zoo
X, y = zoo.datasets.load("mnist", "validation")
sources.register_dataset("digits_500", lambda split, progress=True: (X[:500] / 255.0, y[:500]))
from ensemble.cli import main
sys.exit(main(["diversity", "--members", {str(logreg / "logreg.skops")!r}, "--dataset", "digits_500", "--json", "--quiet",
               "--cache", {str(tmp_path / "cache")!r}]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    first, rest = proc.stdout.split("\n", 1)
    assert first == "false"
    import json

    report = json.loads(rest)
    X, y = _validation(500)
    member = sources.load_member(str(logreg / "logreg.skops"))
    accuracy = float(np.mean(member.estimator.predict(X / 255.0) == y))
    assert report["members"][0]["name"] == "logreg" and report["members"][0]["accuracy"] == pytest.approx(accuracy)
