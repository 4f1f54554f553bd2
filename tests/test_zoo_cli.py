"""The ``zoo`` command, driven as a subprocess: every command, its --json output and its error paths."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import zoo
from zoo import Registry


def run_zoo(*args, env=None, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "zoo", *map(str, args)], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def assert_usage_error(proc, *fragments):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert proc.stdout == ""


@pytest.fixture
def own_registry(tmp_path):
    """A copy of the shipped registry with mnist_mlp's weights, selected through ZOO_REGISTRY."""
    shipped = Registry()
    shutil.copy(shipped.path, tmp_path / "registry.yaml")
    (tmp_path / "weights").mkdir()
    shutil.copy(shipped.weights_path("mnist_mlp"), tmp_path / "weights")
    return tmp_path, {"ZOO_REGISTRY": str(tmp_path / "registry.yaml")}


def test_list_table_json_pattern_and_dataset():
    table = run_zoo("list").stdout
    for name in zoo.list_models():
        assert name in table
    rows = json.loads(run_zoo("list", "--json").stdout)
    assert [r["name"] for r in rows] == zoo.list_models()
    assert rows[0]["test_accuracy"] == zoo.info(rows[0]["name"])["metrics"]["test"]["accuracy"]
    assert [r["name"] for r in json.loads(run_zoo("list", "fashion_*", "--json").stdout)] == zoo.list_models("fashion_*")
    assert {r["dataset"] for r in json.loads(run_zoo("list", "--dataset", "imdb", "--json").stdout)} == {"imdb"}


def test_info_shows_entry_summary_and_recipe(tmp_path):
    out = run_zoo("info", "mnist_sepconv").stdout
    assert "builder: sepconv" in out and "recipe:" in out and "Total params" in out and "SeparableConv2D" in out
    assert json.loads(run_zoo("info", "mnist_sepconv", "--json").stdout) == zoo.info("mnist_sepconv")
    plot = tmp_path / "arch.png"
    proc = run_zoo("info", "mnist_sepconv", "--plot", plot, check=False)
    if shutil.which("dot"):
        assert proc.returncode == 0 and plot.stat().st_size > 0
    else:
        assert_usage_error(proc, "Graphviz")


def test_evaluate_split_limit_and_own_data(tmp_path):
    result = json.loads(run_zoo("evaluate", "mnist_mlp", "--limit", "1000", "--json", "--quiet").stdout)
    X, y = zoo.datasets.load("mnist", "test")
    expected = zoo.models.scores(y[:1000], zoo.predict_proba(zoo.load("mnist_mlp"), X[:1000]))
    assert result["n"] == 1000 and result["measured"]["accuracy"] == pytest.approx(expected["accuracy"])
    assert result["registry"] == zoo.info("mnist_mlp")["metrics"]["test"]
    val = json.loads(run_zoo("evaluate", "mnist_mlp", "--split", "validation", "--limit", "300", "--json").stdout)
    assert val["data"] == "mnist validation" and val["registry"] == zoo.info("mnist_mlp")["metrics"]["validation"]
    np.savez(tmp_path / "mine.npz", X=X[:200], y=y[:200])
    mine = json.loads(run_zoo("evaluate", "mnist_mlp", "--data", tmp_path / "mine.npz", "--json").stdout)
    assert mine["n"] == 200 and mine["registry"] is None
    assert "measured now" in run_zoo("evaluate", "mnist_mlp", "--limit", "200", "--quiet").stdout


