"""Where a search's trials run: a worker process, this process, spawned worker processes, or a Dask cluster.

Every executor has one method, ``run(study, storage, registry, config, *,
arrays, pruner, progress)``, which runs trials until the study has
``config.n_trials`` (or the deadline passed) and raises the first trial's
error; each runs :func:`zoo.search.trials.trial_loop`, the one
ask/seed/surplus/tell loop. Decisions, from measurements on the 2-core
development machine (``mnist_mlp`` on 300 MNIST images, 1 epoch; the
README's table from ``scripts/bench_search.py``):

- Memory: TensorFlow keeps about 13 MB per fit in the process, with or
  without ``keras.backend.clear_session()`` (RSS over 15 bare
  ``ZooClassifier`` fits: 760 to 944 MB with it, alike without), so no
  process that trains trial after trial has bounded memory; only replacing
  the process bounds it. Each trial still ends with ``clear_session()`` and a
  garbage collection (``zoo.search.objective.release_memory``).
- ``Worker`` (the default, ``executor="worker"``): one long-lived Python
  process, started with ``python -c`` (not ``multiprocessing``: it never
  re-imports the calling script, so a plain script, a notebook and the REPL
  need no ``if __name__ == "__main__":`` guard), runs the trials one after
  another and is replaced every ``trials_per_process`` trials (default 10):
  its start (Python, TensorFlow, the data: a few seconds) is paid once per
  10 trials, and memory stays within about 10 x 13 MB of a fresh process.
  The job (settings as JSON, the pruner, the user's arrays) goes through a
  pipe, never a file. A worker that dies is replaced and its trial run
  again (``reap``); three deaths in a row stop the search.
- ``InProcess`` (``executor="inprocess"``): the trials run in the calling
  process: nothing to start, the lowest overhead for a handful of trials,
  but memory grows by TensorFlow's 13 MB a trial (measured over 20 trials;
  ``tests/test_search_executors.py`` bounds it at 25 MB a trial). An
  interrupted trial (Ctrl-C in a notebook) is failed and queued again at once.
- ``Processes`` (``executor="processes"``, chosen by default when ``workers
  > 1`` or ``trials_per_process`` is given): ``workers`` processes spawned by
  ``multiprocessing`` (never forked: TensorFlow hangs in a fork), each running
  ``trials_per_process`` trials (default 1) and replaced by a new one; a
  slot whose process dies three times in a row stops the search. A spawned
  child re-imports the calling script, which then needs the guard. Each
  worker reports that it started; one that exits before that, or has not
  reported within ``START_TIMEOUT`` seconds, stops the search at once with a
  :class:`GuardError` naming the guard. Before, the search waited forever:
  the parent, writing the user's arrays (more than a pipe holds) to a child
  that had died, never returned; arrays now follow the child's report
  through a queue, and only small arguments go with the start.
- ``Dask`` (``client=``): see ``zoo.search.cluster``.
- Overhead measured (``scripts/bench_search.py``, one run, machine shared):
  a real trial (30-34 s fit) took 1.06x its fit in the worker and 1.04x in
  this process; the worker's start (Python, TensorFlow, data) cost about
  20 s, paid once per 10 trials (2 s a trial, 1.13x at most for 30 s fits).
- ``timeout``: no trial starts after it; running trials finish.
"""

from __future__ import annotations

import functools
import os
import time

from zoo.search.objective import load_data, run_trial, start_tensorflow
from zoo.search.storage import open_storage
from zoo.search.trials import ProgressBar, counted, portable, reap, stop_process, trial_loop, who

__all__ = ["START_TIMEOUT", "Executor", "GuardError", "InProcess", "Processes", "Worker", "serve"]

START_TIMEOUT = 30.0  # seconds a spawned worker has to report that it started
_MAX_DEATHS = 3  # consecutive abnormal exits of one worker slot before the search gives up
_POLL = 1.0
GUARD = ('a search worker process could not start: a spawned process re-imports the script that started the search, so '
         'the code that calls zoo.search must sit under  if __name__ == "__main__":  (or use the default executor="worker", or "inprocess", '
         'which start no process that re-imports it)')


class GuardError(RuntimeError):
    """A spawned worker could not start (the calling script lacks its ``__main__`` guard)."""


class Executor:
    """Runs a study's trials until it has ``config.n_trials``; the interface of every executor."""

    def run(self, study, storage, registry, config, *, arrays, pruner, progress: bool) -> None:
        raise NotImplementedError


class InProcess(Executor):
    """The trials run one after another in this process (no guard needed)."""

    def run(self, study, storage, registry, config, *, arrays, pruner, progress: bool) -> None:
        reap(study, registry, storage)
        if len(counted(study)) >= config.n_trials:
            return
        start_tensorflow(1)
        X, y = load_data(config, arrays)
        bar = ProgressBar(study, config.n_trials, progress)


        try:
            trial_loop(study, config, functools.partial(run_trial, config=config, X=X, y=y), attrs=lambda: who(worker=0), before=bar.update)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # interrupted (Ctrl-C in a notebook): this process lives on, so fail and requeue now
                _requeue_running(study, storage)
            raise
        finally:
            bar.close()


