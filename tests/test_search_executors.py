"""zoo.search's executors: the default (one worker process started with ``python -c``, replaced every K trials) and the
in-process one need no ``__main__`` guard in a plain script; a spawned worker that cannot start fails fast naming the
guard; memory over 20 in-process trials grows at TensorFlow's measured rate at most; the worker is recycled."""

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

import zoo
from zoo import Registry
from zoo.search import SearchConfig

SCRIPT_HEAD = """
import json, os, time
import zoo
X, y = zoo.datasets.load("mnist", "train")
"""


def run_script(tmp_path, body: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a plain script (no ``if __name__ == "__main__":`` guard) with ``python script.py``."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT_HEAD + textwrap.dedent(body), encoding="utf-8")
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=timeout, cwd=tmp_path, check=False)


def trial_pids(library) -> list:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    study = optuna.load_study(study_name="mnist_mlp", storage=JournalStorage(JournalFileBackend(str(library / "search.journal"))))
    return [t.user_attrs["pid"] for t in study.trials]


@pytest.mark.parametrize("executor", [None, "inprocess"])
def test_a_plain_script_without_a_guard_finishes_a_two_trial_search(tmp_path, executor):
    proc = run_script(tmp_path, f"""
        s = zoo.search("mnist_mlp", library={str(tmp_path / "lib")!r}, n_trials=2, X=X[:400], y=y[:400], subset=300, epochs=1, progress=False,
                       executor={executor!r})
        print(json.dumps({{"trials": s["trials"], "pid": os.getpid()}}))
    """)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["trials"] == {"complete": 2, "pruned": 0, "failed": 0, "running": 0}
    assert sorted(Registry(tmp_path / "lib").names()) == ["mnist_mlp_t0000", "mnist_mlp_t0001"]
    pids = set(trial_pids(tmp_path / "lib"))
    if executor == "inprocess":
        assert pids == {result["pid"]}  # trained in the script's own process
    else:
        assert len(pids) == 1 and result["pid"] not in pids  # one worker process ran both


def test_the_default_worker_process_is_replaced_every_k_trials(tmp_path):
    import zoo

    X, y = zoo.datasets.load("mnist", "train")
    summary = zoo.search("mnist_mlp", library=tmp_path / "lib", n_trials=3, X=X[:400], y=y[:400], subset=300, epochs=1, progress=False,
                         executor="worker", trials_per_process=2, logs=False)
    assert summary["trials"]["complete"] == 3
    pids = trial_pids(tmp_path / "lib")
    assert pids[0] == pids[1] != pids[2]  # a fresh process after two trials: TensorFlow's per-fit memory goes with the old one


