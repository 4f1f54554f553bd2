"""An installed, non-editable wheel finds registry.yaml and the weight files; importing stays light."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from zoo import Registry

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (path,) = out.glob("*.whl")
    return path


def test_wheel_holds_registry_weights_and_vocabularies(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "zoo/registry.yaml" in names
    registry = Registry(ROOT / "registry.yaml")
    for name in registry.names():
        entry = registry.entry(name)
        assert f"zoo/weights/{entry['weights']['file']}" in names
        if "vocabulary" in entry:
            assert f"zoo/weights/{entry['vocabulary']['file']}" in names
    assert any(n.startswith("ensemble/") for n in names)
    assert not any(n.startswith(("tests/", "scripts/")) for n in names)


def test_installed_wheel_loads_a_model_outside_the_source_tree(wheel, tmp_path, data_dir):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)], check=True, timeout=600)
    code = (
        "import zoo, numpy as np\n"
        "print(zoo.__file__)\n"
        "print(zoo.Registry().path)\n"
        "m = zoo.load('mnist_mlp')\n"
        "X, y = zoo.datasets.load('mnist', 'test')\n"
        "print(float(np.mean(zoo.predict_proba(m, X[:500]).argmax(1) == y[:500])))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("ZOO_REGISTRY", None)
    assert Path(env["ZOO_DATA_DIR"]).is_absolute() and data_dir.is_absolute()  # conftest resolved ../shared/data
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    module, registry, accuracy = proc.stdout.split()
    assert module.startswith(str(site)) and registry == str(site / "zoo" / "registry.yaml")
    assert float(accuracy) > 0.95
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # nothing downloaded or created beside it


@pytest.mark.parametrize("module", ["zoo", "zoo.datasets", "zoo.cli", "ensemble.cli"])  # plain `ensemble`: test_ensemble_checks
def test_import_does_not_pay_for_tensorflow(module):
    code = f"import sys, {module}; print(any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.strip() == "False"
