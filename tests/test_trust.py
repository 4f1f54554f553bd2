"""Crafted saved ensembles and registries: every attack ends in a clean refusal, never a crash or a stray write.

Each case edits a real saved ensemble the way an attacker would (file bytes
replaced, the manifest's sha256 recomputed) and loads it in a fresh process,
which must exit normally with ``BundleError`` — not be killed by a signal —
and, on the command line, print one line and exit 2.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import skops.io
from sklearn.datasets import load_digits
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import ensemble
from ensemble import BlendClassifier, StackClassifier
from ensemble.persistence import BundleError, UntrustedTypesError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600], y[:600], X[600:800], y[600:800]


def _version(path: Path) -> Path:
    return path / (path / "CURRENT").read_text().strip()


def _manifest(path: Path) -> dict:
    return json.loads((_version(path) / "manifest.json").read_text())


def _write_manifest(path: Path, doc: dict) -> None:
    (_version(path) / "manifest.json").write_text(json.dumps(doc))


def _replace_file(path: Path, name: str, data: bytes) -> None:
    """Replace a part file and record its new sha256 in the manifest, as an attacker would."""
    (_version(path) / name).write_bytes(data)
    doc = _manifest(path)
    doc["files"][name] = hashlib.sha256(data).hexdigest()
    _write_manifest(path, doc)


def _load_in_subprocess(path: Path, tmp_path: Path, predict: bool = True):
    """Load (and predict with) the ensemble in a fresh process; its result, never killed by a signal."""
    np.save(tmp_path / "X.npy", load_digits(return_X_y=True)[0][:50])
    code = textwrap.dedent(f"""
        import numpy as np, ensemble
        est = ensemble.load({str(path)!r})
        if {predict!r}:
            est.predict_proba(np.load({str(tmp_path / 'X.npy')!r}))
        print("loaded")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}: {proc.stderr[-2000:]}"
    return proc


def _evaluate_cli(path: Path, tmp_path: Path):
    X, y = load_digits(return_X_y=True)
    np.savez(tmp_path / "data.npz", X=X[:50], y=y[:50])
    proc = subprocess.run([sys.executable, "-m", "ensemble.cli", "evaluate", str(path), "--data", str(tmp_path / "data.npz"), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}"
    return proc


def _assert_refused(path: Path, tmp_path: Path, fragment: str):
    proc = _load_in_subprocess(path, tmp_path)
    assert proc.returncode == 1 and "BundleError" in proc.stderr and fragment in proc.stderr and "loaded" not in proc.stdout, proc.stderr[-2000:]
    cli = _evaluate_cli(path, tmp_path)
    lines = cli.stderr.strip().splitlines()
    assert cli.returncode == 2 and len(lines) == 1 and fragment in lines[0], cli.stderr[-2000:]


# --------------------------------------------------------------------------- 1: decision trees


def _forest_bundle(digits, tmp_path, meta=None) -> Path:
    X, y, _, _ = digits
    members = [("lr", make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))), ("rf", RandomForestClassifier(5, max_depth=6, random_state=0))]
    est = StackClassifier(members, final_estimator=meta or RandomForestClassifier(5, random_state=0), cv=2).fit(X, y)
    path = tmp_path / "bundle"
    ensemble.save(est, path)
    return path


def _edit_first_tree(path: Path, edit) -> str:
    """Edit the node array of the first tree of the first skops part holding trees; returns the file name."""
    version = _version(path)
    for name in sorted(_manifest(path)["files"]):
        if not name.endswith(".skops"):
            continue
        data = (version / name).read_bytes()
        types = skops.io.get_untrusted_types(data=data)
        if "sklearn.tree._tree.Tree" not in types:
            continue
        obj = skops.io.loads(data, trusted=types)
        forest = next(o for o in _walk(obj) if isinstance(o, RandomForestClassifier))
        tree = forest.estimators_[0].tree_
        state = tree.__getstate__()
        nodes = state["nodes"].copy()
        edit(nodes, tree.n_features)
        state["nodes"] = nodes
        tree.__setstate__(state)
        _replace_file(path, name, skops.io.dumps(obj))
        return name
    raise AssertionError("no tree in the bundle")


