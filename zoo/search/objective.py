"""One trial: a :class:`zoo.ZooClassifier` fit scored on its early-stopping slice, and one library entry.

Decisions:

- Starting point: a zoo entry (its builder, hyperparameters and recipe, on its
  dataset's ``train`` split; never the validation or test split) or a builder
  name with the user's data. The space (``zoo.search_spaces``) overrides the
  starting point's values for the hyperparameters it searches.
- Objective: the early-stopping slice's ``accuracy`` (maximised; default) or
  ``log_loss`` (minimised), measured after restoring the best epoch. Every
  trial keeps the starting point's seed, so every trial is scored on the
  same slice. The validation split stays untouched for fitting ensembles.
- Pruning: the slice metric is reported after every epoch by a Keras
  callback; the default pruner is ``MedianPruner(n_startup_trials=4,
  n_warmup_steps=2)``: with a handful of trials of many minutes each,
  bracketed pruners (Hyperband, successive halving) rarely get the trials
  they need; the two warm-up epochs spare slow starters.
- The entry: :func:`run_trial` writes the weights and entry with
  ``zoo.library.add_trial`` (through ``prepare_trial``, which a Dask worker
  calls too, its files then written by ``write_trial`` on the coordinator);
  ``prepare_trial`` calls ``zoo.library.write_model``, the function
  ``zoo train`` writes its entries with.
- Snapshot ensembles: a trial whose ``ZooClassifier`` has ``snapshots=M > 1``
  (from the starting point's parameters, or the space once ``snapshots`` is
  a training setting there) writes its ``M`` snapshots as ``M`` entries
  (``zoo.library.add_snapshot_trials``): ``<study>_tNNNN`` is the last
  snapshot, the trial's model as for any trial, and ``<study>_tNNNN_s1 ..
  _s<M-1>`` the earlier ones, each with its own slice metrics and
  ``snapshot: {index, of, epoch}``. The trial's own entry is written last, so
  ``reap`` completes a trial only once all its entries are there. A trial
  prepared on a Dask worker (``prepare_trial``) still writes the last
  snapshot only.
- Logs (``logs=True``): each trial writes the CSV log (``training.csv``) and
  TensorBoard event files (``tensorboard/``, histograms every epoch) that
  every entry's recipe lists, into ``LIB/runs/<entry>/``. They are extra
  callbacks of the fit, not ``ZooClassifier(log_dir=...)``, whose best-epoch
  checkpoint would store every trial's weights twice; they come before the
  pruning callback (a pruned trial's last epoch is logged) and are closed
  when the fit raises. A stale folder of the same entry name is replaced.
- Data read again by another process (a ``.npz`` file) must have the
  study's data digest: a changed file is refused, never trained on.
- Resumption: every trial fits with ``backup_dir=LIB/.backups/<entry of the
  original trial>`` (``zoo.resume``). A trial queued again after its process
  died (``reap``'s ``retry_of`` user attribute, followed back through retries
  of retries, or Optuna's ``RetryHeartbeatStaleTrialCallback``'s
  ``failed_trial``, already the first of the chain; :func:`original_trial`)
  has the same values, so the same fingerprint, and goes on from the dead
  trial's last epoch instead of starting over. A backup the fit refuses
  (``zoo.resume.BackupRefusedError``: the search was started again with other
  settings, such as ``epochs`` or ``subset``) is deleted and the retry trains
  afresh: the folder is the search's own, and nothing of another training is
  resumed. A trial that is not a retry
  replaces a stale folder of its name (a study started again after its storage
  was deleted); a pruned trial's backup is deleted (it is never run again);
  a successful fit deletes its own, and the empty ``.backups`` folder goes
  too. A Dask worker on a machine without the library folder trains without
  a backup.
- Memory: :func:`release_memory` clears the Keras session and collects
  garbage after every trial (the in-process executor's bound; see
  ``zoo.search.executors``).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path

import numpy as np

from zoo.resume import BackupRefusedError
from zoo.search.config import METRICS, REPORTED, RUNS_FOLDER, user_data

__all__ = ["BACKUPS_FOLDER", "backup_folder", "fit_trial", "load_data", "original_trial", "release_memory", "run_trial", "start_tensorflow"]

BACKUPS_FOLDER = ".backups"  # LIB/.backups/<entry>/: the training backup of a running trial (zoo.resume)


def release_memory() -> None:
    """Free what a trial's Keras model left behind (the session's graphs and layers)."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


