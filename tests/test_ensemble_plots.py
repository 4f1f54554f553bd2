"""Weights and diversity figures (``ensemble.plots``) and the commands that draw them, on a tiny MNIST library.

``ensemble select --plot`` and ``ensemble evaluate --plot`` draw the blend
weights; ``ensemble diversity`` also compares the models of a library
(``--library``), with or without ``--members``.
"""

import io
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import zoo
from ensemble.plots import diversity_figure, weights_figure
from zoo.library import add_trial, open_library


def run_ensemble(*args, check=True, code=None):
    command = [sys.executable, "-m", "ensemble", *map(str, args)] if code is None else [sys.executable, "-c", code, *map(str, args)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, env=os.environ.copy(), check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def assert_usage_error(proc, *fragments):
    assert proc.returncode == 2 and proc.stdout == "", (proc.stdout, proc.stderr)
    last = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr and last.startswith("ensemble "), proc.stderr
    for fragment in fragments:
        assert fragment in last, last


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Two small MLPs (one epoch on 600 MNIST images each) written as library entries, and a prediction cache."""
    folder = tmp_path_factory.mktemp("plots")
    lib = open_library(folder / "lib")
    X, y = zoo.datasets.load("mnist", "train")
    for trial, units in enumerate([(16,), (32,)]):
        start = time.perf_counter()
        rows = slice(600 * trial, 600 * (trial + 1))
        clf = zoo.ZooClassifier("mlp", epochs=1, learning_rate=3e-3, early_stopping_size=100, random_state=trial, builder__units=units)
        clf.fit(X[rows], y[rows])
        objective = {"name": "early_stopping_accuracy", "value": clf.early_stopping_scores_["accuracy"], "direction": "maximize"}
        add_trial(lib, clf, study="tiny", trial=trial, objective=objective, hyperparameters={"units": list(units)},
                  seconds=time.perf_counter() - start, examples=600, dataset="mnist")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_CACHE_DIR", str(folder / "cache"))
        yield folder


# --------------------------------------------------------------------------- the library functions


def test_weights_figure_draws_one_bar_per_member_zero_weights_included():
    fig = weights_figure(["a", "b", "a_long_member_name"], [0.7, 0.0, 0.3], accuracies=[0.9, 0.8, 0.85], title="my blend")
    (ax,) = fig.axes
    assert [p.get_width() for p in ax.patches] == pytest.approx([0.7, 0.0, 0.3])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "a_long_member_name"]
    assert ax.get_title() == "my blend" and "acc 90.00%" in ax.texts[0].get_text()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(buffer.getvalue()) < 500_000


@pytest.mark.parametrize("names, weights, fragment", [
    ([], [], "at least one member"),
    (["a", "b"], [1.0], "2 finite, non-negative"),
    (["a", "b"], [1.0, -0.5], "2 finite, non-negative"),
    (["a"], [np.nan], "1 finite, non-negative"),
])
def test_weights_figure_refuses_weights_that_do_not_match(names, weights, fragment):
    with pytest.raises(ValueError, match=fragment):
        weights_figure(names, weights)


def test_diversity_figure_from_a_report_dict():
    report = {"members": [{"name": "a", "accuracy": 0.9, "log_loss": 0.3}, {"name": "b", "accuracy": 0.8, "log_loss": 0.5}],
              "pairs": [{"a": "a", "b": "b", "disagreement": 0.2, "double_fault": 0.05, "error_correlation": 0.4}]}
    fig = diversity_figure(report)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["error correlation", "accuracy"]
    assert fig.axes[0].get_images()[0].get_array()[0, 1] == pytest.approx(0.4)


# --------------------------------------------------------------------------- the command line


def test_diversity_of_a_library_with_and_without_members(library):
    lib, plot = library / "lib", library / "diversity.png"
    report = json.loads(run_ensemble("diversity", "--library", lib, "--members", "mnist_mlp", "--dataset", "mnist",
                                     "--plot", plot, "--json").stdout)
    assert [m["name"] for m in report["members"]] == ["tiny_t0000", "tiny_t0001", "mnist_mlp"] and len(report["pairs"]) == 3
    assert report["members"][2]["accuracy"] > report["members"][0]["accuracy"]
    width, height = _png_size(plot)
    assert plot.stat().st_size > 5_000 and 800 < width < 1500 and 400 < height < 1000
    alone = json.loads(run_ensemble("diversity", "--library", lib, "--dataset", "mnist", "--json").stdout)
    assert alone["members"] == report["members"][:2] and alone["pairs"] == report["pairs"][:1]


def test_select_and_evaluate_plot_the_weights(library):
    lib, out = library / "lib", library / "selected"
    selected = json.loads(run_ensemble("select", "--library", lib, "--members", "mnist_mlp", "--dataset", "mnist", "--out", out,
                                       "--ensemble-size", "10", "--plot", library / "select.png", "--json").stdout)
    assert len(selected["members"]) == 3
    width, height = _png_size(library / "select.png")  # one row per candidate, selected or not
    assert (library / "select.png").stat().st_size > 5_000 and 700 < width < 1000 and 200 < height < 400

    proc = run_ensemble("evaluate", out, "--split", "test", "--plot", library / "evaluate.png")
    assert "weights plot written to" in proc.stderr
    kept = sum(r["weight"] > 0 for r in selected["members"])
    width, height = _png_size(library / "evaluate.png")  # one row per saved (selected) member
    assert (library / "evaluate.png").stat().st_size > 5_000 and 700 < width < 1000
    assert height == pytest.approx(120 * (1.2 + 0.35 * kept), abs=2)

    assert_usage_error(run_ensemble("evaluate", out, "--plot", library / "weights.txt", check=False), "--plot", ".png")
    assert_usage_error(run_ensemble("evaluate", out, "--plot", library / ("w" * 300 + ".png"), check=False), "--plot", "too long")
    assert not (library / "weights.txt").exists()


def test_diversity_needs_members_or_a_library_and_plots_need_matplotlib(library, tmp_path):
    assert_usage_error(run_ensemble("diversity", "--dataset", "mnist", check=False), "--members", "--library")
    assert_usage_error(run_ensemble("diversity", "--library", tmp_path, "--dataset", "mnist", check=False), "not a model library")
    without_matplotlib = "import sys; sys.modules['matplotlib'] = None; from ensemble.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = run_ensemble("diversity", "--members", "mnist_mlp", "--dataset", "mnist", "--plot", tmp_path / "d.png",
                        code=without_matplotlib, check=False)
    assert_usage_error(proc, "--plot needs matplotlib", "pip install")
    assert list(tmp_path.iterdir()) == []


def test_importing_the_plots_module_imports_neither_matplotlib_nor_tensorflow():
    code = "import sys, ensemble.plots; print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'tensorflow', 'keras', 'zoo'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.strip() == "[]"