def _walk(obj, depth=0):
    yield obj
    if depth > 6:
        return
    children = obj if isinstance(obj, (list, tuple)) else getattr(obj, "__dict__", {}).values() if hasattr(obj, "get_params") else ()
    for child in children:
        yield from _walk(child, depth + 1)


def _inner(nodes):
    return int(np.flatnonzero(nodes["left_child"] != -1)[1])  # an inner node other than the root


@pytest.mark.parametrize("case,edit,fragment", [
    ("child out of range", lambda n, f: n["left_child"].__setitem__(0, 10**9), "left child 1000000000"),
    ("feature past the row", lambda n, f: n["feature"].__setitem__(0, f), "splits on feature 64 of 64"),
    ("cycle", lambda n, f: n["right_child"].__setitem__(_inner(n), 0), "right child 0"),
    ("non-finite threshold", lambda n, f: n["threshold"].__setitem__(0, np.nan), "non-finite split threshold"),
])
def test_a_tree_with_edited_nodes_is_refused_before_any_prediction(digits, tmp_path, case, edit, fragment):
    path = _forest_bundle(digits, tmp_path)
    _edit_first_tree(path, edit)
    _assert_refused(path, tmp_path, fragment)
    assert list(tmp_path.iterdir())  # (the case ran on real files)


def test_valid_trees_load_without_an_opt_in_and_predict_as_before(digits, tmp_path):
    X, y, X_test, _ = digits
    est = StackClassifier([("gb", GradientBoostingClassifier(n_estimators=5, max_depth=2, random_state=0)),
                           ("rf", RandomForestClassifier(5, random_state=0))], final_estimator=RandomForestClassifier(5, random_state=0), cv=2).fit(X, y)
    ensemble.save(est, tmp_path / "trees")
    np.testing.assert_array_equal(ensemble.load(tmp_path / "trees").predict_proba(X_test), est.predict_proba(X_test))


def test_a_forest_whose_tree_claims_another_width_is_refused(digits, tmp_path):
    from ensemble._trees import TreeCheckError, check_trees

    X, y, _, _ = digits
    forest = RandomForestClassifier(3, random_state=0).fit(X, y)
    assert check_trees(forest) == 3
    forest.estimators_[1].n_features_in_ = 80  # the forest checks 64 columns, then walks this tree with check_input=False
    with pytest.raises(TreeCheckError, match="takes 80 features, the ensemble 64"):
        check_trees(forest)


def test_memory_unsafe_structures_are_off_the_allow_list(digits, tmp_path):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.neighbors import KNeighborsClassifier

    X, y, X_test, _ = digits
    for name, member, kind in (("knn", KNeighborsClassifier(3, algorithm="kd_tree"), "KDTree"),
                               ("hgb", HistGradientBoostingClassifier(max_iter=3), "TreePredictor")):
        est = BlendClassifier([(name, member)]).fit(X, y)
        ensemble.save(est, tmp_path / name)
        with pytest.raises(UntrustedTypesError, match=kind):
            ensemble.load(tmp_path / name)
        trusted = sorted({t for f in _version(tmp_path / name).glob("*.skops") for t in skops.io.get_untrusted_types(file=f)})
        np.testing.assert_array_equal(ensemble.load(tmp_path / name, trusted=trusted).predict_proba(X_test), est.predict_proba(X_test))


# --------------------------------------------------------------------------- 2: memory