def start_tensorflow(workers: int) -> None:
    """Import TensorFlow quietly, sharing the machine's cores among the workers."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if workers > 1:  # read by TensorFlow when it starts
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", threads)
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", threads)
    from kze.startup import quiet_tensorflow_start

    quiet_tensorflow_start()
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notices of one trial after another


def load_data(config, arrays=None) -> tuple[np.ndarray, np.ndarray]:
    """The search's data: the user's arrays or file (checked against the study's sha256), or the zoo dataset's train split; cut to the subset."""
    if arrays is not None:
        X, y = arrays
    elif config.data_path is not None:  # each worker reads the file again: it must hold the data the study records
        (X, y), read = user_data(config.builder, None, None, config.data_path, config.base)
        if read["sha256"] != config.data_info["sha256"]:
            raise ValueError(f"data file {config.data_path} changed since the search started (its data's sha256 is {read['sha256']}, "
                             f"the study's {config.data_info['sha256']}); refusing to train on it")
    else:
        from zoo import datasets

        X, y = datasets.load(config.dataset, "train", config.data_dir)
    if config.subset is not None:
        n = config.subset + config.base["early_stopping_size"]
        X, y = X[:n], y[:n]
    return X, y


def run_trial(trial, config, X, y) -> float:
    """Train the trial's model, write it into the library, return the objective; then free the model's memory."""
    from zoo.library import add_snapshot_trials, add_trial, open_library

    try:
        clf, record = fit_trial(trial, config, X, y)
        if clf.snapshots > 1:
            add_snapshot_trials(open_library(config.library), clf, **record)
        else:
            add_trial(open_library(config.library), clf, **record)
        return record["objective"]["value"]
    finally:
        release_memory()


def fit_trial(trial, config, X, y) -> tuple:
    """Train the trial's model: ``(clf, record)``, ``record`` the keyword arguments of ``zoo.library.prepare_trial``."""
    from zoo.estimator import ZooClassifier
    from zoo.library import entry_name
    from zoo.search_spaces import TRAINING_PARAMS, suggest

    values = suggest(trial, config.space)
    trial.set_user_attr("hyperparameters", values)
    params = {k if k in TRAINING_PARAMS else "builder__" + k: v for k, v in values.items()}
    clf = ZooClassifier(**config.base).set_params(**params)
    logs = _log_callbacks(config, trial.number) if config.logs else []
    backup = backup_folder(config, trial)
    started = time.perf_counter()
    try:  # the logs first: a pruned trial's last epoch is logged before the pruning callback raises
        try:
            clf.fit(X, y, callbacks=[*logs, _pruning_callback(trial, REPORTED[config.metric])], backup_dir=backup)
        except BackupRefusedError:  # raised before any training: a retry with other settings (epochs, subset...) starts afresh
            _remove_backup(backup)
            clf.fit(X, y, callbacks=[*logs, _pruning_callback(trial, REPORTED[config.metric])], backup_dir=backup)
    except BaseException as exc:
        import optuna

        for callback in logs:  # close the CSV file and the TensorBoard writers that fit left open
            with contextlib.suppress(Exception):
                callback.on_train_end()
        if backup is not None and isinstance(exc, optuna.TrialPruned):  # a pruned trial is never run again
            _remove_backup(backup)
        raise
    if backup is not None:
        _remove_backup(backup)  # fit deleted the backup itself; the .backups folder goes when empty
    seconds = time.perf_counter() - started
    value = round(float(clf.early_stopping_scores_[config.metric]), 6)
    record = {
        "study": config.study,
        "trial": trial.number,
        "objective": {"name": f"early_stopping_{config.metric}", "value": value, "direction": METRICS[config.metric]},
        "hyperparameters": values,
        "seconds": seconds,
        "examples": len(y),
        "dataset": config.dataset,
        "data": config.data_info,
        "subset": config.subset,
        "logs": f"{RUNS_FOLDER}/{entry_name(config.study, trial.number)}" if logs else None,
    }
    return clf, record


def original_trial(trial) -> int:
    """The number of the first trial of the chain of retries ``trial`` belongs to (its own number if it is no retry).

    Optuna's retry callback records the first one (``failed_trial``, through
    ``RetryHeartbeatStaleTrialCallback.retried_trial_number``); a trial that
    ``zoo.search.trials.reap`` queued again records the one it retries
    (user attribute ``retry_of``), followed back here.
    """
    import warnings

    import optuna

    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    trials = {t.number: t for t in trial.study.get_trials(deepcopy=False)}
    number, seen = trial.number, set()
    while number in trials and number not in seen:
        seen.add(number)
        frozen = trials[number]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            first = retry.retried_trial_number(frozen)
        if first is not None:
            return int(first)
        previous = frozen.user_attrs.get("retry_of")
        if not isinstance(previous, int):
            break
        number = previous
    return number


def backup_folder(config, trial) -> Path | None:
    """``LIB/.backups/<entry of the original trial>``, the trial's training backup; None without the library folder (another machine).

    A trial that is no retry starts afresh: a stale folder of its name is removed.
    """
    from zoo.library import entry_name

    if not os.path.isdir(config.library):
        return None
    original = original_trial(trial)
    folder = Path(config.library) / BACKUPS_FOLDER / entry_name(config.study, original)
    if original == trial.number and folder.exists():
        _remove_backup(folder)
    return folder


def _remove_backup(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):  # only when empty: other trials' backups stay
        folder.parent.rmdir()


def _log_callbacks(config, number: int) -> list:
    """The CSVLogger and TensorBoard callbacks of trial ``number``, writing into ``LIB/runs/<entry>/`` (emptied first)."""
    import shutil

    import keras

    from zoo.library import entry_name

    folder = Path(config.library) / RUNS_FOLDER / entry_name(config.study, number)
    if folder.exists():  # a stale folder: the study was started again after its storage was deleted
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    # the files and settings every entry's recipe lists (csv_logger, tensorboard), as ZooClassifier(log_dir=...) writes them
    return [keras.callbacks.CSVLogger(str(folder / "training.csv")), keras.callbacks.TensorBoard(str(folder / "tensorboard"), histogram_freq=1)]


def _pruning_callback(trial, key: str):
    """A Keras callback reporting the slice metric ``key`` to ``trial`` every epoch, raising ``TrialPruned``."""
    import keras
    import optuna

    class _Pruning(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(key)
            if value is None or not math.isfinite(value):
                return
            trial.report(float(value), step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch + 1} ({key} {value:.4f})")

    return _Pruning()

