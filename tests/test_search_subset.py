"""`zoo search --subset N` is checked against the data before any study, storage file or library folder exists:
a subset too large for the data is refused in one line and leaves nothing behind, so later runs on that library work."""

import json

import optuna
import pytest
from clirun import run_command
from optuna.storages.journal import JournalFileBackend, JournalStorage

import zoo
from zoo.search.config import train_examples
from zoo.search.storage import STORAGE_FILE


def run_zoo(*args, check=True):
    proc = run_command("zoo", *args)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def snapshot(folder):
    """Every file under ``folder``: its path and bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_subset_refused(proc, subset):
    assert proc.returncode == 2 and proc.stdout == "", (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo search: error: ") and f"subset={subset}" in lines[0], proc.stderr
    assert "mnist's train split has 50000 examples" in lines[0] and "Traceback" not in proc.stderr


def test_a_subset_larger_than_the_dataset_leaves_no_study_and_later_runs_on_the_library_work(tmp_path):
    library = tmp_path / "lib"
    search = ["search", "mnist_mlp", "--library", library, "--trials", "1", "--epochs", "1", "--quiet"]
    assert_subset_refused(run_zoo(*search, "--subset", "1000000000", check=False), 1000000000)
    assert list(tmp_path.iterdir()) == []  # no library folder, no registry.yaml, no journal, no study

    summary = json.loads(run_zoo(*search, "--subset", "300", "--json").stdout)  # the same library, a valid subset
    assert summary["trials"] == {"complete": 1, "pruned": 0, "failed": 0, "running": 0}
    study = optuna.load_study(study_name="mnist_mlp", storage=JournalStorage(JournalFileBackend(str(library / STORAGE_FILE))))
    assert study.user_attrs["zoo"]["subset"] == 300 and zoo.list_models(registry=library) == ["mnist_mlp_t0000"]

    before = snapshot(library)
    assert {STORAGE_FILE, "registry.yaml"} <= set(before)
    assert_subset_refused(run_zoo(*search, "--trials", "2", "--subset", "1000000000", check=False), 1000000000)
    assert snapshot(library) == before  # the journal, registry and weights byte-identical
    # 200000 is the smallest subset whose early-stopping slice (subset // 4) leaves no example of the 50000 to fit on
    assert_subset_refused(run_zoo(*search, "--trials", "2", "--subset", "200000", check=False), 200000)
    assert snapshot(library) == before


def test_a_subset_too_large_for_the_data_is_refused_before_any_storage_is_opened(tmp_path):
    X, y = zoo.datasets.load("mnist", "train")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    with pytest.raises(ValueError, match=r"subset=1000: the data has 200 examples, too few for an early-stopping slice of 250"):
        zoo.search("mlp", library=tmp_path / "lib", n_trials=1, X=X[:200, ::4, ::4], y=y[:200], subset=1000, storage=url, progress=False)
    with pytest.raises(ValueError, match=r"subset=1000000000: fashion_mnist's train split has 50000 examples"):
        zoo.search("fashion_mnist_mlp", library=tmp_path / "lib", n_trials=1, subset=10**9, storage=url, progress=False)
    with pytest.raises(ValueError, match=r"subset=100000: imdb's train split has 20000 examples, too few for an early-stopping slice of 25000"):
        zoo.search("imdb_bow", library=tmp_path / "lib", n_trials=1, subset=100_000, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the library folder nor the SQLite file


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist", "imdb"])
def test_train_split_sizes_known_without_loading_are_the_loaded_ones(dataset):
    assert train_examples(dataset) == len(zoo.datasets.load(dataset, "train")[1])
