"""Searches on a Dask cluster: one optimisation loop per worker, every trial in its own process.

``zoo.search(..., client=CLIENT)`` (the ``Dask`` executor) (a ``distributed.Client``, or a scheduler
address ``tcp://host:8786`` / ``tls://host:8786``; ``zoo search ... --dask
ADDRESS``) runs the trials of a search on the workers of a Dask cluster.
Decisions:

- Loops: the coordinator (the process that owns the library folder) submits one
  optimisation loop to every worker, pinned to it, and one to every worker that
  joins later (a worker its nanny restarted, a cluster scaled up). A loop asks
  the study for a trial, trains it in a fresh Python process on its worker
  (memory stays bounded whatever the number of trials, and no process that
  imported TensorFlow is ever forked), and repeats until the study has its
  trials. Not ``study.optimize(n_jobs=...)``: its threads share one process.
- Threads: a trial's TensorFlow gets its worker's thread count (``dask worker
  --nthreads``): K single-threaded workers on K cores run K trials side by side.
- Storage: Optuna's RDB storage, reached by the coordinator and every worker
  (``postgresql://user:password@host/db`` across machines). Default: the SQLite
  file ``LIB/search.db``, for workers on the coordinator's machine only; a
  worker that cannot open the storage, or does not find the study in it, stops
  the search before any trial runs.
- Heartbeats: the loop running a trial records one every ``heartbeat`` seconds.
  A trial silent for three intervals (its worker was killed or lost) is failed
  and queued again with the same values by Optuna's retry callback
  (``RetryHeartbeatStaleTrialCallback``, before Optuna 4.9
  ``RetryFailedTrialCallback``; up to three times), by whichever loop or
  coordinator sees it first; the failed attempt does not count, so the study
  still completes ``n_trials``. A trial process that dies while its worker
  lives is failed and queued again at once.
- Data: every worker reads the data itself: a zoo dataset from the
  coordinator's absolute data folder where that path exists on the worker's
  machine, else from the worker's own (``ZOO_DATA_DIR``; files downloaded
  there if missing, checked by sha256); or the user's arrays, scattered once to
  the workers, which a loop keeps in a private scratch file with its sha256. A
  trial process reads that file once, checks the sha256 of the bytes it read
  and unpickles those same bytes: checked and then opened again to unpickle,
  the file could be replaced in between, and unpickling runs code.
- Library: workers never touch the library folder, so no shared file system is
  needed. A trained trial stays RUNNING, its heartbeat going, while its weights
  and entry travel to the coordinator as a Dask future; the coordinator writes
  the files and then the entry atomically (``zoo.library.write_trial``), then
  marks the trial COMPLETE. A result for a trial no longer running is dropped;
  an entry whose trial failed before it was marked complete (the coordinator
  died in between) is removed when a cluster search starts or ends. Every complete trial thus
  has exactly one entry, and no other trial has one.
- Errors: an unreachable scheduler or storage, a cluster without workers, or a
  worker that cannot reach the storage raise ``ValueError`` before any trial
  runs. A trial that raises fails and stops the search with its error, as on one
  machine; trial processes dying three times in a row on one worker stop it too.
  Interrupting the coordinator cancels the loops; they fail and re-queue their
  trials, so the next run resumes them.
- Security: a Dask scheduler runs whatever its clients send. Use ``tls://``
  addresses with Dask's TLS settings (``distributed.comm.tls.*`` in the Dask
  configuration, ``DASK_DISTRIBUTED__COMM__TLS__...`` variables, or
  ``security=distributed.Security(...)``), or a private network.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path

from zoo.search.executors import Executor
from zoo.search.objective import fit_trial, load_data, start_tensorflow
from zoo.search.storage import fail_stale, first_line, open_storage, redact, retry_trial, trial_id
from zoo.search.trials import ProgressBar, counted, exit_with_parent, rebuilt, sampler, stop_process, trial_loop

__all__ = ["Dask", "connect", "prepare", "read_scratch", "trial_process"]

_MAX_DEATHS = 3  # consecutive trial processes of one loop dying before the search gives up
_NO_WORKERS = 300  # seconds the search waits for a cluster that lost all its workers
_POLL = 1.0

@contextlib.contextmanager
def connect(client, security=None):
    """A ``distributed.Client`` for ``client``: a Client, or a scheduler address; ``ValueError`` if unreachable.

    A client made here from an address (with ``security``, else Dask's
    configuration, which holds the TLS settings) is closed on exit. The
    connection timeout is Dask's ``distributed.comm.timeouts.connect``.
    """
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("a search on a Dask cluster needs dask.distributed: pip install 'keras-zoo-ensemble[dask]'") from None
    if isinstance(client, Client):
        if security is not None:
            raise ValueError("security= goes with a scheduler address; a Client has its own")
        _check_workers(client, str(client.scheduler.address))
        yield client
        return
    if not isinstance(client, str) or not client.startswith(("tcp://", "tls://")):
        raise ValueError(f"Dask scheduler {client!r}: expected an address such as tcp://host:8786 or tls://host:8786")
    _reach(client, security)
    with _quiet_dask():
        try:
            made = Client(client, security=security, set_as_default=False)
        except Exception as exc:  # noqa: BLE001 (reached a moment ago; a one-line error all the same)
            raise ValueError(f"Dask scheduler {client}: cannot connect: {first_line(exc)}") from None
    try:
        _check_workers(made, client)
        yield made
    finally:
        with _quiet_dask():
            made.close()


def _reach(address: str, security) -> None:
    """Open and close one connection to the scheduler; ``ValueError`` saying why it fails."""
    import asyncio

    import dask
    from dask.utils import parse_timedelta
    from distributed import Security
    from distributed.comm import connect as open_comm

    async def probe():
        comm = await open_comm(address, timeout=timeout, **security.get_connection_args("client"))
        await comm.close()

    failure: list = []

    def attempt():  # in a thread of its own: the caller may run an event loop (a notebook)
        try:
            asyncio.run(probe())
        except Exception as exc:  # noqa: BLE001 (refused, timed out, TLS misconfigured: all one-line errors)
            failure.append(exc)

    try:
        security = Security() if security is None else security  # Dask's configuration: distributed.comm.tls.*
        timeout = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), default="seconds")
    except Exception as exc:  # noqa: BLE001 (a TLS file that cannot be read, a malformed timeout)
        failure.append(exc)
    else:
        thread = threading.Thread(target=attempt, name="zoo-dask-probe")
        thread.start()
        thread.join()
    if failure:
        raise ValueError(f"Dask scheduler {address}: cannot connect: {first_line(failure[0])}") from None


@contextlib.contextmanager
def _quiet_dask():
    """Dask's connection errors are reported as one ``ValueError``, not logged as well."""
    import logging

    loggers = [logging.getLogger(name) for name in ("distributed", "distributed.client", "distributed.comm", "distributed.core")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _check_workers(client, address: str) -> None:
    if not client.ncores():
        raise ValueError(f"Dask scheduler {address} has no workers: start some (dask worker {address} --nthreads 1)")


def prepare(study, registry, client, url: str) -> None:
    """Before any trial: fail dead trials, tidy the library, check that every worker reaches the study."""
    fail_stale(study)
    _tidy(study, registry)
    problems = client.run(_probe, url, study.study_name, on_error="return")
    for address, problem in sorted(problems.items()):
        if isinstance(problem, BaseException):
            problem = f"cannot run the search: {first_line(problem)} (install keras-zoo-ensemble[dask] on every worker)"
        if problem is not None:
            raise ValueError(f"Dask worker {address}: storage {redact(url)}: {problem}")


def _tidy(study, registry) -> None:
    """Remove entries of trials that failed before they were marked complete; refuse a library searched with another storage."""
    from optuna.trial import TrialState

    from zoo.library import drop_trial

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    for name in registry.names():
        search = registry.entry(name).get("search", {})
        if search.get("study") != study.study_name:
            continue
        trial = trials.get(search.get("trial"))
        if trial is not None and trial.state == TrialState.FAIL and trial.user_attrs.get("entry") == name:
            drop_trial(registry, name)  # written by a coordinator that died before it marked the trial complete
        elif trial is None or trial.state not in (TrialState.COMPLETE, TrialState.RUNNING) or (
            trial.state == TrialState.COMPLETE and trial.value != search.get("objective", {}).get("value")
        ):
            raise ValueError(f"library {registry.path.parent} holds {name}, a trial that study {study.study_name!r} of this storage does not "
                             "know: that library was searched with another storage; give that storage (--storage) or another study name (--study)")


def _probe(url: str, study_name: str) -> str | None:
    """On a worker: None if it reaches the study in ``url``, else what is wrong."""
    if url.startswith("sqlite:///") and not os.path.exists(url[len("sqlite:///"):]):
        return f"no such file on {socket.gethostname()} (SQLite serves workers on the coordinator's machine only; use postgresql://...)"
    try:
        import optuna

        storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
        storage.get_study_id_from_name(study_name)
    except KeyError:
        return f"it holds no study {study_name!r} as this worker sees it (a database on another machine: use its address, not localhost)"
    except Exception as exc:  # noqa: BLE001 (reported by the coordinator)
        return f"cannot open it: {first_line(exc)}"
    return None


class Dask(Executor):
    """One optimisation loop per Dask worker, every trial in its own process there; the library written here."""

    def __init__(self, client):
        self.client = client

    def run(self, study, storage, registry, config, *, arrays, pruner, progress: bool) -> None:
        """Run the study's trials on the cluster's workers until it has ``n_trials``; raise the first error."""
        from distributed import Queue

        client = self.client
        prepare(study, registry, client, config.storage)
        run_id = uuid.uuid4().hex[:12]
        queue = Queue(f"zoo-search-{run_id}", client=client)
        data = None if arrays is None else client.scatter([arrays], broadcast=True, hash=False)[0]
        shipped = config.replace(data_path=None).to_json()  # the workers get the arrays, not the file
        loops: dict = {}  # worker address -> the future of its loop
        submitted = 0
        error = None
        no_workers_since = None
        bar = ProgressBar(study, config.n_trials, progress)

        def finished() -> bool:
            return (config.deadline is not None and time.time() >= config.deadline) or len(counted(study)) >= config.n_trials

        try:
            while True:
                error = error or _deliver(queue, study, storage, registry)
                fail_stale(study)
                for address, future in list(loops.items()):
                    if future.done():
                        del loops[address]
                        if future.status == "error" and error is None:
                            error = future.exception()
                workers = client.ncores()
                for address in [a for a in loops if a not in workers]:  # the worker left; its trial goes stale and is run again
                    loops.pop(address).cancel()
                if error is not None:
                    break
                if not finished():
                    for address in workers:
                        if address not in loops:
                            remaining = None if config.deadline is None else max(0.0, config.deadline - time.time())
                            submitted += 1
                            run = {"queue": queue.name, "run": run_id, "remaining": remaining}
                            loops[address] = client.submit(_loop, shipped, run, pruner, data, key=f"zoo-search-loop-{run_id}-{submitted}",
                                                           workers=[address], allow_other_workers=False, pure=False)
                    no_workers_since = None if workers else (no_workers_since or time.time())
                    if no_workers_since is not None and time.time() - no_workers_since > _NO_WORKERS:
                        error = RuntimeError(f"the Dask cluster has had no workers for {_NO_WORKERS} s; start some and run the search again to resume")
                        break
                bar.update()
                if not loops and (finished() and not _running_here(study, run_id)):
                    break
                time.sleep(_POLL)
            error = error or _deliver(queue, study, storage, registry)
            _tidy(study, registry)
        finally:
            if loops:  # an error or an interruption: the loops fail their trials and queue them again
                client.cancel(list(loops.values()))
            bar.close()
            with contextlib.suppress(Exception):
                queue.close()
            if data is not None:
                data.release()
        if error is not None:
            raise error


def _running_here(study, run_id: str) -> bool:
    """Whether a trial of this run is still RUNNING (its loop died; its heartbeat will go stale)."""
    from optuna.trial import TrialState

    return any(t.user_attrs.get("run") == run_id for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def _deliver(queue, study, storage, registry) -> BaseException | None:
    """Write the trials the loops sent into the library, then mark them complete; the first error."""
    error = None
    for item in queue.get(batch=True):  # never a timeout: the scheduler would log each one as an error
        try:
            payload = item.result(timeout=120)
        except Exception:  # noqa: BLE001, S112 (its worker died before the result was fetched: the trial goes stale and runs again)
            continue
        finally:
            item.release()
        error = error or _complete(study, storage, registry, payload)
    return error


def _complete(study, storage, registry, payload: dict) -> BaseException | None:
    """Write one trial's entry, then mark it complete; an error that stops the search, or None."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    from zoo.library import drop_trial, entry_name, write_trial

    tid, number, entry = payload["trial_id"], payload["number"], payload["entry"]
    trial = storage.get_trial(tid)
    if trial.state != TrialState.RUNNING or trial.number != number:
        return None  # failed meanwhile (its heartbeat stopped): its retry writes the entry
    name = entry_name(study.study_name, number)
    if entry.get("name") != name or entry.get("search", {}).get("study") != study.study_name or entry.get("search", {}).get("trial") != number:
        return RuntimeError(f"trial {number} of study {study.study_name!r}: its worker sent the entry of {entry.get('name')!r}")
    try:
        storage.record_heartbeat(tid)  # the coordinator holds the trial while it writes
        storage.set_trial_user_attr(tid, "entry", name)
        write_trial(registry, entry, payload["files"])
    except UpdateFinishedTrialError:
        return None
    except Exception as exc:  # noqa: BLE001 (a library that cannot be written stops the search)
        with contextlib.suppress(UpdateFinishedTrialError):
            storage.set_trial_user_attr(tid, "error", f"{type(exc).__name__}: {exc}"[:2000])
            storage.set_trial_state_values(tid, TrialState.FAIL)
        return exc
    try:
        storage.set_trial_state_values(tid, TrialState.COMPLETE, [payload["value"]])
    except UpdateFinishedTrialError:  # failed as stale while the entry was written: its retry writes another
        drop_trial(registry, name)
    return None


def _loop(config_json: str, run: dict, pruner, data) -> int:
    """One worker's optimisation loop: trials one after another, each in its own process; how many it ran."""
    import optuna
    from distributed import Queue, get_client, get_worker

    from zoo.search.config import SearchConfig

    config = SearchConfig.from_json(config_json)
    config = config.replace(deadline=None if run["remaining"] is None else time.time() + run["remaining"])
    worker = get_worker()
    key = worker.get_current_task()

    def cancelled() -> bool:  # the coordinator cancelled the loop, or went away
        task = worker.state.tasks.get(key)
        return task is None or task.state != "executing"

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(config.storage, heartbeat=config.heartbeat, database=True)
    study = optuna.load_study(study_name=config.study, storage=storage, pruner=pruner)
    client = get_client()
    queue = Queue(run["queue"], client=client)
    deaths = [0]
    with tempfile.TemporaryDirectory(prefix="zoo-search-") as scratch, contextlib.closing(queue):
        data_file = sha = None
        if data is not None:  # once per loop: every trial process reads this file
            blob = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
            sha = hashlib.sha256(blob).hexdigest()
            data_file = Path(scratch) / "data.pickle"
            data_file.write_bytes(blob)
            del blob

        def execute(trial):
            tid = trial_id(storage, config.study, trial.number)
            beat = _Heartbeat(storage, tid, config.heartbeat)
            out = Path(scratch) / f"trial-{trial.number}"
            try:
                job = {"config": config_json, "pruner": pruner, "trial_id": tid, "number": trial.number,
                       "data": data_file and str(data_file), "data_sha256": sha}
                outcome = _attempt(job, trial, out, worker.state.nthreads, cancelled)
                deaths[0] = deaths[0] + 1 if outcome["state"] == "died" else 0
                if outcome["state"] == "complete":
                    _hand_over(client, queue, study, storage, trial, tid, outcome, cancelled)
                    return None  # marked complete by the coordinator once the entry is written
                if outcome["state"] == "pruned":
                    raise optuna.TrialPruned()
                if outcome["state"] == "error":
                    raise rebuilt(outcome["type"], outcome["message"])
                _fail_and_retry(study, storage, tid)  # died or cancelled: run it again
                if deaths[0] >= _MAX_DEATHS:
                    raise RuntimeError(f"trial processes on Dask worker {worker.address} died {deaths[0]} times in a row "
                                       f"(last exit code {outcome.get('exit_code')}); see the worker's log")
                return None
            finally:
                beat.stop()
                shutil.rmtree(out, ignore_errors=True)

        def attrs() -> dict:
            return {"run": run["run"], "host": socket.gethostname(), "dask_worker": worker.address, "worker_pid": os.getpid()}

        def before() -> None:
            fail_stale(study)

        with warnings.catch_warnings():  # heartbeats are this loop's, not Study.optimize's
            warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
            return trial_loop(study, config, execute, attrs=attrs, stop=cancelled, before=before)


class _Heartbeat:
    """A thread recording a running trial's heartbeat every ``interval`` seconds, until stopped."""

    def __init__(self, storage, trial_id: int, interval: int):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(storage, trial_id, interval), daemon=True, name=f"zoo-heartbeat-{trial_id}")
        storage.record_heartbeat(trial_id)
        self._thread.start()

    def _beat(self, storage, trial_id: int, interval: int) -> None:
        while not self._stop.wait(interval):
            with contextlib.suppress(Exception):  # a database hiccup: the next beat tries again
                storage.record_heartbeat(trial_id)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _attempt(job: dict, trial, out: Path, threads: int, cancelled) -> dict:
    """Run one trial in a new Python process; its outcome (``state``: complete, pruned, error, died or cancelled)."""
    out.mkdir()
    job = {**job, "out": str(out), "parent": os.getpid()}
    env = dict(os.environ)
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        env.setdefault(name, str(max(1, threads)))  # the worker's threads, read when TensorFlow starts
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    cache = json.loads(job["config"])["cache_dir"]
    if os.path.isdir(cache):  # else (another machine) the worker's own
        env["ZOO_CACHE_DIR"] = cache
    code = "from zoo.search.cluster import trial_process; trial_process()"
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, env=env, cwd=out)
    trial.set_user_attr("trial_pid", process.pid)
    try:
        process.stdin.write(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        process.stdin.close()
    except BrokenPipeError:
        pass
    while True:
        try:
            process.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            if cancelled():
                stop_process(process)
                return {"state": "cancelled"}
    result = out / "result.json"
    if process.returncode == 0 and result.is_file():
        outcome = json.loads(result.read_text(encoding="utf-8"))
        if outcome["state"] == "complete":
            refs = [r for r in (outcome["entry"].get("weights"), outcome["entry"].get("vocabulary")) if r]
            outcome["files"] = {r["file"]: (out / Path(r["file"]).name).read_bytes() for r in refs}
        return outcome
    return {"state": "died", "exit_code": process.returncode}


def _hand_over(client, queue, study, storage, trial, tid: int, outcome: dict, cancelled) -> None:
    """Send a trained trial to the coordinator; keep its heartbeat until the coordinator has written it."""
    from optuna.trial import TrialState

    payload = {"trial_id": tid, "number": trial.number, "value": outcome["value"], "entry": outcome["entry"], "files": outcome["files"]}
    [future] = client.scatter([payload], hash=False)  # stays on this worker until the coordinator fetches it
    queue.put(future)
    while storage.get_trial(tid).state == TrialState.RUNNING:
        if cancelled():  # the coordinator is gone: the trial runs again
            _fail_and_retry(study, storage, tid)
            break
        time.sleep(0.5)
    future.release()


def _fail_and_retry(study, storage, tid: int) -> None:
    """Fail a trial whose process died or was stopped, and queue it again (as a stale heartbeat would)."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        storage.set_trial_state_values(tid, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return
    retry_trial(study, storage.get_trial(tid))


def trial_process() -> None:
    """Entry point of a trial's process: read the job from stdin, train, write ``result.json`` and the trial's files."""
    import optuna

    from kze.files import atomic_write_text

    job = pickle.loads(sys.stdin.buffer.read())  # sent through a pipe by the loop that started this process
    threading.Thread(target=exit_with_parent, args=(job["parent"],), daemon=True).start()
    try:
        result = _train(job)
    except optuna.TrialPruned:
        result = {"state": "pruned"}
    except Exception as exc:  # noqa: BLE001 (recorded in the trial and raised by the coordinator)
        result = {"state": "error", "type": type(exc).__name__, "message": str(exc)[:2000]}
    atomic_write_text(Path(job["out"]) / "result.json", json.dumps(result))


def _train(job: dict) -> dict:
    import optuna

    from zoo.datasets import resolve_data_dir
    from zoo.library import prepare_trial
    from zoo.search.config import SearchConfig

    config = SearchConfig.from_json(job["config"])
    if not os.path.isdir(config.data_dir):  # another machine: the worker's own data folder (ZOO_DATA_DIR)
        config = config.replace(data_dir=str(resolve_data_dir().absolute()))
    if config.logs and not os.path.isdir(config.library):  # another machine without the library: no trial logs
        config = config.replace(logs=False)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start_tensorflow(1)
    arrays = None if job["data"] is None else read_scratch(job["data"], job["data_sha256"])
    X, y = load_data(config, arrays)
    storage = open_storage(config.storage)  # the loop keeps the heartbeat
    # TPE seeded with seed + the study name's offset + the trial's number, as on one machine
    study = optuna.load_study(study_name=config.study, storage=storage, pruner=job["pruner"],
                              sampler=sampler(config.study, config.seed, job["number"]))
    trial = optuna.trial.Trial(study, job["trial_id"])
    clf, record = fit_trial(trial, config, X, y)
    entry = prepare_trial(clf, job["out"], **record)
    return {"state": "complete", "value": record["objective"]["value"], "entry": entry}


def read_scratch(path: str, sha256: str):
    """The arrays a loop pickled into the scratch file ``path``: read once, checked, unpickled from the bytes checked.

    Raises
    ------
    ChecksumError
        Unless the bytes read have the sha256 ``sha256`` recorded by the loop
        that wrote the file; nothing is unpickled then.
    """
    from zoo._files import ChecksumError

    with open(path, "rb") as fh:
        blob = fh.read()
    got = hashlib.sha256(blob).hexdigest()
    if got != sha256:
        raise ChecksumError(f"search data {path} has sha256 {got}, expected {sha256}; refusing to use it (corrupted, truncated or replaced?)")
    return pickle.loads(blob)  # the bytes checked, never a second read of the file