def test_predict_npy_npz_png_and_text(tmp_path):
    from PIL import Image

    X, y = zoo.datasets.load("fashion_mnist", "test")
    np.save(tmp_path / "x.npy", X[:5])
    rows = json.loads(run_zoo("predict", "fashion_mnist_mlp", tmp_path / "x.npy", "--json").stdout)
    assert len(rows) == 5 and all(0 <= r["probability"] <= 1 for r in rows)
    assert [r["label"] for r in rows] == [zoo.datasets.class_names("fashion_mnist")[r["class_index"]] for r in rows]
    np.savez(tmp_path / "x.npz", X=X[:3, ..., 0])  # (n, 28, 28) is accepted too
    assert len(json.loads(run_zoo("predict", "fashion_mnist_mlp", tmp_path / "x.npz", "--json").stdout)) == 3
    for i in range(2):
        Image.fromarray(X[i, ..., 0]).save(tmp_path / f"img{i}.png")
    png = json.loads(run_zoo("predict", "fashion_mnist_mlp", tmp_path / "img0.png", tmp_path / "img1.png", "--json").stdout)
    assert [r["class_index"] for r in png] == [r["class_index"] for r in rows[:2]]
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("An absolute masterpiece, brilliant acting and a moving story.\n\nTerrible. Boring plot, awful acting, a waste of time.\n")
    text_rows = json.loads(run_zoo("predict", "imdb_bow", reviews, "--json").stdout)
    assert [r["label"] for r in text_rows] == ["positive", "negative"]
    assert "label" in run_zoo("predict", "imdb_bow", reviews).stdout


def test_train_writes_weights_logs_and_metrics(tmp_path, own_registry):
    folder, env = own_registry
    out = tmp_path / "run"
    proc = run_zoo("train", "mnist_mlp", "--epochs", "1", "--subset", "256", "--out", out, "--json", env=env)
    result = json.loads(proc.stdout)
    assert result["training"]["epochs_run"] == 1
    assert (out / "training.csv").is_file() and list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert Registry(folder / "registry.yaml").entry("mnist_mlp")["weights"]["sha256"] == result["weights"]["sha256"]
    assert Registry().entry("mnist_mlp")["weights"]["sha256"] != result["weights"]["sha256"]  # shipped one untouched


def test_error_paths_are_one_line_with_exit_code_2(tmp_path, own_registry):
    assert_usage_error(run_zoo("info", "mnist_vgg", check=False), "unknown model 'mnist_vgg'")
    assert_usage_error(run_zoo("evaluate", "mnist_mlp", "--data", tmp_path / "absent.npz", check=False), "absent.npz")
    assert_usage_error(run_zoo("predict", "mnist_mlp", tmp_path / "absent.npy", check=False), "does not exist")
    np.save(tmp_path / "wrong.npy", np.zeros((2, 32, 32, 3), dtype=np.uint8))
    assert_usage_error(run_zoo("predict", "mnist_mlp", tmp_path / "wrong.npy", check=False), "(n, 28, 28, 1)", "(2, 32, 32, 3)")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    assert_usage_error(run_zoo("evaluate", "mnist_mlp", "--data", tmp_path / "broken.npz", check=False), "broken.npz")
    assert_usage_error(run_zoo("predict", "mnist_mlp", tmp_path / "broken.npz", check=False), "cannot read", "broken.npz")
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY truncated")
    assert_usage_error(run_zoo("predict", "mnist_mlp", tmp_path / "broken.npy", check=False), "cannot read", "broken.npy")
    np.savez(tmp_path / "nolabels.npz", X=np.zeros((2, 28, 28, 1), np.uint8))
    assert_usage_error(run_zoo("evaluate", "mnist_mlp", "--data", tmp_path / "nolabels.npz", check=False), "y")
    assert_usage_error(run_zoo("predict", "imdb_bow", tmp_path / "wrong.npy", check=False), "strings")

    folder, env = own_registry
    weights = folder / "weights" / "mnist_mlp.weights.h5"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF  # flip the last byte: a change whatever its value was
    weights.write_bytes(bytes(raw))
    assert_usage_error(run_zoo("evaluate", "mnist_mlp", "--limit", "10", env=env, check=False), "sha256", "mnist_mlp")
    (folder / "registry.yaml").write_text("format_version: 1\nmodels: [{name: x}]\n")
    assert_usage_error(run_zoo("list", env=env, check=False), "entry 'x'", "field 'task'")

    debug = run_zoo("info", "mnist_vgg", "--debug", check=False)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
    assert run_zoo("frobnicate", check=False).returncode == 2
