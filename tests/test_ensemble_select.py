"""``ensemble select``: Caruana's selection from a model library, end to end, on a tiny library of MNIST models."""

import json
import shutil
import time

import numpy as np
import pytest

import ensemble
from clirun import run_command
import zoo
from ensemble.calibration import apply_temperature
from zoo.library import add_trial, open_library
from zoo.models import scores


def run_ensemble(*args, check=True):
    proc = run_command("ensemble", *args)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Three small MLPs (two epochs on 1,000 MNIST images each) written as library entries, and a prediction cache."""
    folder = tmp_path_factory.mktemp("select")
    lib = open_library(folder / "lib")
    X, y = zoo.datasets.load("mnist", "train")
    for trial, units in enumerate([(32,), (64,), (16,)]):
        start = time.perf_counter()
        clf = zoo.ZooClassifier("mlp", epochs=2, learning_rate=3e-3, early_stopping_size=100, random_state=trial, builder__units=units)
        clf.fit(X[1000 * trial:1000 * (trial + 1)], y[1000 * trial:1000 * (trial + 1)])
        objective = {"name": "early_stopping_accuracy", "value": clf.early_stopping_scores_["accuracy"], "direction": "maximize"}
        add_trial(lib, clf, study="tiny", trial=trial, objective=objective, hyperparameters={"units": list(units)},
                  seconds=time.perf_counter() - start, examples=1000, dataset="mnist")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_CACHE_DIR", str(folder / "cache"))
        yield folder


def _manifest(out):
    return ensemble.persistence.read_manifest(out)[0]


def test_select_from_a_library_then_evaluate_on_test(library):
    lib, out = library / "lib", library / "selected"
    names = zoo.list_models(registry=lib)
    assert names == ["tiny_t0000", "tiny_t0001", "tiny_t0002"]
    args = ["select", "--library", lib, "--members", "mnist_mlp", "--dataset", "mnist", "--out", out,
            "--prune", "3", "--bags", "4", "--bag-fraction", "0.67", "--ensemble-size", "10", "--init", "2", "--json"]
    selected = json.loads(run_ensemble(*args).stdout)
    doc = _manifest(out)["metadata"]
    assert doc["members"] == selected["members"] and doc["method"] == "caruana" and doc["metric"] == "log_loss"
    assert doc["selection"] == {"library": str(lib.resolve()), "candidates": 4, "selected": doc["selection"]["selected"],
                                "ensemble_size": 10, "init": 2, "bags": 4, "bag_fraction": 0.67, "prune": 3, "scoring": "log_loss"}
    rows = {r["name"]: r for r in doc["members"]}
    assert [r["kind"] for r in doc["members"]] == ["library"] * 3 + ["zoo"]
    assert rows["tiny_t0001"]["sha256"] == zoo.info("tiny_t0001", registry=lib)["weights"]["sha256"]
    weights = np.array([r["weight"] for r in doc["members"]])
    assert weights.sum() == pytest.approx(1.0) and weights[3] > 0  # the zoo's mlp is by far the best candidate
    worst = min(rows, key=lambda n: rows[n]["validation"]["accuracy"])  # pruned: not among the best 3 alone
    assert rows[worst]["weight"] == 0
    assert doc["calibrate"] is True and all(r["temperature"] > 0 for r in doc["members"])  # on by default

    # only the selected members are saved; library models as builder + weights, independent of the library folder
    model = ensemble.load(out)
    assert list(model.named_estimators_) == [n for n, w in zip(rows, weights) if w > 0]
    kinds = [p["kind"] for p in _manifest(out)["parts"]]
    assert kinds.count("zoo") == 1 and kinds.count("zoo_build") == doc["selection"]["selected"] - 1
    np.testing.assert_allclose(model.weights_, weights[weights > 0])
    shutil.move(lib, library / "moved")
    try:
        result = json.loads(run_ensemble("evaluate", out, "--split", "test", "--json").stdout)
    finally:
        shutil.move(library / "moved", lib)
    X, y = zoo.datasets.load("mnist", "test")
    probas = [zoo.predict_proba(zoo.load(n, registry=lib if n.startswith("tiny") else None), X) for n in model.named_estimators_]
    scaled = [apply_temperature(p, t) for p, t in zip(probas, model.temperatures_)]
    expected = scores(y, apply_temperature(sum(w * p for w, p in zip(model.weights_, scaled)), model.blend_temperature_))
    assert result["ensemble_scores"]["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-4)
    assert result["ensemble_scores"]["log_loss"] == pytest.approx(expected["log_loss"], rel=1e-4)


def test_reselecting_uses_the_cache_and_the_options_change_the_selection(library):
    lib, cache = library / "lib", library / "cache" / "predictions"
    first = json.loads(run_ensemble("select", "--library", lib, "--dataset", "mnist", "--out", library / "a", "--no-calibrate",
                                    "--json").stdout)
    cached = sorted(p.name for p in cache.iterdir())
    again = json.loads(run_ensemble("select", "--library", lib, "--dataset", "mnist", "--out", library / "b", "--prune", "2",
                                    "--scoring", "accuracy", "--json").stdout)
    assert sorted(p.name for p in cache.iterdir()) == cached  # the members' predictions were not computed again
    assert first["calibrate"] is False and all(r["temperature"] == 1.0 for r in first["members"])
    assert first["metric"] == "log_loss" and again["metric"] == "accuracy" and again["calibrate"] is True
    assert all(r["temperature"] < 1 for r in again["members"])  # two epochs on 900 images: under-confident models
    worst = min(again["members"], key=lambda r: r["validation"]["accuracy"])
    assert worst["weight"] == 0  # pruned: only the two best alone are candidates
    best = max(r["validation"]["accuracy"] for r in again["members"])
    assert again["ensemble"]["validation"]["accuracy"] >= best  # the selection starts from the best alone
    assert again["ensemble"]["validation"]["log_loss"] < first["ensemble"]["validation"]["log_loss"]


def test_tampered_library_and_bad_arguments_exit_2(library, tmp_path):
    lib = tmp_path / "lib"
    shutil.copytree(library / "lib", lib)
    weights = lib / "weights" / "tiny_t0001.weights.h5"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 1
    weights.write_bytes(bytes(data))
    proc = run_ensemble("select", "--library", lib, "--dataset", "mnist", "--out", tmp_path / "out", check=False)
    assert proc.returncode == 2 and "tiny_t0001" in proc.stderr and "sha256" in proc.stderr.lower(), proc.stderr
    assert not (tmp_path / "out").exists()
    for args, fragment in (
        (["--library", tmp_path / "nothing"], "not a model library"),
        (["--library", lib, "--prune", "0"], "expected a positive whole number"),
        (["--library", lib, "--bag-fraction", "1.5"], "expected a number in (0, 1]"),
    ):
        proc = run_ensemble("select", *args, "--dataset", "mnist", "--out", tmp_path / "out", check=False)
        assert proc.returncode == 2 and fragment in proc.stderr.strip().splitlines()[-1], proc.stderr


# --- ensemble.select: the Python form of `ensemble select` (issue 15, item 3) ---------------------------


def test_python_select_has_the_command_lines_defaults():
    import inspect

    from ensemble.cli import build_parser

    args = build_parser().parse_args(["select", "--library", "LIB", "--out", "OUT"])
    defaults = {k: p.default for k, p in inspect.signature(ensemble.select).parameters.items() if p.default is not p.empty}
    flags = {"ensemble_size": "ensemble_size", "n_init": "init", "n_bags": "bags", "bag_fraction": "bag_fraction",
             "n_best": "prune", "scoring": "scoring", "calibrate": "calibrate", "random_state": "seed"}
    assert {name: defaults[name] for name in flags} == {name: getattr(args, flag) for name, flag in flags.items()}
    assert defaults["ensemble_size"] == 50 and defaults["calibrate"] is True and defaults["scoring"] == "log_loss"


def test_python_select_equals_the_command_line_and_saves_only_the_selected(library, tmp_path):
    lib = library / "lib"
    X, y = zoo.datasets.load("mnist", "validation")
    np.savez(tmp_path / "val.npz", X=X[:400], y=y[:400])
    options = ["--prune", "3", "--init", "2", "--bags", "3", "--bag-fraction", "0.67", "--ensemble-size", "10", "--seed", "1"]
    cli = json.loads(run_ensemble("select", "--library", lib, "--members", "mnist_mlp", "--data", tmp_path / "val.npz",
                                  "--out", tmp_path / "cli", *options, "--json", "--quiet").stdout)

    names = zoo.list_models(registry=lib)
    members = [(n, ensemble.KerasMember(zoo.load(n, registry=lib), classes=np.arange(10))) for n in names]
    members.append(("mnist_mlp", ensemble.KerasMember(zoo.load("mnist_mlp"), classes=np.arange(10))))
    blend, candidates = ensemble.select(members, X[:400], y[:400], n_best=3, n_init=2, n_bags=3, bag_fraction=0.67,
                                        ensemble_size=10, random_state=1, return_candidates=True)
    assert [r["name"] for r in cli["members"]] == list(candidates.named_estimators_) == [*names, "mnist_mlp"]
    np.testing.assert_allclose(candidates.weights_, [r["weight"] for r in cli["members"]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(candidates.temperatures_, [r["temperature"] for r in cli["members"]], rtol=1e-6)
    assert 0 in candidates.weights_ and (candidates.weights_ > 0).sum() >= 2  # pruned; a sorted start from the 2 best

    # the result holds the selected members only, with the CLI's weights, and predicts as the CLI's saved ensemble
    selected = [n for n, w in zip(candidates.named_estimators_, candidates.weights_) if w > 0]
    saved = ensemble.load(tmp_path / "cli")
    assert list(blend.named_estimators_) == list(saved.named_estimators_) == selected
    np.testing.assert_allclose(blend.weights_, saved.weights_, rtol=0, atol=1e-12)
    assert blend.weights_.sum() == pytest.approx(1.0)
    assert blend.blend_temperature_ == pytest.approx(cli["blend_temperature"], rel=1e-6)
    X_test, _ = zoo.datasets.load("mnist", "test")
    np.testing.assert_allclose(blend.predict_proba(X_test[:300]), saved.predict_proba(X_test[:300]), rtol=1e-5, atol=1e-7)
    assert blend.memory is None  # the temporary prediction cache is gone

    ensemble.save(blend, tmp_path / "python")
    again = ensemble.load(tmp_path / "python")
    assert list(again.named_estimators_) == selected
    for out in (tmp_path / "python", tmp_path / "cli"):  # one model part per selected member (each in a keras_member part)
        assert sum(p["kind"] in ("zoo", "zoo_build") for p in _manifest(out)["parts"]) == len(selected)
