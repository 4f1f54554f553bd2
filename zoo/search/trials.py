"""Trial bookkeeping shared by every executor, and the one trial loop (ask, seed, surplus, tell).

Decisions:

- Sampler: Optuna's TPE, seeded with ``seed`` plus an offset of the study
  name plus the trial's number (modulo 2**32; :func:`sampler`, the one place
  every executor makes a sampler). When K workers start together their first
  trials are numbers 0 to K-1, so worker ``i`` samples with ``seed + offset +
  i``; and as the number is unique in the study, no two workers, recycled
  processes, resumed runs or other commands sharing the study ever repeat a
  random start-up trial. The offset (the first four bytes of the sha256 of
  the study name, never Python's per-process ``hash``) keeps two studies
  sharing a library and a seed from drawing the same start-up trials: their
  seeds coincide only if their offsets fall within a trial count of each
  other, a chance of ``2n / 2**32`` for two studies of ``n`` trials. The same
  study name and seed draw the same values, so runs stay reproducible.
- ``n_trials`` is the study's total, not this run's: trials that are
  complete, pruned, failed or running count (:func:`counted`), and a run stops
  when they reach it. A worker that finds its new trial beyond the total (two
  workers asked at once) closes it as failed with the user attribute
  ``surplus``, not counted. Failed trials run again (``retried``, or in a
  retry's ``retry_history``) do not count either.
- :func:`trial_loop` is the loop every executor runs: check the deadline and
  the total, ask, record who runs the trial, seed the sampler, close a
  surplus trial, run it (the executor's ``execute``), tell the result. A
  trial that raises fails (its error in the user attribute ``error``) and
  stops the search with that error, as in ``Study.optimize``.
- A journal storage has no heartbeat: each running trial records its host,
  pid and process start time; at start (and when a worker dies) trials of
  this host whose process is gone are failed (user attribute ``retried``)
  and their parameters are enqueued to run again, unless the library already
  holds the trial's model (the process died after writing it), in which case
  the trial is completed with the recorded value (:func:`reap`).
- Only Optuna's public API: trials are addressed through the storage the
  search opened and ``get_trial_id_from_study_id_trial_number``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import time
from pathlib import Path

from zoo.search.config import METRICS, RUNS_FOLDER
from zoo.search.storage import redact, trial_id

__all__ = ["ProgressBar", "best_trial", "check_choices", "check_study", "counted", "exit_with_parent", "is_running", "keep_recorded_choices", "portable", "stop_process", "process_start",
           "reap", "rebuilt", "sampler", "sampler_seed", "summary", "surplus", "trial_loop", "who"]


def trial_loop(study, config, execute, *, attrs=None, limit: int | None = None, stop=None, before=None) -> int:
    """Run trials of ``study`` one after another until the study has ``config.n_trials``; how many ran.

    Parameters
    ----------
    study : optuna.Study
    config : SearchConfig
    execute : callable
        ``execute(trial)`` trains the trial: returns its value (told as
        complete), None (the executor settled the trial itself), or raises
        ``optuna.TrialPruned`` (told as pruned) or an error (the trial fails
        with it, and the error is raised with the trial's number).
    attrs : callable, optional
        User attributes recorded on each new trial (who runs it).
    limit : int, optional
        Trials to run at most (a recycled worker process).
    stop : callable, optional
        True when the loop must end (cancelled).
    before : callable, optional
        Called before each trial (fail stale trials).
    """
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    ran = 0
    while limit is None or ran < limit:
        if stop is not None and stop():
            break
        if before is not None:
            before()
        if (config.deadline is not None and time.time() >= config.deadline) or len(counted(study)) >= config.n_trials:
            break
        trial = study.ask()
        for key, value in ({} if attrs is None else attrs()).items():
            trial.set_user_attr(key, value)
        # TPE draws the trial's values when the objective asks for them, with the sampler the study has then
        study.sampler = sampler(config.study, config.seed, trial.number)
        if surplus(study, trial.number, config.n_trials):
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            break
        ran += 1
        try:
            value = execute(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        except Exception as exc:
            with contextlib.suppress(UpdateFinishedTrialError):  # the executor may have settled it already
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:2000])
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise portable(exc, f"trial {trial.number} of study {config.study!r} failed") from exc
        else:
            if value is not None:
                study.tell(trial, value, skip_if_finished=True)
    return ran


def who(**extra) -> dict:
    """The user attributes naming the process that runs a trial (:func:`reap` fails it if this process dies)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": process_start(os.getpid()), **extra}


def sampler_seed(study: str, seed: int, number: int) -> int:
    """The TPE seed of trial ``number`` of ``study``: ``seed`` + the study name's offset + ``number``, modulo 2**32.

    The offset is the first four bytes of the sha256 of the study name (not
    Python's ``hash``, which changes from process to process), so it is the
    same in every worker, machine and run, and two studies sharing a library
    and a seed start from different random trials.
    """
    offset = int.from_bytes(hashlib.sha256(study.encode("utf-8")).digest()[:4], "big")
    return (seed + offset + number) % 2**32


def sampler(study: str, seed: int, number: int):
    """The TPE sampler that draws trial ``number`` of ``study`` (seeded by :func:`sampler_seed`); every executor uses it."""
    import optuna

    return optuna.samplers.TPESampler(seed=sampler_seed(study, seed, number))


def counts(trial, retried=frozenset()) -> bool:
    """Whether a trial counts towards the study's total (``retried``: numbers of failed trials run again)."""
    from optuna.trial import TrialState

    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
        return True
    attrs = trial.user_attrs
    return trial.state == TrialState.FAIL and not attrs.get("retried") and not attrs.get("surplus") and trial.number not in retried


def counted(study) -> list:
    trials = study.get_trials(deepcopy=False)
    # a failed trial that Optuna's RetryFailedTrialCallback queued again (a search on a cluster) is in its retry's history
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
    return [t for t in trials if counts(t, retried)]


def surplus(study, number: int, n_trials: int) -> bool:
    """Whether trial ``number`` lies beyond the study's total (counted trials in creation order)."""
    numbers_ = sorted({t.number for t in counted(study)} | {number})
    return numbers_.index(number) >= n_trials


def process_start(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, from /proc), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[19]


def is_running(pid: int, start: str | None) -> bool:
    """Whether process ``pid`` (started at ``start``) still runs on this machine; zombies do not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return False
    return start is None or fields[19] == start  # a new process with a recycled pid is not ours


def reap(study, registry, storage) -> list[int]:
    """Fail this host's running trials whose process is gone and enqueue them again; their numbers."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    from zoo.library import find_trial
    from zoo.registry import Registry

    host = socket.gethostname()
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("host") != host or not isinstance(attrs.get("pid"), int) or is_running(attrs["pid"], attrs.get("pid_start")):
            continue
        entry = find_trial(Registry(registry.path), study.study_name, trial.number)  # re-read: other processes write it
        tid = trial_id(storage, study.study_name, trial.number)
        try:  # when two processes reap the same trial, the second one's update raises
            if entry is not None:
                storage.set_trial_state_values(tid, TrialState.COMPLETE, [entry["search"]["objective"]["value"]])
            else:
                storage.set_trial_user_attr(tid, "retried", True)
                storage.set_trial_state_values(tid, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue
        if entry is None:
            study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
        reaped.append(trial.number)
    return reaped


def check_study(study, expected: dict) -> None:
    """Record what the study searches; refuse to resume it with another builder, data or metric."""
    recorded = study.user_attrs.get("zoo")
    if recorded is None:
        study.set_user_attr("zoo", expected)
        return
    different = [k for k in expected if recorded.get(k) != expected[k]]
    if different:
        what = ", ".join(f"{k} {recorded.get(k)!r} (now {expected[k]!r})" for k in different)
        raise ValueError(f"study {study.study_name!r} was created with {what}: choose another study name (study_name= / --study) or library")


def keep_recorded_choices(study, resolved: dict, user) -> None:
    """Resume a study with the default ``augment`` choices its trials were drawn from.

    The default choices changed (flips only where the data allows them); Optuna
    refuses a categorical whose choices differ from the study's earlier trials
    ("dynamic value space"), so a study created before keeps its own, unless
    the user's space sets ``augment``.
    """
    from optuna.distributions import CategoricalDistribution

    if "augment" not in resolved or (isinstance(user, dict) and "augment" in user):
        return
    for trial in study.get_trials(deepcopy=False):
        recorded = trial.distributions.get("augment")
        if isinstance(recorded, CategoricalDistribution):
            resolved["augment"] = {"choices": list(recorded.choices)}
            return


def check_choices(study, resolved: dict) -> None:
    """Refuse, before any trial, a space whose choices for a hyperparameter differ from those the study's trials drew from.

    Optuna would fail the next trial with "dynamic value space"; the usual
    cause is resuming a study without the ``space`` (``--space`` file) it was
    started with.
    """
    import json

    from optuna.distributions import CategoricalDistribution

    from zoo.search_spaces import choice_labels

    for name, spec in resolved.items():
        if not (isinstance(spec, dict) and "choices" in spec):
            continue
        now = choice_labels(spec["choices"])
        for trial in study.get_trials(deepcopy=False):
            recorded = trial.distributions.get(name)
            if isinstance(recorded, CategoricalDistribution):
                if json.dumps(list(recorded.choices)) != json.dumps(now):
                    raise ValueError(f"study {study.study_name!r} drew {name} from {list(recorded.choices)}, this space from {now}: "
                                     "resume it with the space it was started with (space= / --space) or choose another study name")
                break


def stop_process(process, grace: float = 10.0) -> None:
    """Ask a ``subprocess.Popen`` child to stop (SIGTERM); kill it if it has not within ``grace`` seconds."""
    import subprocess

    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def portable(exc: BaseException, context: str) -> BaseException:
    """``exc`` as an exception of the same type (if it can be rebuilt and pickled) saying ``context``."""
    import pickle

    try:
        rebuilt = type(exc)(f"{context}: {exc}")
        pickle.loads(pickle.dumps(rebuilt))
        return rebuilt
    except Exception:  # noqa: BLE001 (an exception type that cannot be rebuilt or pickled)
        return RuntimeError(f"{context}: {type(exc).__name__}: {exc}")


class ProgressBar:
    """tqdm on stderr: finished trials of the study out of its total, and the best value."""

    def __init__(self, study, total: int, enabled: bool):
        from tqdm.auto import tqdm

        self.study = study
        self.bar = tqdm(total=total, initial=finished(study), desc=study.study_name, unit="trial", disable=not enabled, leave=True, dynamic_ncols=True)

    def update(self) -> None:
        if self.bar.disable:
            return
        n = finished(self.study)
        if n != self.bar.n:
            self.bar.update(n - self.bar.n)
            best = best_trial(self.study)
            if best is not None:
                self.bar.set_postfix_str(f"best {best.value:.4f} (trial {best.number})", refresh=False)
            self.bar.refresh()

    def close(self) -> None:
        self.update()
        self.bar.close()


def finished(study) -> int:
    from optuna.trial import TrialState

    return sum(1 for t in counted(study) if t.state != TrialState.RUNNING)


def best_trial(study):
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    if not complete:
        return None
    sign = -1 if study.direction == StudyDirection.MAXIMIZE else 1
    return min(complete, key=lambda t: (sign * t.value, t.number))


def summary(study, config, seconds: float, storage: str) -> dict:
    """The result ``zoo.search`` returns (``storage``: as the user gave it, without its password)."""
    from optuna.trial import TrialState

    from zoo.library import entry_name

    kept = counted(study)
    count = {s: sum(1 for t in kept if t.state == state) for s, state in
             (("complete", TrialState.COMPLETE), ("pruned", TrialState.PRUNED), ("failed", TrialState.FAIL), ("running", TrialState.RUNNING))}
    best = best_trial(study)
    return {
        "study": study.study_name,
        "library": config.library,
        "storage": redact(storage),
        "metric": config.metric,
        "direction": METRICS[config.metric],
        "n_trials": config.n_trials,
        "trials": count,
        "best": None if best is None else {
            "trial": best.number,
            "value": best.value,
            "params": best.user_attrs.get("hyperparameters", best.params),
            "entry": entry_name(study.study_name, best.number),
        },
        "timed_out": config.deadline is not None and time.time() >= config.deadline and len(kept) < config.n_trials,
        "wall_seconds": round(seconds, 1),
        "logs": str(Path(config.library) / RUNS_FOLDER) if config.logs else None,
    }


def rebuilt(type_name: str, message: str) -> Exception:
    """An exception of the built-in type ``type_name`` (RuntimeError for others) saying ``message``."""
    import builtins

    kind = getattr(builtins, type_name, None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        with contextlib.suppress(Exception):
            return kind(message)
    return RuntimeError(message if kind is not None else f"{message} ({type_name})")


def exit_with_parent(parent: int) -> None:
    """Exit when the worker that started this process is gone (killed workers leave no orphan trials)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(3)
