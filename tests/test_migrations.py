"""ensemble.migrations (version 0.1 files -> saved-ensemble folders) and ensemble.evaluation, from Python."""

import json

import numpy as np
import pytest
import skops.io
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler

import ensemble
import zoo
from ensemble import evaluation, migrations
from ensemble.preprocessing import Flatten
from kze.files import sha256_file


@pytest.fixture(scope="module")
def legacy(tmp_path_factory):
    """A version 0.1 weights file: a zoo model and a skops file beside it, weights 0.3 / 0.7."""
    folder = tmp_path_factory.mktemp("legacy")
    X, y = zoo.datasets.load("mnist", "train")
    model = make_pipeline(Flatten(), MaxAbsScaler(), LogisticRegression(max_iter=100)).fit(X[:1000], y[:1000])
    skops.io.dump(model, folder / "logreg.skops")
    doc = {"format": "ensemble-blend-weights", "format_version": 1, "method": "slsqp", "classes": list(range(10)),
           "fitted_on": {"dataset": "mnist", "split": "validation"},
           "members": [{"name": "mlp", "kind": "zoo", "source": "mnist_mlp", "sha256": zoo.info("mnist_mlp")["weights"]["sha256"], "weight": 0.3},
                       {"name": "logreg", "kind": "sklearn", "source": "logreg.skops", "sha256": sha256_file(folder / "logreg.skops"),
                        "weight": 0.7}]}
    (folder / "weights.json").write_text(json.dumps(doc))
    return folder, doc


def test_convert_rebuilds_the_blend_from_its_records(legacy, tmp_path):
    folder, doc = legacy
    X, y = zoo.datasets.load("mnist", "validation")
    metadata = migrations.convert(folder / "weights.json", tmp_path / "blend", X=X[:300], y=y[:300], progress=False)
    assert metadata["label"] == "slsqp blend" and metadata["converted_from"] == str(folder / "weights.json")
    assert [(m["name"], m["kind"], m["weight"]) for m in metadata["members"]] == [("mlp", "zoo", 0.3), ("logreg", "sklearn", 0.7)]
    blend = ensemble.load(tmp_path / "blend")
    assert blend.memory is None and list(blend.named_estimators_) == ["mlp", "logreg"]
    X_test, _ = zoo.datasets.load("mnist", "test")
    logreg = skops.io.load(folder / "logreg.skops", trusted=skops.io.get_untrusted_types(file=folder / "logreg.skops"))
    expected = 0.3 * zoo.predict_proba(zoo.load("mnist_mlp"), X_test[:100]) + 0.7 * logreg.predict_proba(X_test[:100])
    np.testing.assert_allclose(blend.predict_proba(X_test[:100]), expected, rtol=1e-5, atol=1e-6)


def test_convert_refuses_what_it_cannot_trust_before_opening_it(legacy, tmp_path):
    folder, doc = legacy
    assert migrations.legacy_document(tmp_path) is None  # a folder without stack.json
    assert migrations.legacy_document(folder / "weights.json")[1] == folder
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="not a saved ensemble nor a version 0.1 ensemble file"):
        migrations.legacy_document(tmp_path / "other.json")
    for change, message in (({"source": "../logreg.skops"}, "not a bare file name"), ({"sha256": "0" * 64}, "refusing to open it"),
                            ({"kind": None}, "needs string kind, source and sha256")):
        bad = json.loads(json.dumps(doc))
        bad["members"][1].update(change)
        (folder / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=message):
            migrations.convert(folder / "bad.json", tmp_path / "out", dataset="mnist", progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="neither a version 0.1 weights .json file nor a stack folder"):
        migrations.convert(tmp_path, tmp_path / "out")


def test_chunked_evaluation_equals_scoring_all_rows_at_once(tmp_path):
    X, y = zoo.datasets.load("mnist", "validation")
    X, y = X[:700] / 255.0, y[:700]
    a = make_pipeline(Flatten(), LogisticRegression(max_iter=50)).fit(X[:400], y[:400])
    b = make_pipeline(Flatten(), LogisticRegression(max_iter=50, C=0.01)).fit(X[:400], y[:400])
    blend = ensemble.BlendClassifier([("a", FrozenEstimator(a)), ("b", FrozenEstimator(b))], method="slsqp").fit(X[400:], y[400:])
    result = evaluation.evaluate(blend, X, y, memory=tmp_path / "cache", chunk_size=123, progress=False,
                                 records={"a": {"kind": "sklearn", "source": "a.skops", "sha256": "x"}})
    assert [r["name"] for r in result["members"]] == ["a", "b"] and result["members"][0]["kind"] == "sklearn"
    assert result["members"][1]["kind"] is None
    for row, model in zip(result["members"], (a, b)):
        assert row["scores"]["accuracy"] == pytest.approx(float(np.mean(model.predict(X) == y)))
        assert row["scores"] == pytest.approx(evaluation.scores(y, model.predict_proba(X)))
    whole = evaluation.scores(y, blend.predict_proba(X))
    assert result["ensemble_scores"] == pytest.approx(whole)
    best = max(r["scores"]["accuracy"] for r in result["members"])
    assert result["gain_over_best_member_points"] == pytest.approx(100 * (whole["accuracy"] - best), abs=1e-4)
    np.testing.assert_allclose([r["weight"] for r in result["members"]], blend.weights_)
    text = evaluation.report([{**r, "test": r["scores"]} for r in result["members"]], result["ensemble_scores"], "test", "blend", weights=True)
    assert text.splitlines()[0] == "blend on test" and "gain over the best member" in text
    with pytest.raises(ValueError, match="not among the members' classes"):
        evaluation.evaluate(blend, X[:10], y[:10] + 10, progress=False)