def _requeue_running(study, storage) -> None:
    """Fail this process's running trials (``retried``) and queue their values again."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    from zoo.search.storage import trial_id

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("pid") != os.getpid():
            continue
        tid = trial_id(storage, study.study_name, trial.number)
        try:
            storage.set_trial_user_attr(tid, "retried", True)
            storage.set_trial_state_values(tid, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue
        study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})


class Worker(Executor):
    """One long-lived Python process runs the trials, replaced after ``config.trials_per_process`` (no guard needed)."""

    def run(self, study, storage, registry, config, *, arrays, pruner, progress: bool) -> None:
        import pickle
        import subprocess
        import sys
        import tempfile

        from zoo.search.trials import rebuilt

        reap(study, registry, storage)
        bar = ProgressBar(study, config.n_trials, progress)
        deaths = 0
        process = None
        env = dict(os.environ, ZOO_CACHE_DIR=config.cache_dir)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

        def done() -> bool:
            timed_out = config.deadline is not None and time.time() >= config.deadline
            return timed_out or len(counted(study)) >= config.n_trials

        try:
            with tempfile.TemporaryDirectory(prefix="zoo-search-") as scratch:
                result = os.path.join(scratch, "result.json")
                while not done():
                    job = {"config": config.to_json(), "pruner": pruner, "arrays": arrays if config.data_path is None else None,
                           "parent": os.getpid(), "result": result}
                    # python -c, not multiprocessing: the child never re-imports the calling script (no __main__ guard needed)
                    process = subprocess.Popen([sys.executable, "-c", "from zoo.search.executors import serve; serve()"],
                                               stdin=subprocess.PIPE, env=env, cwd=scratch)
                    try:  # through a pipe from this process, never a file: unpickled by the child as sent
                        process.stdin.write(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
                        process.stdin.close()
                    except BrokenPipeError:
                        pass
                    while process.poll() is None:
                        bar.update()
                        time.sleep(_POLL / 4)
                    outcome = _read_result(result)
                    if outcome.get("state") == "error":
                        raise rebuilt(outcome["type"], outcome["message"])
                    if process.returncode != 0:
                        reap(study, registry, storage)
                        deaths += 1
                        if deaths >= _MAX_DEATHS:
                            raise RuntimeError(f"the search's worker process died {deaths} times in a row (last exit code {process.returncode}); "
                                               "see its trials' user attributes")
                    else:
                        deaths = 0
                    process = None
        except BaseException:
            if process is not None:
                stop_process(process)
            reap(study, registry, storage)  # the interrupted trial runs again
            raise
        finally:
            bar.close()


def _read_result(path: str) -> dict:
    """The worker's outcome (``{"state": "error", "type", "message"}`` when a trial raised), then removed; {} if none."""
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            outcome = json.load(fh)
    except (OSError, ValueError):
        return {}
    os.unlink(path)
    return outcome


def serve() -> None:
    """Entry point of a :class:`Worker` process: read the job from stdin, run up to ``trials_per_process`` trials."""
    import json
    import pickle
    import sys
    import threading

    import optuna

    from kze.files import atomic_write_text
    from zoo.search.config import SearchConfig
    from zoo.search.trials import exit_with_parent

    job = pickle.loads(sys.stdin.buffer.read())  # sent through a pipe by the search that started this process
    threading.Thread(target=exit_with_parent, args=(job["parent"],), daemon=True).start()
    config = SearchConfig.from_json(job["config"])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        start_tensorflow(1)
        storage = open_storage(config.storage)
        study = optuna.load_study(study_name=config.study, storage=storage, pruner=job["pruner"])
        X, y = load_data(config, job["arrays"])


        trial_loop(study, config, functools.partial(run_trial, config=config, X=X, y=y), attrs=lambda: who(worker=0), limit=config.trials_per_process)
    except Exception as exc:  # noqa: BLE001 (raised by the search that started this process)
        atomic_write_text(job["result"], json.dumps({"state": "error", "type": type(exc).__name__, "message": str(exc)[:4000]}))


