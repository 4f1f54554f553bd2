"""The ``ensemble`` command, driven as a subprocess: fit-weights, evaluate, stack, diversity and error paths."""

import json
import os
import subprocess
import sys

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, MaxAbsScaler

import zoo
from zoo.models import scores

MEMBERS = ["mnist_mlp", "mnist_sepconv"]


def run_ensemble(*args, check=True, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "ensemble", *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd, env=os.environ.copy())
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def assert_usage_error(proc, *fragments):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    last = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr and last.startswith("ensemble "), proc.stderr
    for fragment in fragments:
        assert fragment in last, last
    assert proc.stdout == ""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A fitted logistic-regression pipeline saved with joblib, and a prediction cache."""
    folder = tmp_path_factory.mktemp("ensemble-cli")
    X, y = zoo.datasets.load("mnist", "train")
    flat = FunctionTransformer(np.reshape, kw_args={"shape": (-1, 784)})
    model = make_pipeline(flat, MaxAbsScaler(), LogisticRegression(max_iter=200))
    joblib.dump(model.fit(X[:3000], y[:3000]), folder / "logreg.joblib")
    digits_0_to_4 = y[:3000] < 5
    joblib.dump(make_pipeline(flat, LogisticRegression(max_iter=50)).fit(X[:3000][digits_0_to_4], y[:3000][digits_0_to_4]), folder / "half.joblib")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_CACHE_DIR", str(folder / "cache"))  # member predictions cached per test module
        yield folder


def _probabilities(name_or_path, X):
    if str(name_or_path).endswith(".joblib"):
        return joblib.load(name_or_path).predict_proba(X)
    return zoo.predict_proba(zoo.load(name_or_path), X)


@pytest.mark.parametrize("method", ["mean", "slsqp", "nnls", "caruana"])
def test_fit_weights_then_evaluate_on_test(workdir, method):
    members = [*MEMBERS, workdir / "logreg.joblib"]
    out = workdir / f"{method}.json"
    fitted = json.loads(run_ensemble("fit-weights", "--members", *members, "--dataset", "mnist", "--method", method, "--out", out, "--json").stdout)
    doc = json.loads(out.read_text())  # plain JSON, no pickle
    assert doc == fitted and doc["method"] == method and doc["fitted_on"]["split"] == "validation"
    assert [m["name"] for m in doc["members"]] == ["mnist_mlp", "mnist_sepconv", "logreg"]
    assert doc["members"][0]["sha256"] == zoo.info("mnist_mlp")["weights"]["sha256"]
    weights = np.array([m["weight"] for m in doc["members"]])
    assert (weights >= 0).all() and weights.sum() == pytest.approx(1.0)
    if method == "mean":
        np.testing.assert_allclose(weights, 1 / 3)
    assert {"numpy", "scikit-learn", "keras", "tensorflow", "xgboost"} <= set(doc["versions"])

    result = json.loads(run_ensemble("evaluate", out, "--split", "test", "--json").stdout)
    X, y = zoo.datasets.load("mnist", "test")
    probas = [_probabilities(m, X) for m in members]
    expected = scores(y, sum(w * p for w, p in zip(weights, probas)))
    assert result["ensemble_scores"]["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-4)
    assert result["ensemble_scores"]["log_loss"] == pytest.approx(expected["log_loss"], rel=1e-4)
    best = max(scores(y, p)["accuracy"] for p in probas)
    assert result["gain_over_best_member_points"] == pytest.approx(100 * (expected["accuracy"] - best), abs=0.02)

    table = run_ensemble("evaluate", out).stdout  # the test split by default, as a table
    assert "gain over the best member" in table and "logreg" in table


@pytest.mark.parametrize("meta", ["logreg", "rf", "xgboost"])
def test_stack_then_evaluate_directory(workdir, meta):
    out = workdir / f"stack-{meta}"
    run_ensemble("stack", "--members", *MEMBERS, workdir / "logreg.joblib", "--dataset", "mnist", "--meta", meta, "--out", out, "--quiet")
    doc = json.loads((out / "stack.json").read_text())
    assert doc["meta_learner"]["name"] == meta and (out / "meta_learner.joblib").is_file()
    result = json.loads(run_ensemble("evaluate", out, "--json").stdout)
    assert result["evaluated_on"]["split"] == "test" and result["ensemble"] == f"stack ({meta})"
    assert result["ensemble_scores"]["accuracy"] > 0.97


def test_own_data_file_and_diversity_with_plot(workdir):
    X, y = zoo.datasets.load("mnist", "validation")
    np.savez(workdir / "mine.npz", X=X[:2000], y=y[:2000])
    out = workdir / "own.json"
    run_ensemble("fit-weights", "--members", *MEMBERS, "--data", workdir / "mine.npz", "--out", out, "--quiet")
    assert json.loads(out.read_text())["fitted_on"]["n"] == 2000
    evaluated = run_ensemble("evaluate", out, "--data", workdir / "mine.npz", "--json")
    assert "fitted on" in evaluated.stderr  # warns: same data as fitting

    report = json.loads(run_ensemble("diversity", "--members", *MEMBERS, workdir / "logreg.joblib", "--dataset", "mnist", "--json").stdout)
    assert [m["name"] for m in report["members"]] == ["mnist_mlp", "mnist_sepconv", "logreg"] and len(report["pairs"]) == 3
    mlp_val = zoo.info("mnist_mlp")["metrics"]["validation"]["accuracy"]
    assert report["members"][0]["accuracy"] == pytest.approx(mlp_val, abs=1e-6)
    plot = workdir / "diversity.png"
    text = run_ensemble("diversity", "--members", *MEMBERS, "--dataset", "mnist", "--plot", plot).stdout
    assert "disagreement" in text and plot.stat().st_size > 1000


def test_error_paths_exit_2_with_one_line(workdir, tmp_path):
    fit = ["fit-weights", "--dataset", "mnist", "--out", tmp_path / "w.json", "--members"]
    assert_usage_error(run_ensemble(*fit, "mnist_mlp", "mnist_resnet", check=False), "mnist_resnet", "neither a zoo model")
    assert_usage_error(run_ensemble(*fit, "mnist_mlp", tmp_path / "absent.joblib", check=False), "absent.joblib")
    assert_usage_error(run_ensemble(*fit, "mnist_mlp", "imdb_bow", check=False), "imdb_bow is a model for imdb")
    assert_usage_error(run_ensemble(*fit, "mnist_mlp", workdir / "half.joblib", check=False), "half", "classes")
    assert_usage_error(run_ensemble(*fit, "mnist_mlp", "mnist_mlp", check=False), "more than once")
    np.savez(tmp_path / "wrong.npz", X=np.zeros((4, 32, 32, 3), np.uint8), y=np.zeros(4, int))
    wrong = run_ensemble("fit-weights", "--members", "mnist_mlp", "--data", tmp_path / "wrong.npz", "--out", tmp_path / "w.json", check=False)
    assert_usage_error(wrong, "mnist_mlp")
    assert not (tmp_path / "w.json").exists()

    (tmp_path / "broken.json").write_text('{"format": "ensemble-blend-weights", "members": [')
    assert_usage_error(run_ensemble("evaluate", tmp_path / "broken.json", check=False), "not valid JSON")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    assert_usage_error(run_ensemble("evaluate", tmp_path / "other.json", check=False), "not an ensemble-blend-weights file")

    # a member file changed after fitting: refused
    member = tmp_path / "logreg.joblib"
    member.write_bytes((workdir / "logreg.joblib").read_bytes())
    run_ensemble("fit-weights", "--members", "mnist_mlp", member, "--dataset", "mnist", "--method", "mean", "--out", tmp_path / "w.json", "--quiet")
    model = joblib.load(member)
    model[-1].coef_[0, 0] += 1.0
    joblib.dump(model, member)
    assert_usage_error(run_ensemble("evaluate", tmp_path / "w.json", check=False), "logreg", "sha256")

    # a tampered meta-learner is not unpickled
    run_ensemble("stack", "--members", *MEMBERS, "--dataset", "mnist", "--out", tmp_path / "stack", "--quiet")
    with open(tmp_path / "stack" / "meta_learner.joblib", "ab") as fh:
        fh.write(b"\0")
    assert_usage_error(run_ensemble("evaluate", tmp_path / "stack", check=False), "meta-learner", "sha256")

    debug = run_ensemble(*fit, "mnist_resnet", "--debug", check=False)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