def test_a_manifest_cannot_choose_the_prediction_cache_folder(digits, tmp_path):
    X, y, _, _ = digits
    est = BlendClassifier([("lr", LogisticRegression(max_iter=300))], memory=tmp_path / "my-cache").fit(X, y)
    path = tmp_path / "bundle"
    ensemble.save(est, path)
    assert _manifest(path)["params"]["memory"] is None  # a setting of the machine: not saved
    target = tmp_path / "attacker" / "cache"
    doc = _manifest(path)
    doc["params"]["memory"] = str(target)
    _write_manifest(path, doc)
    proc = _load_in_subprocess(path, tmp_path)
    assert proc.returncode == 0 and "loaded" in proc.stdout, proc.stderr[-2000:]
    assert ensemble.load(path).memory is None
    cli = _evaluate_cli(path, tmp_path)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert not (tmp_path / "attacker").exists()


# --------------------------------------------------------------------------- 5: builder hyperparameters


@pytest.fixture(scope="module")
def zoo_build_bundle(tmp_path_factory):
    import zoo

    X, y = zoo.datasets.load("mnist", "validation")
    tuned = zoo.load("mnist_mlp")  # changed weights: saved as builder + hyperparameters + .weights.h5
    tuned.layers[-1].bias.assign(tuned.layers[-1].bias.numpy() + 0.1)
    est = BlendClassifier([("tuned", tuned)]).fit(X[:100], y[:100])
    path = tmp_path_factory.mktemp("zoo-build") / "bundle"
    ensemble.save(est, path)
    return path


