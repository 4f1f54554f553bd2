"""Property-based fuzzing of the manifest and registry readers (hypothesis).

Random mutations of valid documents — a value replaced, a key removed or
added, a part duplicated, tags and numbers at their limits — must only ever
load or raise ``BundleError`` / ``UntrustedTypesError`` (manifests) or
``RegistryError`` (registries): never another exception, a crash, or a file
written outside the bundle. A few hundred examples run by default;
``ZOO_FUZZ_EXAMPLES=5000`` runs more.
"""

import copy
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import ensemble
from ensemble.persistence import BundleError, UntrustedTypesError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("ZOO_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

_TAGS = ["$part", "$npy", "$ndarray", "$tuple", "$dict", "$bunch", "$scalar", "$float", "$ndarray_object"]
_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.sampled_from([0, -1, 1, 2**31 - 1, 2**63])
            | st.floats(allow_nan=False) | st.text(max_size=12) | st.sampled_from(["nan", "inf", "../x", "/etc/passwd", "000-x.npy", "CURRENT", "zoo", "skops",
                                                                                 "keras", "zoo_build", "frozen", "pipeline", "xgboost", "keras_member", "<U9999999", "O"]))


def _tagged(children):
    return st.builds(lambda tag, body: {tag: body}, st.sampled_from(_TAGS), children)


_values = st.recursive(_scalars, lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4) | _tagged(children),
                       max_leaves=12)


def _paths(doc, prefix=()):
    """Every (container, key) location in a JSON document."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


_MISSING = object()


def _child(node, key):
    if isinstance(node, dict) and key in node or isinstance(node, list) and isinstance(key, int) and key < len(node):
        return node[key]
    return _MISSING


def _mutate(doc, data):
    doc = copy.deepcopy(doc)
    paths = list(_paths(doc))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(paths), label="path")
        parent = doc
        for key in path[:-1]:
            parent = _child(parent, key)
        key = path[-1]
        if _child(parent, key) is _MISSING:  # an earlier mutation removed or replaced this place
            continue
        op = data.draw(st.sampled_from(["replace", "delete", "add", "duplicate"]), label="op")
        if op == "replace":
            parent[key] = data.draw(_values, label="value")
        elif op == "delete":
            del parent[key]
        elif op == "add" and isinstance(parent, dict):
            parent[data.draw(st.text(max_size=8), label="new key")] = data.draw(_values, label="value")
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
    return doc


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    X, y = load_digits(return_X_y=True)
    members = [("lr", make_pipeline(StandardScaler(), LogisticRegression(max_iter=200))), ("rf", RandomForestClassifier(3, max_depth=4, random_state=0))]
    est = ensemble.StackClassifier(members, final_estimator=LogisticRegression(max_iter=200), cv=2).fit(X[:300], y[:300])
    root = tmp_path_factory.mktemp("fuzz")
    path = root / "bundle"
    ensemble.save(est, path)
    version = path / (path / "CURRENT").read_text().strip()
    return root, version, json.loads((version / "manifest.json").read_text())


def _listing(root: Path):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@FUZZ
@given(data=st.data())
def test_mutated_manifests_only_load_or_raise_bundle_errors(bundle, data):
    root, version, doc = bundle
    mutated = _mutate(doc, data)
    before = _listing(root)
    (version / "manifest.json").write_text(json.dumps(mutated))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        ensemble.load(version)
    except (BundleError, UntrustedTypesError):
        pass
    finally:
        os.chdir(cwd)
        (version / "manifest.json").write_text(json.dumps(doc))
    assert _listing(root) == before


@pytest.fixture(scope="module")
def registry_doc(tmp_path_factory):
    return tmp_path_factory.mktemp("registry-fuzz"), yaml.safe_load((ROOT / "registry.yaml").read_text())


@FUZZ
@given(data=st.data())
def test_mutated_registries_only_load_or_raise_registry_errors(registry_doc, data):
    import zoo

    folder, doc = registry_doc
    (folder / "registry.yaml").write_text(yaml.safe_dump(_mutate(doc, data)))
    try:
        reg = zoo.Registry(folder / "registry.yaml")
    except zoo.RegistryError:
        return
    for name in reg.names():
        entry = reg.entry(name)
        assert isinstance(entry["params"], dict)
        reg.weights_path(name)
        reg.vocabulary_path(name)
    shutil.rmtree(folder / "weights", ignore_errors=True)