class Processes(Executor):
    """``config.workers`` spawned processes, each running ``config.trials_per_process`` trials, then replaced."""

    def run(self, study, storage, registry, config, *, arrays, pruner, progress: bool) -> None:
        import multiprocessing
        from multiprocessing.connection import wait

        reap(study, registry, storage)
        context = multiprocessing.get_context("spawn")  # never fork: TensorFlow hangs in a forked child
        queue = context.Queue()
        # only small arguments: a spawned child reads its arguments after re-importing the script, and a parent
        # writing more than a pipe holds to a child that died doing so (no __main__ guard) would wait forever
        shipped = (config.to_json(), pruner)
        send = arrays is not None and config.data_path is None  # the user's arrays, sent once the worker has started
        inboxes: list = [None] * config.workers
        slots: list = [None] * config.workers
        started: dict = {}  # slot -> time.time() when its process was started, until it reports
        deaths = [0] * config.workers
        errors: list = []
        bar = ProgressBar(study, config.n_trials, progress)

        def done() -> bool:
            timed_out = config.deadline is not None and time.time() >= config.deadline
            return timed_out or len(counted(study)) >= config.n_trials

        try:
            while True:
                _drain(queue, started, errors, inboxes, arrays if send else None)
                for i, process in enumerate(slots):
                    if process is not None and process.exitcode is None:
                        if i in started and time.time() - started[i] > START_TIMEOUT and not errors:
                            errors.append(GuardError(f"{GUARD} (worker {i} did not report within {START_TIMEOUT:.0f} s)"))
                        continue
                    if process is not None:
                        process.join()
                        slots[i] = None
                        _drain(queue, started, errors, inboxes, arrays if send else None)
                        if i in started:  # exited before it reported: it never started
                            del started[i]
                            if not errors:
                                errors.append(GuardError(f"{GUARD} (worker {i} exited with code {process.exitcode} while starting)"))
                        if process.exitcode != 0:
                            reap(study, registry, storage)
                            deaths[i] += 1
                        else:
                            deaths[i] = 0
                    if errors or done():
                        continue
                    if deaths[i] >= _MAX_DEATHS:
                        errors.append(RuntimeError(f"search worker {i} died {deaths[i]} times in a row (last exit code {process.exitcode}); "
                                                   "see its trials' user attributes"))
                        continue
                    inboxes[i] = context.Queue() if send else None
                    slots[i] = context.Process(target=_worker, args=(*shipped, i, queue, inboxes[i]), name=f"zoo-search-{i}", daemon=False)
                    slots[i].start()
                    started[i] = time.time()
                if errors and any(isinstance(e, GuardError) for e in errors):
                    _stop(slots)
                bar.update()
                running = [p for p in slots if p is not None and p.exitcode is None]
                if not running:
                    break
                wait([p.sentinel for p in running], timeout=_POLL)
            _drain(queue, started, errors, inboxes, None)
        except BaseException:
            _stop(slots)
            reap(study, registry, storage)  # the interrupted trials run again next time
            raise
        finally:
            bar.close()
            queue.close()
        if errors:
            raise errors[0]


def _worker(config_json: str, pruner, index: int, queue, inbox) -> None:
    """A spawned worker: report that it started, run up to ``trials_per_process`` trials of the study, then exit."""
    queue.put(("started", index))
    arrays = None if inbox is None else inbox.get()  # the user's arrays, sent by the coordinator once it read the report
    import optuna

    from zoo.search.config import SearchConfig

    try:
        config = SearchConfig.from_json(config_json)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        os.environ["ZOO_CACHE_DIR"] = config.cache_dir
        start_tensorflow(config.workers)
        storage = open_storage(config.storage)
        study = optuna.load_study(study_name=config.study, storage=storage, pruner=pruner)
        X, y = load_data(config, arrays)
    except Exception as exc:  # noqa: BLE001 (sent to the coordinator, which raises it)
        queue.put(("error", portable(exc, f"search worker {index} failed")))
        raise SystemExit(1) from None


    try:
        trial_loop(study, config, functools.partial(run_trial, config=config, X=X, y=y), attrs=lambda: who(worker=index), limit=config.trials_per_process)
    except KeyboardInterrupt:  # the trial stays RUNNING; the coordinator reaps it
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 (the trial's error, with its number: raised by the coordinator)
        queue.put(("error", exc))
        raise SystemExit(1) from None


def _stop(slots: list) -> None:
    """Ask running workers to stop (SIGTERM), then kill those that do not."""
    slots = [p for p in slots if p is not None and p.pid is not None]  # started ones
    for process in slots:
        if process.exitcode is None:
            process.terminate()
    for process in slots:
        if process is not None:
            process.join(10)
            if process.exitcode is None:
                process.kill()
                process.join()


def _drain(queue, started: dict, errors: list, inboxes: list, arrays) -> None:
    """Read the workers' messages: ``started`` reports (answered with ``arrays`` when given), and errors (appended to ``errors``)."""
    import queue as _queue

    while True:
        try:
            kind, value = queue.get_nowait()
        except _queue.Empty:
            return
        if kind == "started":
            started.pop(value, None)
            if arrays is not None and inboxes[value] is not None:
                inboxes[value].put(arrays)
        else:
            errors.append(value)