def _copy_bundle(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _zoo_build_record(doc):
    return next(p for p in doc["parts"] if p["kind"] == "zoo_build")


def _mnist_cli(path: Path, tmp_path: Path):
    return subprocess.run([sys.executable, "-m", "ensemble.cli", "evaluate", str(path), "--dataset", "mnist", "--split", "test", "--quiet"],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("units", [2**31 - 1, 100_000])
def test_huge_builder_hyperparameters_are_refused_before_anything_is_allocated(zoo_build_bundle, tmp_path, units):
    path = _copy_bundle(zoo_build_bundle, tmp_path / "bundle")
    doc = _manifest(path)
    record = _zoo_build_record(doc)
    record["params"]["$dict"]["units"] = {"$tuple": [units, 256]}
    _write_manifest(path, doc)
    code = f"import ensemble, resource; ensemble.load({str(path)!r})"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "BundleError" in proc.stderr and "do not belong together" in proc.stderr, proc.stderr[-2000:]
    assert time.perf_counter() - start < 120
    cli = _mnist_cli(path, tmp_path)
    lines = cli.stderr.strip().splitlines()
    assert cli.returncode == 2 and len(lines) == 1 and "do not belong together" in lines[0], cli.stderr[-2000:]


def test_a_garbage_weights_file_is_a_bundle_error(zoo_build_bundle, tmp_path):
    path = _copy_bundle(zoo_build_bundle, tmp_path / "bundle")
    record = _zoo_build_record(_manifest(path))
    _replace_file(path, record["weights"], b"\x89HDF\r\n\x1a\n" + os.urandom(4000))
    with pytest.raises(BundleError, match="not a readable .weights.h5"):
        ensemble.load(path)
    cli = _mnist_cli(path, tmp_path)
    assert cli.returncode == 2 and len(cli.stderr.strip().splitlines()) == 1, cli.stderr[-2000:]


def test_a_zoo_classifier_state_with_huge_hyperparameters_is_refused(tmp_path):
    from zoo import ZooClassifier
    from zoo.parameter_count import HyperparameterError

    X, y = load_digits(return_X_y=True)
    clf = ZooClassifier("mlp", epochs=1, builder__units=(8,), random_state=0).fit(X[:200], y[:200])
    state = clf.__getstate__()
    state["spec_"] = json.loads(json.dumps(state["spec_"]))
    state["spec_"]["params"]["units"] = [2**31 - 1]
    with pytest.raises(HyperparameterError, match="do not belong together"):
        ZooClassifier.__new__(ZooClassifier).__setstate__(state)


def test_registry_entries_with_absurd_hyperparameters_are_refused(tmp_path):
    import yaml

    import zoo

    doc = yaml.safe_load((ROOT / "registry.yaml").read_text())
    entry = next(e for e in doc["models"] if e["name"] == "mnist_mlp")
    entry["params"]["units"] = [2**31 - 1, 256]
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(zoo.RegistryError, match="units|weights"):
        zoo.Registry(tmp_path / "registry.yaml")
    entry["params"]["units"] = [512, True]
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(zoo.RegistryError, match=r"units\[1\]"):
        zoo.Registry(tmp_path / "registry.yaml")


def test_parameter_counts_match_keras_for_every_builder_and_every_shipped_entry():
    import random

    import zoo
    from zoo.architectures import build
    from zoo.parameter_count import count_parameters

    for name in zoo.list_models():
        entry = zoo.info(name)
        if entry["builder"] != "text_bow":
            assert count_parameters(entry["builder"], entry["params"]) == entry["parameters"], name
    rng = random.Random(0)
    vocabulary = [f"w{i}" for i in range(23)]
    for _ in range(3):
        cases = [
            ("mlp", {"input_shape": (rng.randint(1, 9),), "units": tuple(rng.randint(1, 9) for _ in range(rng.randint(0, 3))), "num_classes": rng.randint(2, 5)}),
            ("bn_cnn", {"input_shape": (8, 8, rng.randint(1, 3)), "filters": (rng.randint(1, 6), rng.randint(1, 6)), "dense": rng.randint(1, 9)}),
            ("sepconv", {"stem": rng.randint(1, 6), "filters": (rng.randint(1, 6), rng.randint(1, 6))}),
            ("residual", {"stem": rng.randint(1, 6), "filters": (rng.randint(1, 6), rng.randint(1, 6)), "blocks": rng.randint(1, 3)}),
            ("inception", {"stem": rng.randint(1, 6), "modules": ((rng.randint(1, 4), rng.randint(1, 4), rng.randint(1, 4), rng.randint(1, 4)),) * 2}),
            ("text_conv1d", {"max_tokens": 30, "embedding_dim": rng.randint(1, 8), "filters": rng.randint(1, 8), "kernel_size": rng.randint(1, 4),
                             "conv_layers": rng.randint(1, 3), "num_classes": rng.randint(2, 4)}),
            ("text_rnn", {"max_tokens": 30, "embedding_dim": rng.randint(1, 8), "units": rng.randint(1, 8), "cell": rng.choice(["gru", "lstm"])}),
            ("text_bow", {"max_tokens": 40, "units": rng.randint(1, 8), "num_classes": rng.randint(2, 4)}),
        ]
        for builder, params in cases:
            extra = {"vocabulary": vocabulary} if builder.startswith("text") else {}
            assert build(builder, **params, **extra).count_params() == count_parameters(builder, params, len(vocabulary)), (builder, params)


# --------------------------------------------------------------------------- 6: the small ones


def _sk_bundle(digits, tmp_path) -> Path:
    X, y, _, _ = digits
    est = BlendClassifier([("lr", make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)))]).fit(X, y)
    path = tmp_path / "bundle"
    ensemble.save(est, path)
    return path


@pytest.mark.parametrize("edit,fragment", [
    (lambda d: d.__setitem__("format_version", True), "format_version"),
    (lambda d: d.__setitem__("format_version", -1), "format_version"),
    (lambda d: d["params"].__setitem__("n_jobs", "__DEEP_100000__"), "nests"),
    (lambda d: d["params"].__setitem__("n_jobs", "__DEEP_200__"), "nests"),
    (lambda d: d["parts"].append({"kind": "frozen", "estimator": {"$part": len(d["parts"])}}) or d["params"].__setitem__("n_jobs", {"$part": len(d["parts"]) - 1}),
     "contains itself"),
    (lambda d: d["params"].__setitem__("n_jobs", {"$ndarray": {"dtype": "<U999999999", "shape": [1], "data": ["a"]}}), "dtype"),
    (lambda d: d["params"].__setitem__("n_jobs", {"$ndarray": {"dtype": "<U9999999", "shape": [1], "data": ["a"]}}), "dtype"),
    (lambda d: d["params"].__setitem__("n_jobs", {"$ndarray": {"dtype": "O", "shape": [1], "data": ["a"]}}), "dtype"),
])
def test_malformed_manifests_are_bundle_errors(digits, tmp_path, edit, fragment):
    path = _sk_bundle(digits, tmp_path)
    doc = _manifest(path)
    edit(doc)
    text = json.dumps(doc)
    for depth in (100_000, 200):  # nested lists written as text: json.dumps itself cannot nest that deep
        text = text.replace(f'"__DEEP_{depth}__"', "[" * depth + "]" * depth)
    (_version(path) / "manifest.json").write_text(text)
    _assert_refused(path, tmp_path, fragment)


