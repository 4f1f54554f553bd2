"""The ``ensemble`` command, driven as a subprocess: fit-weights, evaluate, stack, diversity and error paths."""

import json

import joblib
import numpy as np
import pytest
import skops.io
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler

import ensemble
from clirun import run_command
import zoo
from ensemble.preprocessing import Flatten
from zoo.models import scores

MEMBERS = ["mnist_mlp", "mnist_sepconv"]


def run_ensemble(*args, check=True, cwd=None, fresh=False):
    proc = run_command("ensemble", *args, cwd=cwd, fresh=fresh)
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
    """A fitted logistic-regression pipeline saved with skops (and joblib), and a prediction cache."""
    folder = tmp_path_factory.mktemp("ensemble-cli")
    X, y = zoo.datasets.load("mnist", "train")
    model = make_pipeline(Flatten(), MaxAbsScaler(), LogisticRegression(max_iter=200)).fit(X[:3000], y[:3000])
    skops.io.dump(model, folder / "logreg.skops")
    joblib.dump(model, folder / "logreg.joblib")
    digits_0_to_4 = y[:3000] < 5
    skops.io.dump(make_pipeline(Flatten(), LogisticRegression(max_iter=50)).fit(X[:3000][digits_0_to_4], y[:3000][digits_0_to_4]), folder / "half.skops")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_CACHE_DIR", str(folder / "cache"))  # member predictions cached per test module
        yield folder


def _probabilities(name_or_path, X):
    if str(name_or_path).endswith(".skops"):
        return skops.io.load(name_or_path, trusted=skops.io.get_untrusted_types(file=name_or_path)).predict_proba(X)
    return zoo.predict_proba(zoo.load(name_or_path), X)


def _metadata(folder):
    return ensemble.persistence.read_manifest(folder)[0]["metadata"]


@pytest.mark.parametrize("method", ["mean", "slsqp", "nnls", "caruana"])
def test_fit_weights_then_evaluate_on_test(workdir, method):
    members = [*MEMBERS, workdir / "logreg.skops"]
    out = workdir / f"blend-{method}"
    fitted = json.loads(run_ensemble("fit-weights", "--members", *members, "--dataset", "mnist", "--method", method, "--out", out, "--json").stdout)
    manifest = ensemble.persistence.read_manifest(out)[0]
    doc = manifest["metadata"]
    assert doc["members"] == fitted["members"] and doc["method"] == method and doc["fitted_on"]["split"] == "validation"
    assert [m["name"] for m in doc["members"]] == ["mnist_mlp", "mnist_sepconv", "logreg"]
    assert doc["members"][0]["sha256"] == zoo.info("mnist_mlp")["weights"]["sha256"]
    weights = np.array([m["weight"] for m in doc["members"]])
    assert (weights >= 0).all() and weights.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(weights, ensemble.load(out).weights_)
    if method == "mean":
        np.testing.assert_allclose(weights, 1 / 3)
    assert {"numpy", "scikit-learn", "keras", "skops"} <= set(manifest["versions"])

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
    run_ensemble("stack", "--members", *MEMBERS, workdir / "logreg.skops", "--dataset", "mnist", "--meta", meta, "--out", out, "--quiet")
    assert _metadata(out)["meta_learner"] == meta
    result = json.loads(run_ensemble("evaluate", out, "--json").stdout)
    assert result["evaluated_on"]["split"] == "test" and result["ensemble"] == f"stack ({meta})"
    assert result["ensemble_scores"]["accuracy"] > 0.97


def test_own_data_file_and_diversity_with_plot(workdir):
    X, y = zoo.datasets.load("mnist", "validation")
    np.savez(workdir / "mine.npz", X=X[:2000], y=y[:2000])
    out = workdir / "own"
    run_ensemble("fit-weights", "--members", *MEMBERS, "--data", workdir / "mine.npz", "--out", out, "--quiet")
    assert _metadata(out)["fitted_on"]["n"] == 2000
    evaluated = run_ensemble("evaluate", out, "--data", workdir / "mine.npz", "--json")
    assert "fitted on" in evaluated.stderr  # warns: same data as fitting

    report = json.loads(run_ensemble("diversity", "--members", *MEMBERS, workdir / "logreg.skops", "--dataset", "mnist", "--json").stdout)
    assert [m["name"] for m in report["members"]] == ["mnist_mlp", "mnist_sepconv", "logreg"] and len(report["pairs"]) == 3
    mlp_val = zoo.info("mnist_mlp")["metrics"]["validation"]["accuracy"]
    assert report["members"][0]["accuracy"] == pytest.approx(mlp_val, abs=1e-6)
    plot = workdir / "diversity.png"
    text = run_ensemble("diversity", "--members", *MEMBERS, "--dataset", "mnist", "--plot", plot).stdout
    assert "disagreement" in text and plot.stat().st_size > 1000


