"""zoo.search on a Dask cluster: a real scheduler and two worker processes on 127.0.0.1, SQLite storage, tiny MNIST models."""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState

import zoo
from zoo import Registry
from zoo.search_spaces import resolve, suggest
from zoo.search.trials import sampler_seed

distributed = pytest.importorskip("distributed")

SMOKE = {"subset": 300, "epochs": 1, "progress": False}  # 300 images to fit, a slice of 75 to score on
HEARTBEAT = 2  # seconds: a killed worker's trial is run again after about 6 s
DASK = str(Path(sys.executable).with_name("dask"))


def first_draw(space, seed):
    """The values a fresh TPE sampler seeded with ``seed`` draws first from ``space``."""
    trial = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)).ask()
    suggest(trial, space)
    return trial.params


def run_zoo(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "zoo", *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def start(log: Path, *args) -> subprocess.Popen:
    """A ``dask`` command in a process group of its own (stopped with its children at the end)."""
    with open(log, "ab") as out:
        return subprocess.Popen([DASK, *map(str, args)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(processes) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def scheduler(folder: Path, *tls) -> tuple[subprocess.Popen, str]:
    """A ``dask scheduler`` on 127.0.0.1 and its address."""
    address_file = folder / "scheduler.json"
    process = start(folder / "scheduler.log", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", address_file, *tls)
    deadline = time.time() + 120
    while not address_file.exists():
        assert process.poll() is None and time.time() < deadline, (folder / "scheduler.log").read_text()
        time.sleep(0.2)
    time.sleep(0.2)  # written in one go, but let it land
    return process, json.loads(address_file.read_text())["address"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``dask scheduler`` and two ``dask worker --nthreads 1`` (each with its nanny), as a user starts them."""
    folder = tmp_path_factory.mktemp("dask")
    processes = []
    try:
        process, address = scheduler(folder)
        processes.append(process)
        for i in range(2):
            processes.append(start(folder / f"worker-{i}.log", "worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                                   "--no-dashboard", "--memory-limit", "0"))
        client = distributed.Client(address, set_as_default=False)
        client.wait_for_workers(2, timeout=180)
        yield address, client
        client.close()
    finally:
        stop(processes)


NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"], dtype=object)


@pytest.fixture(scope="module")
def searched(cluster, tmp_path_factory):
    """A four-trial search from mnist_mlp on the cluster with 375 MNIST images given as arrays (scattered to the workers once).

    The library has the default storage LIB/search.db.
    """
    address, _ = cluster
    X, y = zoo.datasets.load("mnist", "train")
    library = tmp_path_factory.mktemp("search") / "lib"
    summary = zoo.search("mnist_mlp", library=library, n_trials=4, X=X[:375], y=NAMES[y[:375]], client=address, heartbeat=HEARTBEAT, seed=5, **SMOKE)
    return library, summary


def study_of(library, name="mnist_mlp"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{library / 'search.db'}")


def check_library(library: Path, trials) -> None:
    """Every complete trial has exactly one entry, whose files match their sha256; nothing else is there."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    registry = Registry(library)
    assert sorted(registry.names()) == sorted(f"mnist_mlp_t{t.number:04d}" for t in complete)
    files = []
    for trial in complete:
        entry = registry.entry(f"mnist_mlp_t{trial.number:04d}")
        assert entry["search"]["trial"] == trial.number and entry["search"]["objective"]["value"] == trial.value
        assert entry["search"]["hyperparameters"]["learning_rate"] == trial.params["learning_rate"]
        weights = registry.weights_path(entry["name"])
        assert hashlib.sha256(weights.read_bytes()).hexdigest() == entry["weights"]["sha256"]
        files.append(weights.name)
    assert sorted(p.name for p in (library / "weights").iterdir()) == sorted(files)  # no temporary or orphan file


def test_a_four_trial_search_runs_each_trial_in_its_own_process_on_both_workers(cluster, searched):
    _, client = cluster
    library, summary = searched
    url = f"sqlite:///{library / 'search.db'}"
    assert summary["storage"] == url and not (library / "search.journal").exists()
    assert summary["trials"] == {"complete": 4, "pruned": 0, "failed": 0, "running": 0}
    trials = study_of(library).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert summary["best"]["value"] == max(t.value for t in trials)

    worker_pids = client.run(os.getpid)
    assert {t.user_attrs["dask_worker"] for t in trials} == set(worker_pids)  # one loop on each worker
    assert all(worker_pids[t.user_attrs["dask_worker"]] == t.user_attrs["worker_pid"] for t in trials)
    trial_pids = {t.user_attrs["trial_pid"] for t in trials}
    assert len(trial_pids) == 4 and not trial_pids & {os.getpid(), *worker_pids.values()}  # a new process per trial

    space = resolve("mlp")
    space["epochs"] = 1
    assert [t.params for t in trials] == [first_draw(space, seed=sampler_seed("mnist_mlp", 5, t.number)) for t in trials]  # seeded as on one machine
    check_library(library, trials)
    entry = zoo.info(summary["best"]["entry"], registry=library)
    assert entry["classes"] == sorted(NAMES) and "dataset" not in entry and entry["data"]["examples"] == 375
    assert entry["training"]["fit_examples"] == 300 and entry["training"]["early_stopping_examples"] == 75
    model = zoo.load(summary["best"]["entry"], registry=library)  # checks the sha256 too
    X, _ = zoo.datasets.load("mnist", "test")
    assert zoo.predict_proba(model, X[:5]).shape == (5, 10)


def test_a_complete_study_starts_nothing_and_a_library_of_another_storage_is_refused(cluster, searched, tmp_path):
    address, _ = cluster
    library, _ = searched
    X, y = zoo.datasets.load("mnist", "train")
    X, y = X[:375], NAMES[y[:375]]  # the same data: the study checks its sha256
    again = zoo.search("mnist_mlp", library=library, n_trials=4, X=X, y=y, client=address, heartbeat=HEARTBEAT, **SMOKE)
    assert again["trials"]["complete"] == 4 and len(study_of(library).trials) == 4 and again["wall_seconds"] < 30

    other = f"sqlite:///{tmp_path / 'other.db'}"  # its study knows none of the library's trials
    with pytest.raises(ValueError, match=r"holds mnist_mlp_t000\d, a trial that study 'mnist_mlp' of this storage does not know"):
        zoo.search("mnist_mlp", library=library, n_trials=4, X=X, y=y, client=address, storage=other, **SMOKE)
    assert optuna.load_study(study_name="mnist_mlp", storage=other).trials == []


def test_an_entry_whose_trial_failed_before_it_was_marked_complete_is_removed(cluster, searched, tmp_path):
    address, _ = cluster
    library = tmp_path / "lib"
    shutil.copytree(searched[0], library)
    study = study_of(library)
    trial = study.ask()  # written by a coordinator that died before telling the study; its heartbeat stopped
    trial.set_user_attr("entry", "mnist_mlp_t0004")
    registry = Registry(library)
    entry = registry.entry("mnist_mlp_t0000")
    entry.update(name="mnist_mlp_t0004", search={**entry["search"], "trial": 4}, weights={**entry["weights"], "file": "mnist_mlp_t0004.weights.h5"})
    shutil.copy(registry.weights_path("mnist_mlp_t0000"), library / "weights" / "mnist_mlp_t0004.weights.h5")
    registry.put(entry)
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)(study, study._storage.get_trial(trial._trial_id))

    X, y = zoo.datasets.load("mnist", "train")
    summary = zoo.search("mnist_mlp", library=library, n_trials=4, X=X[:375], y=NAMES[y[:375]], client=address, heartbeat=HEARTBEAT, **SMOKE)
    assert summary["trials"] == {"complete": 4, "pruned": 0, "failed": 0, "running": 0}  # the failed attempt is not counted
    check_library(library, study_of(library).trials)


def test_a_worker_killed_during_a_trial_loses_nothing(cluster, tmp_path):
    address, client = cluster
    library, db = tmp_path / "lib", tmp_path / "study.db"
    space = tmp_path / "space.yaml"  # fifteen epochs: long enough to be killed in the middle of training
    space.write_text(yaml.safe_dump({"replace": True, "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}, "epochs": 15, "patience": 15}))
    url = f"sqlite:///{db}"
    search = subprocess.Popen(
        [sys.executable, "-m", "zoo", "search", "mnist_mlp", "--library", library, "--trials", "3", "--subset", "300", "--space", space,
         "--storage", url, "--dask", address, "--heartbeat", str(HEARTBEAT), "--no-pruning", "--json", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        killed = None
        deadline = time.time() + 300
        while killed is None and time.time() < deadline and search.poll() is None:
            time.sleep(0.2)
            if not (library / "registry.yaml").exists():  # the storage is opened, then the library created, then the study
                continue
            try:
                trials = optuna.load_study(study_name="mnist_mlp", storage=url).get_trials(states=(TrialState.RUNNING,))
            except KeyError:
                continue  # the study is not created yet
            killed = next((t for t in trials if t.intermediate_values and "worker_pid" in t.user_attrs), None)  # training
        assert killed is not None, "no trial started training"
        os.kill(killed.user_attrs["worker_pid"], signal.SIGKILL)  # its nanny starts a new worker
        out, err = search.communicate(timeout=400)
    finally:
        if search.poll() is None:
            search.kill()
            search.wait()
    assert search.returncode == 0, err
    summary = json.loads(out)
    assert summary["trials"] == {"complete": 3, "pruned": 0, "failed": 0, "running": 0}

    trials = optuna.load_study(study_name="mnist_mlp", storage=url).trials
    assert trials[killed.number].state == TrialState.FAIL
    retries = [t for t in trials if killed.number in t.system_attrs.get("retry_history", [])]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE and retries[0].params == killed.params  # run again once
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3 and len({t.params["learning_rate"] for t in complete}) == 3  # distinct, none counted twice
    assert all(t.state == TrialState.COMPLETE or t.number == killed.number for t in trials)
    check_library(library, trials)

    from zoo.search.trials import is_running

    deadline = time.time() + 30
    while is_running(killed.user_attrs["trial_pid"], None) and time.time() < deadline:
        time.sleep(0.5)
    assert not is_running(killed.user_attrs["trial_pid"], None)  # the killed worker's trial process went with it
    client.wait_for_workers(2, timeout=120)  # the nanny's new worker is back


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_one_line_error(proc, text: str, library: Path) -> None:
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo search: error: ") and text in lines[0], proc.stderr
    assert not library.exists()  # before any work


def test_cli_an_unreachable_scheduler_is_a_one_line_error_with_exit_code_2(tmp_path):
    proc = run_zoo("search", "mnist_mlp", "--library", tmp_path / "lib", "--trials", "1", "--dask", f"tcp://127.0.0.1:{free_port()}",
                   env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"})
    assert_one_line_error(proc, "cannot connect", tmp_path / "lib")


@pytest.mark.parametrize(("url", "text"), [("sqlite:////nonexistent-folder/study.db", "cannot open it"), ("redis://127.0.0.1:1", "needs a database")])
def test_cli_an_unreachable_or_unsuitable_storage_is_a_one_line_error_with_exit_code_2(cluster, tmp_path, url, text):
    address, _ = cluster
    proc = run_zoo("search", "mnist_mlp", "--library", tmp_path / "lib", "--trials", "1", "--dask", address, "--storage", url)
    assert_one_line_error(proc, text, tmp_path / "lib")


def test_cli_reaches_a_tls_scheduler_with_dasks_tls_settings(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    process, address = scheduler(tmp_path, "--protocol", "tls", "--tls-ca-file", cert, "--tls-cert", cert, "--tls-key", key)
    try:
        assert address.startswith("tls://")
        tls = {"DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(cert), "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(cert),
               "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(key), "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s"}
        proc = run_zoo("search", "mnist_mlp", "--library", tmp_path / "lib", "--trials", "1", "--dask", address, env=tls)
        assert_one_line_error(proc, "has no workers", tmp_path / "lib")  # connected over TLS; a cluster without workers
        proc = run_zoo("search", "mnist_mlp", "--library", tmp_path / "lib", "--trials", "1", "--dask", address, env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s"})
        assert_one_line_error(proc, "cannot connect", tmp_path / "lib")  # no TLS settings
    finally:
        stop([process])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workers": 2}, "workers= and trials_per_process= are for one machine"),
        ({"heartbeat": 0}, "heartbeat must be a whole number >= 1"),
        ({"client": "127.0.0.1:8786"}, "expected an address such as tcp://host:8786"),
        ({"client": None, "heartbeat": 5}, "go with client="),
    ],
)
def test_bad_cluster_arguments_are_refused_before_any_work(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        zoo.search("mnist_mlp", library=tmp_path / "lib", n_trials=1, **{"client": "tcp://127.0.0.1:1", **kwargs})
    assert not (tmp_path / "lib").exists()
