"""Training recipes: a short real run writes weights, metrics, a CSV log and TensorBoard events."""

import csv

import numpy as np
import pytest
import yaml

import zoo
from zoo import ChecksumError, Registry
from zoo.models import scores


@pytest.fixture
def empty_registry(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"format_version": 1, "models": []}))
    return path


@pytest.mark.parametrize("name", ["mnist_sepconv", "imdb_bow"])
def test_one_epoch_recipe_on_a_subset_writes_everything_and_updates_the_registry(tmp_path, empty_registry, name):
    run_dir = tmp_path / "run"
    entry = zoo.train(name, epochs=1, subset=512, registry=empty_registry, run_dir=run_dir, verbose=0)

    registry = Registry(empty_registry)  # re-read from disk
    assert registry.names() == [name]
    saved = registry.entry(name)
    assert saved == entry
    assert saved["training"]["epochs_run"] == 1 and saved["training"]["subset"] == 512
    assert (saved["training"]["fit_examples"], saved["training"]["early_stopping_examples"]) == (512, 128)
    assert saved["recipe"]["epochs"] == 1 and saved["training"]["command"] == f"zoo train {name} --epochs 1"
    assert (tmp_path / "weights" / f"{name}.weights.h5").is_file()
    if name.startswith("imdb"):
        assert (tmp_path / "weights" / f"{name}.vocab.txt").is_file()

    with open(run_dir / "training.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and {"accuracy", "loss", "val_accuracy", "val_loss", "learning_rate"} <= set(rows[0])
    assert list((run_dir / "tensorboard" / "train").glob("events.out.tfevents.*"))
    assert list((run_dir / "tensorboard" / "validation").glob("events.out.tfevents.*"))
    assert (run_dir / "best.weights.h5").is_file() and (run_dir / "metrics.json").is_file()

    # the recorded metrics are re-checkable from the written files
    model = zoo.load(name, registry=registry)
    X, y = zoo.datasets.load(saved["dataset"], "test")
    measured = scores(y[:512], zoo.predict_proba(model, X[:512]))
    assert measured["accuracy"] == pytest.approx(saved["metrics"]["test"]["accuracy"], abs=1e-6)
    assert measured["log_loss"] == pytest.approx(saved["metrics"]["test"]["log_loss"], abs=1e-5)

    # and a tampered weight file is refused
    weights = registry.weights_path(name)
    weights.write_bytes(weights.read_bytes()[:-64])
    with pytest.raises(ChecksumError, match=name):
        zoo.load(name, registry=registry)


def test_training_writes_into_the_package_only_when_asked(tmp_path, monkeypatch):
    from zoo.training import target_registry

    monkeypatch.delenv("ZOO_REGISTRY", raising=False)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    shipped = Registry()
    with pytest.raises(ValueError, match="is the registry shipped in the package.*into_package=True"):
        zoo.train("mnist_mlp", registry=shipped, epochs=1)  # refused before any training
    with pytest.raises(ValueError, match="is the registry shipped in the package"):
        zoo.train("mnist_mlp", registry=shipped.path, epochs=1)
    with pytest.raises(ValueError, match="give one of registry=, library= and into_package=True"):
        zoo.train("mnist_mlp", library=tmp_path / "lib", into_package=True)
    assert target_registry().path == tmp_path / "cache" / "trained" / "registry.yaml"  # the default: a library in the cache
    library = target_registry(library=tmp_path / "lib")
    assert (library.path, library.weights_dir, library.format_version) == (tmp_path / "lib" / "registry.yaml", tmp_path / "lib" / "weights", 2)
    assert target_registry(into_package=True).path == shipped.path  # what scripts/train_zoo.py writes into
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "own.yaml"))
    (tmp_path / "own.yaml").write_text(yaml.safe_dump({"format_version": 1, "models": []}))
    assert target_registry().path == tmp_path / "own.yaml"


def test_training_replaces_an_existing_entry_without_touching_others(tmp_path, empty_registry):
    zoo.train("mnist_mlp", epochs=1, subset=256, registry=empty_registry, run_dir=tmp_path / "a", verbose=0)
    zoo.train("fashion_mnist_mlp", epochs=1, subset=256, registry=empty_registry, run_dir=tmp_path / "b", verbose=0)
    first = Registry(empty_registry).entry("mnist_mlp")
    zoo.train("mnist_mlp", epochs=2, subset=256, registry=empty_registry, run_dir=tmp_path / "c", verbose=0)
    registry = Registry(empty_registry)
    assert registry.names() == ["mnist_mlp", "fashion_mnist_mlp"]
    assert registry.entry("mnist_mlp")["training"]["epochs_run"] == 2
    with open(tmp_path / "c" / "training.csv") as fh:
        val_losses = [float(row["val_loss"]) for row in csv.DictReader(fh)]
    assert registry.entry("mnist_mlp")["training"]["best_epoch"] == 1 + val_losses.index(min(val_losses))
    assert registry.entry("mnist_mlp")["weights"]["sha256"] != first["weights"]["sha256"]


def test_bad_epochs_and_unknown_recipe_are_clear_errors(empty_registry):
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        zoo.train("mnist_mlp", epochs=0, registry=empty_registry)
    with pytest.raises(KeyError, match="no recipe for 'mnist_vgg'"):
        zoo.train("mnist_vgg", registry=empty_registry)


@pytest.mark.slow
@pytest.mark.parametrize("name", Registry().names())
def test_full_recipe_reproduces_the_registry_metrics(tmp_path, empty_registry, name):
    """Re-run a full recipe (minutes each); its test accuracy matches the registry to 0.5 points."""
    entry = zoo.train(name, registry=empty_registry, run_dir=tmp_path / "run", verbose=0)
    assert abs(entry["metrics"]["test"]["accuracy"] - Registry().entry(name)["metrics"]["test"]["accuracy"]) <= 0.005
    assert np.isfinite(entry["metrics"]["test"]["log_loss"])