def test_error_paths_exit_2_with_one_line(workdir, tmp_path):
    fit = ["fit-weights", "--dataset", "mnist", "--out", tmp_path / "w", "--members"]
    assert_usage_error(run_ensemble(*fit, "mnist_mlp", "mnist_resnet", check=False), "mnist_resnet", "neither a zoo model")
    assert_usage_error(run_ensemble(*fit, "mnist_mlp", tmp_path / "absent.skops", check=False), "absent.skops")
    assert_usage_error(run_ensemble(*fit, "mnist_mlp", "imdb_bow", check=False), "imdb_bow is a model for imdb")
    assert_usage_error(run_ensemble(*fit, "mnist_mlp", workdir / "half.skops", check=False), "half", "classes")
    assert_usage_error(run_ensemble(*fit, "mnist_mlp", "mnist_mlp", check=False), "more than once")
    np.savez(tmp_path / "wrong.npz", X=np.zeros((4, 32, 32, 3), np.uint8), y=np.zeros(4, int))
    wrong = run_ensemble("fit-weights", "--members", "mnist_mlp", "--data", tmp_path / "wrong.npz", "--out", tmp_path / "w", check=False)
    assert_usage_error(wrong, "mnist_mlp")
    assert not (tmp_path / "w").exists()
    # members of two datasets under --data
    X, y = zoo.datasets.load("mnist", "validation")
    np.savez(tmp_path / "mine.npz", X=X[:50], y=y[:50])
    mixed = run_ensemble("fit-weights", "--members", "mnist_mlp", "fashion_mnist_mlp", "--data", tmp_path / "mine.npz", "--out", tmp_path / "w", check=False)
    assert_usage_error(mixed, "different datasets")
    # a regressor as member
    skops.io.dump(LinearRegression().fit(X[:50].reshape(50, -1), y[:50]), tmp_path / "regressor.skops")
    assert_usage_error(run_ensemble(*fit, "mnist_mlp", tmp_path / "regressor.skops", check=False), "not a fitted classifier")
    # output paths that cannot be written
    (tmp_path / "file").write_text("x")
    assert_usage_error(run_ensemble("fit-weights", "--members", "mnist_mlp", "--dataset", "mnist", "--out", tmp_path / "file", check=False), "not a folder")
    assert_usage_error(run_ensemble("fit-weights", "--members", "mnist_mlp", "--dataset", "mnist", "--out", tmp_path / ("n" * 300), check=False), "too long")
    (tmp_path / "mydir").mkdir()
    (tmp_path / "mydir" / "notes.txt").write_text("keep")
    assert_usage_error(run_ensemble("fit-weights", "--members", "mnist_mlp", "--dataset", "mnist", "--out", tmp_path / "mydir", check=False), "holds no saved ensemble")

    (tmp_path / "broken.json").write_text('{"format": "ensemble-blend-weights", "members": [')
    assert_usage_error(run_ensemble("evaluate", tmp_path / "broken.json", check=False), "not valid JSON")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    assert_usage_error(run_ensemble("evaluate", tmp_path / "other.json", check=False), "not a saved ensemble")

    debug = run_ensemble(*fit, "mnist_resnet", "--debug", check=False)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