def test_the_process_executor_without_a_guard_fails_fast_naming_the_guard(tmp_path):
    proc = run_script(tmp_path, f"""
        started = time.perf_counter()
        try:
            zoo.search("mnist_mlp", library={str(tmp_path / "lib")!r}, n_trials=2, X=X[:400], y=y[:400], subset=300, epochs=1,
                       progress=False, executor="processes")
        except RuntimeError as exc:
            if __name__ != "__main__":  # the spawned child re-running this script (as __mp_main__): it cannot start a search
                raise
            print(json.dumps({{"error": str(exc), "seconds": time.perf_counter() - started}}))
    """, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stdout + proc.stderr
    result = json.loads(lines[-1])
    assert 'if __name__ == "__main__":' in result["error"] and "could not start" in result["error"]
    assert result["seconds"] < 30
    assert not Registry(tmp_path / "lib").names()  # no trial ran


# slow (about 45 s unloaded, twenty trials in one process): run with -m slow
@pytest.mark.slow
def test_memory_stays_bounded_over_twenty_in_process_trials(tmp_path):
    """RSS after each of 20 small in-process trials (one search resumed one trial further each time).

    Measured here: the first trial adds about 50 MB (TensorFlow's kernels and
    allocator arenas), each later one about 13 MB, with or without
    ``clear_session()`` (TensorFlow's runtime, not the search, keeps it: a
    bare ``ZooClassifier`` fit loop grows alike). A search that kept each
    trial's model, history, callbacks or a copy of the data would grow by the
    data's 300 KB, the logs' writers and the graph's ops more per trial; the
    bound, 25 MB a trial on average after the first, is about twice the
    measured rate, so a regression doubling it fails. The default executor bounds
    the total by replacing its worker process (the test above).
    """
    proc = run_script(tmp_path, f"""
        def rss_mb():
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        rss = []
        for k in range(1, 21):
            zoo.search("mnist_mlp", library={str(tmp_path / "lib")!r}, n_trials=k, X=X[:400], y=y[:400], subset=300, epochs=1,
                       progress=False, logs=False, executor="inprocess")
            rss.append(rss_mb())
        print(json.dumps(rss))
    """, timeout=900)
    assert proc.returncode == 0, proc.stderr
    rss = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(Registry(tmp_path / "lib").names()) == 20
    per_trial = (rss[-1] - rss[0]) / (len(rss) - 1)
    assert per_trial < 25, f"RSS grew {per_trial:.1f} MB a trial: {[round(r) for r in rss]}"


def test_search_config_round_trips_through_json_and_refuses_bad_settings():
    config = SearchConfig(study="s", storage="/tmp/x.journal", library="/tmp/lib", builder="mlp", base={"early_stopping_size": 32},
                          space={"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}, n_trials=3, data_info={"sha256": "ab"})
    assert SearchConfig.from_json(config.to_json()) == config
    with pytest.raises(Exception, match="cannot assign|frozen"):
        config.n_trials = 4
    for changes, message in (({"n_trials": 0}, "n_trials must be a whole number"), ({"metric": "f1"}, "metric must be one of"),
                             ({"executor": "threads"}, "executor must be one of"), ({"study": "a b"}, "study name")):
        with pytest.raises(ValueError, match=message):
            config.replace(**changes)


@pytest.mark.parametrize("kwargs, message", [
    ({"executor": "threads"}, "executor must be one of"),
    ({"executor": "inprocess", "workers": 2}, "workers= needs executor='processes'"),
    ({"executor": "inprocess", "trials_per_process": 2}, "trials_per_process= goes with a worker process"),
    ({"executor": "dask"}, "executor='dask' goes with client="),
    ({"storage": "study.db"}, "expected an Optuna storage URL"),
])
def test_bad_executor_arguments_are_refused_before_any_work(tmp_path, kwargs, message):
    import zoo

    started = time.perf_counter()
    with pytest.raises(ValueError, match=message):
        zoo.search("mnist_mlp", library=tmp_path / "lib", n_trials=1, subset=300, epochs=1, **kwargs)
    assert not (tmp_path / "lib").exists() and time.perf_counter() - started < 60


def test_the_shipped_library_from_before_search_v2_still_lists_and_resumes(tmp_path):
    """libraries/fashion_mnist (its journal written by release 0.1's zoo.tuning) lists its trials and resumes with the
    command in its space file: asked for the trials it already counts, the search runs none and rewrites nothing.
    Resumed with another space, it is refused before any trial (Optuna would fail the next trial)."""
    import shutil

    root = Path(__file__).resolve().parents[1]
    library = tmp_path / "fashion_mnist"
    shutil.copytree(root / "libraries" / "fashion_mnist", library)
    studies = {s["study"]: s["trials"] for s in zoo.search.history(library)["studies"]}
    complete = [t for t in studies["fashion_mnist_bn_cnn"] if t["state"] == "complete"]
    assert complete and all(t["entry"] in Registry(library / "registry.yaml") for t in complete)
    journal = (library / "search.journal").read_bytes()
    space = yaml.safe_load((root / "searches" / "fashion_mnist_bn_cnn.yaml").read_text())
    options = dict(library=library, n_trials=len(complete), executor="inprocess", progress=False)
    summary = zoo.search("fashion_mnist_bn_cnn", space=space, **options)
    assert summary["trials"]["complete"] == len(complete) and summary["best"]["value"] == max(t["value"] for t in complete)
    with pytest.raises(ValueError, match="drew dense from .* resume it with the space it was started with"):
        zoo.search("fashion_mnist_bn_cnn", **{**options, "n_trials": len(complete) + 1})
    assert (library / "search.journal").read_bytes().startswith(journal)  # appended to, never rewritten (Optuna logs each open)
    after = {s["study"]: s["trials"] for s in zoo.search.history(library)["studies"]}
    assert after == studies  # no trial started, none changed
