"""The ``zoo`` command (its real entry point, see ``clirun``): every command, its --json output and its error paths."""

import json
import shutil

import numpy as np
import pytest

import zoo
from clirun import run_command
from zoo import Registry


def run_zoo(*args, env=None, check=True, fresh=False):
    proc = run_command("zoo", *args, env=env, fresh=fresh)
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
    reviews.write_text("An absolute masterpiece, brilliant acting and a moving story.\nTerrible. Boring plot, awful acting, a waste of time.\n")
    text_rows = json.loads(run_zoo("predict", "imdb_bow", reviews, "--json").stdout)
    assert [r["label"] for r in text_rows] == ["positive", "negative"]
    assert [r["input"] for r in text_rows] == ["reviews.txt line 1", "reviews.txt line 2"]  # an empty line is refused: tests/test_text_lines.py
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


def _package_files() -> dict:
    """sha256 of the shipped registry and of every file in the package's weights folder."""
    import hashlib

    shipped = Registry()
    files = [shipped.path, *sorted(p for p in shipped.weights_dir.rglob("*") if p.is_file())]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_train_never_writes_into_the_installed_package(tmp_path):
    from pathlib import Path

    # the .venv is an editable install: the package's registry and weights are the source tree's files
    assert Path(zoo.__file__).resolve().parent == Registry().weights_dir.resolve().parent
    before = _package_files()
    assert len(before) > 10
    env = {"ZOO_REGISTRY": "", "ZOO_CACHE_DIR": str(tmp_path / "cache")}  # no registry chosen through the environment
    library = tmp_path / "lib"
    proc = run_zoo("train", "mnist_mlp", "--subset", "300", "--epochs", "1", "--library", library, "--out", tmp_path / "run1", "--json", env=env)
    result = json.loads(proc.stdout)
    assert result["registry"] == str(library / "registry.yaml") and "into-package" not in proc.stderr
    entry = Registry(library).entry("mnist_mlp")
    assert entry["weights"]["sha256"] == result["weights"]["sha256"] == zoo.info("mnist_mlp", registry=library)["weights"]["sha256"]
    assert (library / "weights" / "mnist_mlp.weights.h5").is_file() and Registry(library).format_version == 2  # a library, as zoo search writes
    model = zoo.load("mnist_mlp", registry=library)
    assert model.predict(np.zeros((2, 28, 28, 1), np.uint8), verbose=0).shape == (2, 10)
    assert _package_files() == before

    # neither --library nor --into-package: the library in the cache, named on stdout; the package untouched
    proc = run_zoo("train", "mnist_mlp", "--subset", "300", "--epochs", "1", "--out", tmp_path / "run2", env=env)
    default = tmp_path / "cache" / "trained"
    assert f"entry written to {default / 'registry.yaml'}" in proc.stdout
    assert Registry(default).entry("mnist_mlp")["training"]["subset"] == 300
    assert _package_files() == before

    # the shipped registry only with --into-package: chosen any other way it is refused, before any training
    shipped = Registry().path
    assert_usage_error(run_zoo("train", "mnist_mlp", "--registry", shipped, check=False, env=env), "shipped in the package", "--into-package")
    assert_usage_error(run_zoo("train", "mnist_mlp", check=False, env={**env, "ZOO_REGISTRY": str(shipped)}), "shipped in the package")
    assert_usage_error(run_zoo("train", "mnist_mlp", "--library", library, "--into-package", check=False, env=env), "--library and --into-package")
    assert_usage_error(run_zoo("train", "mnist_vgg", "--library", tmp_path / "new", check=False, env=env), "no recipe for 'mnist_vgg'")
    assert not (tmp_path / "new").exists()
    assert _package_files() == before


def test_error_paths_are_one_line_with_exit_code_2(tmp_path, own_registry):
    assert_usage_error(run_zoo("info", "mnist_vgg", check=False), "unknown model 'mnist_vgg'")
    assert_usage_error(run_zoo("evaluate", "mnist_mlp", "--data", tmp_path / "absent.npz", check=False), "absent.npz")
    assert_usage_error(run_zoo("predict", "mnist_mlp", tmp_path / "absent.npy", check=False), "does not exist")
    np.save(tmp_path / "wrong.npy", np.zeros((2, 32, 32, 3), dtype=np.uint8))
    assert_usage_error(run_zoo("predict", "mnist_mlp", tmp_path / "wrong.npy", check=False), "28, 28, 1)", "(2, 32, 32, 3)")
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


# --- inputs users get wrong (issue 7): one line, exit 2, before any model is loaded ------------------