class _Marker:
    """Unpickling this creates a marker file: the only effect of a malicious pickle here."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickles_need_allow_pickle_and_a_matching_sha256_first(workdir, tmp_path):
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.joblib"
    joblib.dump(_Marker(marker), evil)
    fit = ["fit-weights", "--members", "mnist_mlp", "--dataset", "mnist", "--method", "mean", "--out", tmp_path / "w", "--quiet"]
    assert_usage_error(run_ensemble(*fit[:3], evil, *fit[3:], check=False), "--allow-pickle")
    assert not marker.exists()
    run_ensemble(*fit[:3], workdir / "logreg.joblib", *fit[3:], "--allow-pickle")  # opted in: a trusted pickle
    assert ensemble.load(tmp_path / "w").named_estimators_["logreg"] is not None  # saved with skops, no pickle

    # version 0.1 files: evaluate asks for a conversion; convert checks sha256 before unpickling
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    member = legacy / "logreg.joblib"
    member.write_bytes((workdir / "logreg.joblib").read_bytes())
    doc = {"format": "ensemble-blend-weights", "format_version": 1, "method": "slsqp", "classes": list(range(10)),
           "fitted_on": {"dataset": "mnist", "split": "validation"},
           "members": [{"name": "mnist_mlp", "kind": "zoo", "source": "mnist_mlp", "sha256": zoo.info("mnist_mlp")["weights"]["sha256"], "weight": 0.5},
                       {"name": "logreg", "kind": "sklearn", "source": "logreg.joblib", "sha256": _sha(member), "weight": 0.5}]}
    (legacy / "weights.json").write_text(json.dumps(doc))
    assert_usage_error(run_ensemble("evaluate", legacy / "weights.json", check=False), "ensemble convert")
    assert_usage_error(run_ensemble("convert", legacy / "weights.json", "--out", tmp_path / "c", check=False), "--allow-pickle")
    run_ensemble("convert", legacy / "weights.json", "--out", tmp_path / "c", "--allow-pickle", "--quiet")
    converted = json.loads(run_ensemble("evaluate", tmp_path / "c", "--json", "--quiet").stdout)
    assert [m["weight"] for m in converted["members"]] == [0.5, 0.5] and converted["ensemble_scores"]["accuracy"] > 0.97

    joblib.dump(_Marker(marker), member)  # replaced after fitting: refused before unpickling, even with the opt-in
    assert_usage_error(run_ensemble("convert", legacy / "weights.json", "--out", tmp_path / "c2", "--allow-pickle", check=False), "sha256")
    doc["members"][1].update(source="../evil.joblib", sha256=_sha(evil))
    (legacy / "weights.json").write_text(json.dumps(doc))
    assert_usage_error(run_ensemble("convert", legacy / "weights.json", "--out", tmp_path / "c2", "--allow-pickle", check=False), "bare file name")
    assert not marker.exists()


def _sha(path):
    from kze.files import sha256_file

    return sha256_file(path)


def test_stack_keeps_the_members_classes_and_refuses_one_class_data(tmp_path):
    X, y = zoo.datasets.load("mnist", "validation")
    keep = y != 0
    np.savez(tmp_path / "no-zero.npz", X=X[keep][:300], y=y[keep][:300])
    run_ensemble("stack", "--members", *MEMBERS, "--data", tmp_path / "no-zero.npz", "--out", tmp_path / "s", "--quiet")
    assert ensemble.load(tmp_path / "s").classes_.tolist() == list(range(10))
    np.savez(tmp_path / "one.npz", X=X[y == 3][:50], y=y[y == 3][:50])
    assert_usage_error(run_ensemble("stack", "--members", *MEMBERS, "--data", tmp_path / "one.npz", "--out", tmp_path / "s", check=False), "class")
    assert ensemble.load(tmp_path / "s").classes_.tolist() == list(range(10))  # the good stack is still there


def test_convert_a_version_0_1_stack_folder(workdir, tmp_path):
    X, y = zoo.datasets.load("mnist", "validation")
    members = [zoo.predict_proba(zoo.load(name), X[:1000]) for name in MEMBERS]
    meta = LogisticRegression(max_iter=500).fit(np.hstack(members), y[:1000])
    legacy = tmp_path / "stack"
    legacy.mkdir()
    joblib.dump(meta, legacy / "meta_learner.joblib")
    records = [{"name": n, "kind": "zoo", "source": n, "sha256": zoo.info(n)["weights"]["sha256"]} for n in MEMBERS]
    doc = {"format": "ensemble-stack", "format_version": 1, "classes": list(range(10)), "members": records,
           "fitted_on": {"dataset": "mnist", "split": "validation"},
           "meta_learner": {"name": "logreg", "file": "meta_learner.joblib", "sha256": _sha(legacy / "meta_learner.joblib")}}
    (legacy / "stack.json").write_text(json.dumps(doc))
    assert_usage_error(run_ensemble("convert", legacy, "--out", tmp_path / "new", check=False), "--allow-pickle")
    run_ensemble("convert", legacy, "--out", tmp_path / "new", "--allow-pickle", "--quiet")
    X_test, _ = zoo.datasets.load("mnist", "test")
    expected = meta.predict_proba(np.hstack([zoo.predict_proba(zoo.load(n), X_test[:200]) for n in MEMBERS]))
    np.testing.assert_allclose(ensemble.load(tmp_path / "new").predict_proba(X_test[:200]), expected, atol=1e-12)
    doc["meta_learner"]["file"] = "../elsewhere.joblib"
    (legacy / "stack.json").write_text(json.dumps(doc))
    assert_usage_error(run_ensemble("convert", legacy, "--out", tmp_path / "new2", "--allow-pickle", check=False), "bare file name")


# --- command-line conventions (issue 15, item 4) -------------------------------------------------------------


def test_version_and_flag_errors_with_the_subcommands_usage():
    proc = run_ensemble("--version")
    assert proc.stdout == f"ensemble {zoo.__version__}\n" and proc.stderr == ""
    proc = run_ensemble("select", "--library", "LIB", "--out", "OUT", "--ensemble-sise", "5", check=False)
    assert_usage_error(proc, "ensemble select: error: unrecognized arguments: --ensemble-sise 5; did you mean --ensemble-size?",
                       "(usage: ensemble select [-h] [--json] [--quiet] [--debug] --library LIB")
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run_ensemble("fit-weights", "--members", "mnist_mlp", "--out", "OUT", "--method", "slsq", check=False)
    assert_usage_error(proc, "ensemble fit-weights: error: argument --method", "did you mean 'slsqp'?", "(usage: ensemble fit-weights ")
    assert_usage_error(run_ensemble("evaluate", check=False), "the following arguments are required: DIR", "(usage: ensemble evaluate ")