def test_a_bad_keras_member_batch_size_is_refused_at_load(zoo_build_bundle, tmp_path):
    path = _copy_bundle(zoo_build_bundle, tmp_path / "bundle")
    for bad in (0, "64", 10**12):
        doc = _manifest(path)
        next(p for p in doc["parts"] if p["kind"] == "keras_member")["batch_size"] = bad
        _write_manifest(path, doc)
        with pytest.raises(BundleError, match="batch_size"):
            ensemble.load(path)


def test_a_symlinked_current_is_named_as_such(digits, tmp_path):
    path = _sk_bundle(digits, tmp_path)
    (tmp_path / "elsewhere").write_text((path / "CURRENT").read_text())
    (path / "CURRENT").unlink()
    (path / "CURRENT").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BundleError, match="CURRENT is a symbolic link"):
        ensemble.load(path)


def test_a_killed_save_leaves_no_temporary_folder_after_the_next_save(digits, tmp_path):
    X, y, _, _ = digits
    path = _sk_bundle(digits, tmp_path)
    script = tmp_path / "saver.py"
    script.write_text(textwrap.dedent(f"""
        import numpy as np, ensemble
        from sklearn.datasets import load_digits
        from sklearn.ensemble import RandomForestClassifier
        X, y = load_digits(return_X_y=True)
        est = ensemble.BlendClassifier([RandomForestClassifier(300, random_state=0)]).fit(X, y)
        print("ready", flush=True)
        while True:
            ensemble.save(est, {str(path)!r})
    """))
    for _ in range(20):  # until a kill lands inside a save (most do: writing the forest takes most of the loop)
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if list(path.glob(".tmp-*")):
            break
    assert list(path.glob(".tmp-*")), "no save was interrupted"
    ensemble.save(BlendClassifier([LogisticRegression(max_iter=300)]).fit(X, y), path)
    assert not list(path.glob(".tmp-*"))
    assert ensemble.load(path).predict(X[:5]).shape == (5,)


def test_evaluate_prints_no_probability_sum_warning(zoo_build_bundle, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ensemble.cli", "evaluate", str(zoo_build_bundle), "--dataset", "mnist", "--split", "test"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "do not sum to one" not in proc.stderr


def test_a_cache_entry_with_other_columns_is_discarded(digits, tmp_path):
    import hashlib as _hashlib
    import io

    X, y, X_test, _ = digits
    cache = tmp_path / "cache"
    est = BlendClassifier([("lr", make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)))], memory=cache).fit(X, y)
    expected = est.predict_proba(X_test)
    entries = list(cache.glob("*.npy"))
    assert entries
    for entry in entries:  # same key, same rows, a digest that matches the new bytes: only the columns are wrong
        out = np.load(entry)
        buffer = io.BytesIO()
        np.save(buffer, np.full((len(out), 3), 1 / 3), allow_pickle=False)
        key = entry.stem.rpartition("-")[0]
        entry.unlink()
        (cache / f"{key}-{_hashlib.sha256(buffer.getvalue()).hexdigest()}.npy").write_bytes(buffer.getvalue())
    np.testing.assert_array_equal(est.predict_proba(X_test), expected)