def _png_of_size(path, width, height):
    """A valid 1-bit PNG of width x height black pixels, a few kB on disk (a decompression bomb when large)."""
    import struct
    import zlib

    compress = zlib.compressobj(9)
    row = b"\0" + bytes((width + 7) // 8)
    data = b"".join(compress.compress(row) for _ in range(height)) + compress.flush()

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def test_non_positive_counts_are_refused():
    for args in (["evaluate", "mnist_mlp", "--limit", "0"], ["evaluate", "mnist_mlp", "--limit", "-5"],
                 ["train", "mnist_mlp", "--epochs", "0"], ["train", "mnist_mlp", "--subset", "0"]):
        assert_usage_error(run_zoo(*args, check=False), args[-2], "positive")


def test_evaluate_refuses_data_the_model_was_not_trained_on(tmp_path):
    X, y = zoo.datasets.load("mnist", "test")
    X, y = X[:50], y[:50]
    cases = {
        "scaled": ((X / 255.0).astype("float32"), y, "uint8", "float32 values from 0 to 1"),
        "nan": (np.where(X > 100, np.nan, X).astype("float32"), y, "uint8", "NaN"),
        "negative": (X.astype(np.int16) - 10, y, "uint8", "from -10"),
        "bool": (X > 100, y, "uint8", "booleans"),
        "empty": (X[:0], y[:0], "empty", "(0, 28, 28, 1)"),
        "scalar": (np.array(7, np.uint8), np.array(7), "single value", "0-d"),
    }
    for name, (Xc, yc, *fragments) in cases.items():
        np.savez(tmp_path / f"{name}.npz", X=Xc, y=yc)
        assert_usage_error(run_zoo("evaluate", "mnist_mlp", "--data", tmp_path / f"{name}.npz", check=False), f"{name}.npz", *fragments)
    np.save(tmp_path / "empty.npy", X[:0])
    assert_usage_error(run_zoo("predict", "mnist_mlp", tmp_path / "empty.npy", check=False), "empty.npy", "no samples")


def test_evaluate_ravels_a_column_of_labels_with_one_warning_line(tmp_path):
    X, y = zoo.datasets.load("mnist", "test")
    np.savez(tmp_path / "column.npz", X=X[:300], y=y[:300, None])
    proc = run_zoo("evaluate", "mnist_mlp", "--data", tmp_path / "column.npz", "--json", "--quiet")
    expected = zoo.models.scores(y[:300], zoo.predict_proba(zoo.load("mnist_mlp"), X[:300]))
    measured = json.loads(proc.stdout)["measured"]
    assert measured["accuracy"] == pytest.approx(expected["accuracy"]) and measured["accuracy"] > 0.95  # not 10 %
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("zoo evaluate: warning: A column-vector y was passed")


def test_predict_reads_every_input_and_names_the_one_it_cannot_take(tmp_path):
    from PIL import Image

    X, _ = zoo.datasets.load("mnist", "test")
    np.savez(tmp_path / "a.npz", X=X[:2])
    Image.fromarray(X[2, ..., 0]).save(tmp_path / "b.png")
    np.save(tmp_path / "c.npy", X[3:5, ..., 0])
    rows = json.loads(run_zoo("predict", "mnist_mlp", tmp_path / "a.npz", tmp_path / "b.png", tmp_path / "c.npy", "--json").stdout)
    assert [r["input"] for r in rows] == ["a.npz[0]", "a.npz[1]", "b.png", "c.npy[0]", "c.npy[1]"]
    expected = zoo.predict_proba(zoo.load("mnist_mlp"), X[:5]).argmax(axis=1)
    assert [r["class_index"] for r in rows] == expected.tolist()
    (tmp_path / "reviews.txt").write_text("a fine film\n")
    assert_usage_error(run_zoo("predict", "mnist_mlp", tmp_path / "a.npz", tmp_path / "reviews.txt", check=False), "reviews.txt", "image model")
    np.save(tmp_path / "scaled.npy", (X[:2] / 255.0).astype("float32"))
    assert_usage_error(run_zoo("predict", "mnist_mlp", tmp_path / "a.npz", tmp_path / "scaled.npy", check=False), "scaled.npy", "uint8")


def test_png_decompression_bombs_are_refused(tmp_path):
    huge = _png_of_size(tmp_path / "huge.png", 20000, 20000)  # 400 Mpixels: beyond Pillow's own limit
    large = _png_of_size(tmp_path / "large.png", 10000, 10000)  # 100 Mpixels: Pillow would only warn and decode it
    assert huge.stat().st_size < 100_000
    assert_usage_error(run_zoo("predict", "mnist_mlp", huge, check=False), "huge.png", "decompression bomb")
    assert_usage_error(run_zoo("predict", "mnist_mlp", large, check=False), "large.png", "10000x10000")


def test_output_paths_that_are_folders_or_too_long_are_refused(tmp_path):
    (tmp_path / "plots").mkdir()
    assert_usage_error(run_zoo("info", "mnist_mlp", "--plot", tmp_path / "plots", check=False), "--plot", "is a folder")
    long_name = tmp_path / ("p" * 300 + ".png")
    assert_usage_error(run_zoo("info", "mnist_mlp", "--plot", long_name, check=False), "--plot", "too long")
    (tmp_path / "run.txt").write_text("a file")
    assert_usage_error(run_zoo("train", "mnist_mlp", "--out", tmp_path / "run.txt", check=False), "--out", "not a folder")
    assert_usage_error(run_zoo("train", "mnist_mlp", "--out", tmp_path / "run.txt" / "sub", check=False), "--out", "run.txt is not a folder")
    assert_usage_error(run_zoo("train", "mnist_mlp", "--out", tmp_path / ("r" * 300), check=False), "--out", "too long")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots", "run.txt"]


def test_control_characters_never_reach_the_terminal_raw(tmp_path):
    X, _ = zoo.datasets.load("mnist", "test")
    name = "x\x1b[2J\x1b]0;owned\x07\u202e.npy"  # clear screen, set title, right-to-left override
    np.save(tmp_path / name, X[:1])
    proc = run_zoo("predict", "mnist_mlp", tmp_path / name)
    assert "\x1b" not in proc.stdout and "\u202e" not in proc.stdout and "x\\x1b[2J\\x1b]0;owned\\x07\\u202e.npy[0]" in proc.stdout
    np.savez(tmp_path / name.replace(".npy", ".npz"), X=X[:20], y=np.zeros(20, np.int64))
    text = run_zoo("evaluate", "mnist_mlp", "--data", tmp_path / name.replace(".npy", ".npz"), "--quiet").stdout
    assert "\x1b" not in text and "\\x1b[2J" in text  # the data path in the heading line
    proc = run_zoo("predict", "mnist_mlp", tmp_path / ("missing\x1b[31m\r.npy"), check=False)
    assert_usage_error(proc, "missing\\x1b[31m\\r.npy", "does not exist")
    assert "\x1b" not in proc.stderr


def test_quiet_hides_download_bars_and_a_mistyped_data_folder_is_not_created(tmp_path, http_mirror, data_dir):
    mirror, url = http_mirror
    shutil.copytree(data_dir / "mnist", mirror / "mnist")
    loud = run_zoo("evaluate", "mnist_mlp", "--limit", "5", env={"ZOO_DATA_DIR": str(tmp_path / "a"), "ZOO_DATA_MIRROR": url})
    assert "t10k-images-idx3-ubyte.gz" in loud.stderr  # the download bar
    quiet = run_zoo("evaluate", "mnist_mlp", "--limit", "5", "--quiet", env={"ZOO_DATA_DIR": str(tmp_path / "b"), "ZOO_DATA_MIRROR": url})
    assert quiet.stderr == "" and (tmp_path / "b" / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()
    env = {"ZOO_DATA_DIR": str(tmp_path / "shraed" / "data"), "ZOO_DATA_MIRROR": "http://127.0.0.1:9"}
    assert_usage_error(run_zoo("evaluate", "mnist_mlp", "--limit", "5", env=env, check=False), "could not download")
    assert not (tmp_path / "shraed").exists()


def test_unusable_cache_folder_warns_in_one_line_and_the_command_succeeds(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    proc = run_zoo("evaluate", "imdb_bow", "--limit", "20", "--quiet", "--json", env={"ZOO_CACHE_DIR": str(tmp_path / "file" / "cache")})
    assert json.loads(proc.stdout)["n"] == 20
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("zoo evaluate: warning: cache folder") and "not usable" in line


# --- command-line conventions (issue 15, item 4): --version, "did you mean", the sub-command's usage ------------


def test_version_prints_the_package_version_on_stdout():
    from importlib.metadata import version

    proc = run_zoo("--version")
    assert proc.stdout == f"zoo {zoo.__version__}\n" and proc.stderr == ""
    assert version("keras-zoo-ensemble") == zoo.__version__  # the installed metadata and the package agree


def test_a_flag_error_shows_the_subcommands_usage_and_the_closest_flag_in_one_line():
    usage = "(usage: zoo evaluate [-h] [--json] [--quiet] [--debug] [--split {train,validation,test}]"
    assert_usage_error(run_zoo("evaluate", "mnist_mlp", "--limt", "5", check=False),
                       "zoo evaluate: error: unrecognized arguments: --limt 5; did you mean --limit?", usage)
    assert_usage_error(run_zoo("info", "mnist_mlp", "--jsn", check=False), "zoo info: error:", "did you mean --json?", "(usage: zoo info ")
    assert_usage_error(run_zoo("evaluate", "mnist_mlp", "--limit", "many", check=False), "zoo evaluate: error: argument --limit", usage)
    assert_usage_error(run_zoo("evaluate", "mnist_mlp", "--split", "tset", check=False), "invalid choice: 'tset'", "did you mean 'test'?", usage)
    assert_usage_error(run_zoo("evaluate", check=False), "zoo evaluate: error: the following arguments are required: name", usage)
    proc = run_zoo("info", "mnist_mlp", "--frobnicate", check=False)
    assert_usage_error(proc, "unrecognized arguments: --frobnicate (usage: zoo info ")  # nothing close: no suggestion
    assert_usage_error(run_zoo("infoo", "mnist_mlp", check=False), "zoo: error:", "did you mean 'info'?", "(usage: zoo [-h] [--version]")


def test_an_unknown_model_name_suggests_the_nearest_names():
    proc = run_zoo("info", "mnist_mpl", check=False)
    assert_usage_error(proc, "unknown model 'mnist_mpl'; did you mean mnist_mlp?")
    assert "fashion_mnist" not in proc.stderr
