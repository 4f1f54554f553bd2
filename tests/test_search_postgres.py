"""zoo.search on a real PostgreSQL server: the storage several machines share (``postgres_url`` in conftest.py).

Two worker processes share one study, a Dask worker killed in the middle of a
trial loses nothing (its heartbeat in the database stops, the trial is failed and
run again), and a second search resumes the study. Each test uses a study name of
its own, so a server given by ``$ZOO_TEST_POSTGRES_URL`` may be reused.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest
import yaml
from optuna.trial import TrialState

import zoo
from zoo import Registry

SMOKE = {"subset": 300, "epochs": 1, "progress": False}  # 300 images to fit, a slice of 75 to score on
LR_ONLY = {"replace": True, "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}
HEARTBEAT = 2  # seconds: a killed worker's trial is failed and run again after about 6 s


def unique_study() -> str:
    return f"pg_{uuid.uuid4().hex[:10]}"


def check_library(library, study: str, trials) -> None:
    """Every complete trial has exactly one entry, whose weights match their sha256; no other trial has one."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    registry = Registry(library)
    assert sorted(registry.names()) == sorted(f"{study}_t{t.number:04d}" for t in complete)
    for trial in complete:
        entry = registry.entry(f"{study}_t{trial.number:04d}")
        assert entry["search"]["study"] == study and entry["search"]["trial"] == trial.number
        assert entry["search"]["objective"]["value"] == trial.value
        assert entry["search"]["hyperparameters"]["learning_rate"] == trial.params["learning_rate"]
        assert hashlib.sha256(registry.weights_path(entry["name"]).read_bytes()).hexdigest() == entry["weights"]["sha256"]
    assert not (library / "search.journal").exists() and not (library / "search.db").exists()  # the study lives in the server


@pytest.fixture(scope="module")
def two_workers(postgres_url, tmp_path_factory):
    """A four-trial search by two worker processes on one PostgreSQL study; the study's trials as they were right after it."""
    library, study = tmp_path_factory.mktemp("pg") / "lib", unique_study()
    summary = zoo.search("mnist_mlp", library=library, n_trials=4, workers=2, trials_per_process=2, storage=postgres_url,
                         study_name=study, space=LR_ONLY, seed=3, **SMOKE)
    trials = optuna.load_study(study_name=study, storage=postgres_url).trials
    return library, study, summary, trials


def test_two_worker_processes_sharing_a_postgres_study_complete_exactly_its_trials(postgres_url, two_workers):
    library, study, summary, trials = two_workers
    assert summary["storage"].rpartition("@")[2] == postgres_url.rpartition("@")[2] and summary["study"] == study  # a password is redacted
    assert summary["trials"] == {"complete": 4, "pruned": 0, "failed": 0, "running": 0}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4 and len({t.params["learning_rate"] for t in complete}) == 4  # distinct: never the same draw
    assert all(t.state == TrialState.FAIL and t.user_attrs.get("surplus") for t in trials if t.state != TrialState.COMPLETE)
    assert {t.user_attrs["worker"] for t in complete} == {0, 1} and len({t.user_attrs["pid"] for t in complete}) >= 2
    assert summary["best"]["value"] == max(t.value for t in complete)
    registry = Registry(library)
    assert {f"{study}_t{t.number:04d}" for t in complete} <= set(registry.names())  # a resume (another test) may add more
    for trial in complete:
        entry = registry.entry(f"{study}_t{trial.number:04d}")
        assert entry["search"]["objective"]["value"] == trial.value
        assert entry["search"]["hyperparameters"]["learning_rate"] == trial.params["learning_rate"]


def test_a_second_search_resumes_the_postgres_study_up_to_the_new_total(postgres_url, two_workers):
    library, study, _, before = two_workers
    summary = zoo.search("mnist_mlp", library=library, n_trials=6, trials_per_process=2, storage=postgres_url,
                         study_name=study, space=LR_ONLY, seed=3, **SMOKE)
    assert summary["trials"] == {"complete": 6, "pruned": 0, "failed": 0, "running": 0}
    trials = optuna.load_study(study_name=study, storage=postgres_url).trials
    assert [(t.number, t.state, t.params) for t in trials[: len(before)]] == [(t.number, t.state, t.params) for t in before]  # untouched
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6 and len({t.params["learning_rate"] for t in complete}) == 6  # no trial repeated
    assert all(t.state == TrialState.COMPLETE for t in trials[len(before):])  # one worker: no surplus trial
    check_library(library, study, trials)
    again = zoo.search("mnist_mlp", library=library, n_trials=6, storage=postgres_url, study_name=study, space=LR_ONLY, **SMOKE)
    assert again["trials"]["complete"] == 6 and len(optuna.load_study(study_name=study, storage=postgres_url).trials) == len(trials)


# slow (a Dask cluster on PostgreSQL, about 35 s unloaded); the same kill on SQLite runs by default (test_search_dask.py)
@pytest.mark.slow
def test_a_dask_worker_killed_during_a_trial_loses_nothing(postgres_url, tmp_path):
    distributed = pytest.importorskip("distributed")
    library, study = tmp_path / "lib", unique_study()
    space = tmp_path / "space.yaml"  # fifteen epochs: long enough to be killed in the middle of training
    space.write_text(yaml.safe_dump({**LR_ONLY, "epochs": 15, "patience": 15}))
    storage = optuna.storages.RDBStorage(postgres_url)  # one connection pool to watch the study; the tables exist before the search starts
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                                  memory_limit=0) as cluster:
        search = subprocess.Popen(
            [sys.executable, "-m", "zoo", "search", "mnist_mlp", "--library", library, "--trials", "3", "--subset", "300", "--space", space,
             "--storage", postgres_url, "--study", study, "--dask", cluster.scheduler_address, "--heartbeat", str(HEARTBEAT),
             "--no-pruning", "--json", "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            killed = None
            deadline = time.time() + 300
            while killed is None and time.time() < deadline and search.poll() is None:
                time.sleep(0.5)
                if study not in optuna.get_all_study_names(storage):
                    continue
                running = optuna.load_study(study_name=study, storage=storage).get_trials(states=(TrialState.RUNNING,))
                killed = next((t for t in running if t.intermediate_values and "worker_pid" in t.user_attrs), None)  # training
            assert killed is not None, "no trial started training"
            os.kill(killed.user_attrs["worker_pid"], signal.SIGKILL)  # the worker and its trial process die; its nanny starts a new one
            out, err = search.communicate(timeout=400)
        finally:
            if search.poll() is None:
                search.kill()
                search.communicate()
    assert search.returncode == 0, err
    assert json.loads(out)["trials"] == {"complete": 3, "pruned": 0, "failed": 0, "running": 0}

    trials = optuna.load_study(study_name=study, storage=postgres_url).trials
    assert trials[killed.number].state == TrialState.FAIL  # its heartbeat in the database stopped
    retries = [t for t in trials if killed.number in t.system_attrs.get("retry_history", [])]  # Optuna's retry callback's record
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE and retries[0].params == killed.params  # run again once
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3 and len({t.params["learning_rate"] for t in complete}) == 3  # the total stays exact
    assert all(t.state == TrialState.COMPLETE or t.number == killed.number for t in trials)
    check_library(library, study, trials)
