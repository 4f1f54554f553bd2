"""A search you can watch: each trial's CSV and TensorBoard logs in ``LIB/runs/<entry>/``, ``zoo history LIB``
(the trials, as a table or JSON, and ``--plot FILE.png``) and ``zoo info NAME --library LIB`` naming the logs.

Real Optuna studies of tiny MNIST models (300 images, one epoch): one two-trial search with logs and one
one-trial search without, each run once for the module.
"""

import csv
import json
import subprocess
import sys

import pytest
import yaml

import zoo
from test_search import SMOKE, run_zoo, study_of
from test_zoo_cli import assert_usage_error
from zoo.search import plot_history

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """A two-trial search of mnist_mlp, both trials in one worker process, with its logs (the default)."""
    library = tmp_path_factory.mktemp("watch") / "lib"
    summary = zoo.search("mnist_mlp", library=library, n_trials=2, trials_per_process=2, **SMOKE)
    return library, summary


@pytest.fixture(scope="module")
def unlogged(tmp_path_factory):
    """A one-trial search through the command line with --no-logs."""
    library = tmp_path_factory.mktemp("unlogged") / "lib"
    proc = run_zoo("search", "mnist_mlp", "--library", library, "--trials", 1, "--subset", 300, "--epochs", 1, "--no-logs", "--quiet", "--json")
    return library, json.loads(proc.stdout)


def test_each_trial_writes_a_csv_log_and_tensorboard_events_into_its_entry_folder(watched):
    library, summary = watched
    assert summary["logs"] == str(library / "runs")
    entries = ["mnist_mlp_t0000", "mnist_mlp_t0001"]
    assert sorted(p.name for p in (library / "runs").iterdir()) == entries
    for name in entries:
        folder = library / "runs" / name
        with open(folder / "training.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 1 and {"epoch", "accuracy", "loss", "val_accuracy", "val_loss"} <= set(rows[0])  # one epoch
        for split in ("train", "validation"):
            events = list((folder / "tensorboard" / split).glob("events.out.tfevents.*"))
            assert len(events) == 1 and events[0].stat().st_size > 0, split
        entry = zoo.info(name, registry=library)
        assert entry["logs"] == f"runs/{name}"  # relative to the library
        assert float(rows[0]["val_accuracy"]) == pytest.approx(entry["metrics"]["early_stopping"]["accuracy"], abs=1e-6)


def test_no_logs_writes_no_log_folder_and_records_none(unlogged):
    library, summary = unlogged
    assert summary["trials"]["complete"] == 1 and summary["logs"] is None
    assert not (library / "runs").exists()
    registry = yaml.safe_load((library / "registry.yaml").read_text())
    assert [m["name"] for m in registry["models"]] == ["mnist_mlp_t0000"] and "logs" not in registry["models"][0]


def test_history_prints_every_trial_and_its_json_matches_the_study(watched):
    library, _ = watched
    text = run_zoo("history", library).stdout
    assert "study mnist_mlp (maximize accuracy): 2 trials" in text
    for number in (0, 1):
        assert f"mnist_mlp_t000{number}" in text

    data = json.loads(run_zoo("history", library, "--json").stdout)
    assert data["library"] == str(library) and data["storage"] == str(library / "search.journal")
    [study] = data["studies"]
    assert study["study"] == "mnist_mlp" and study["direction"] == "maximize" and study["metric"] == "accuracy"
    trials = study_of(library).trials
    assert [t["number"] for t in study["trials"]] == [t.number for t in trials]
    for row, trial in zip(study["trials"], trials):
        assert row["state"] == "complete" and row["value"] == trial.value and row["note"] is None
        assert row["params"] == trial.user_attrs["hyperparameters"]  # the values trained with, as in the search's summary
        assert row["entry"] == f"mnist_mlp_t{trial.number:04d}"
        assert row["duration_seconds"] == pytest.approx(trial.duration.total_seconds(), abs=0.06)

    assert json.loads(run_zoo("history", library, "--study", "mnist_mlp", "--json").stdout) == data


def test_plot_draws_history_and_importances_into_a_png(watched, tmp_path):
    library, _ = watched
    out = tmp_path / "plots" / "history.png"
    proc = run_zoo("history", library, "--plot", out)
    assert "optimisation history and parameter importances drawn into" in proc.stdout
    blob = out.read_bytes()
    assert blob.startswith(PNG) and len(blob) > 10_000
    assert [p.name for p in out.parent.iterdir()] == ["history.png"]  # no temporary file left


def test_plot_of_one_complete_trial_draws_only_the_history_and_says_so(unlogged, tmp_path):
    library, _ = unlogged
    drawn = plot_history(library, tmp_path / "one.png")
    assert drawn["plots"] == ["history"] and drawn["complete"] == 1
    assert (tmp_path / "one.png").read_bytes().startswith(PNG)
    proc = run_zoo("history", library, "--plot", tmp_path / "again.png")
    assert "no parameter importances: they need 2 complete trials, the study has 1" in proc.stdout


def test_info_names_the_trial_log_folder(watched):
    library, _ = watched
    text = run_zoo("info", "mnist_mlp_t0001", "--library", library).stdout
    assert "logs: runs/mnist_mlp_t0001" in text
    assert f"training logs: {library / 'runs' / 'mnist_mlp_t0001'}" in text


def test_history_errors_are_one_line_with_exit_code_2(watched, tmp_path):
    library, _ = watched
    assert_usage_error(run_zoo("history", tmp_path / "missing", check=False), "no such folder")
    (tmp_path / "empty").mkdir()
    assert_usage_error(run_zoo("history", tmp_path / "empty", check=False), "no search.journal or search.db")
    assert not list((tmp_path / "empty").iterdir())  # reading a library creates nothing
    assert_usage_error(run_zoo("history", library, "--study", "other", check=False), "no study 'other'", "studies: mnist_mlp")
    # matplotlib made unimportable in a child process: a one-line error naming it, no file written
    code = "import sys; sys.modules['matplotlib'] = None; from zoo.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "history", str(library), "--plot", str(tmp_path / "x.png")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert_usage_error(proc, "--plot", "needs matplotlib")
    assert not (tmp_path / "x.png").exists()


def test_bad_logs_argument_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="logs must be True or False"):
        zoo.search("mnist_mlp", library=tmp_path / "lib", n_trials=1, logs="no", **SMOKE)
    assert not (tmp_path / "lib").exists()
