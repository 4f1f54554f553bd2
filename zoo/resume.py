"""Resumable training: a fit's state backed up after every epoch, restored when the same fit starts again.

``ZooClassifier.fit(X, y, backup_dir=DIR)`` (``zoo train`` and every search
trial use it) keeps in ``DIR`` what a fit killed mid-way (even by SIGKILL)
needs to go on from its last completed epoch and end as an uninterrupted fit
would, with the planned number of epochs and the whole ``history_``.

Decisions:

- Weights, optimizer state and epoch counter: Keras's
  ``BackupAndRestore(DIR, save_freq="epoch", double_checkpoint=True,
  delete_checkpoint=False)``. Its ``latest.weights.h5`` holds the model's
  weights and the optimizer's variables, the iteration counter and the
  learning rate among them (checked with Keras 3.15): a ``ReduceLROnPlateau``
  rate carries on, and so does a step-based cosine schedule, which reads the
  counter. Keras restores the epoch through ``training_metadata.json``.
- What Keras does not restore is written by :class:`TrainingBackup`'s second
  callback into ``state.json`` after every epoch (``kze.files.atomic_path``):
  the history so far; ``EarlyStopping``'s ``best``, ``wait``,
  ``best_epoch``, ``stopped_epoch`` and its best weights (``best-<epoch>.npz``,
  written when the best changes); ``ReduceLROnPlateau``'s ``best``, ``wait``
  and cooldown; ``ModelCheckpoint``'s ``best``; whether early stopping ended
  the training (a fit killed after stopping early does not train on: the
  callback sets the model's ``_initial_epoch`` to ``epochs``, the attribute
  ``BackupAndRestore`` itself sets, which Keras reads after
  ``on_train_begin``). It runs
  after ``BackupAndRestore`` in the callback list, so ``state.json`` is the
  commit point of an epoch.
- Trust and torn writes: ``state.json`` records the sha256 of the weights
  file and of the best-weights file; nothing is loaded before its digest
  matches. A kill while Keras rewrites ``latest.weights.h5`` leaves the
  previous epoch's copy (``.bkp``, which ``double_checkpoint`` keeps), and that
  copy matches the record; it is put back and Keras's epoch file rewritten
  from the record. A backup that matches nothing is refused, never guessed at.
- Identity: ``state.json`` holds a fingerprint (sha256 of the estimator's
  parameters, except ``verbose`` and ``log_dir``, and of the data through
  ``kze.data.data_hash_pair``). A folder whose fingerprint differs, or a
  non-empty folder without ``state.json``, is refused with a
  ``BackupRefusedError`` (a ``ValueError``):
  another training is never resumed silently, and no foreign folder is
  deleted. A non-integer ``random_state`` enters the fingerprint as its type;
  the seed drawn by the first fit is recorded and reused by the resumed one.
- The folder is removed after a fit that succeeded (by the estimator, once
  ``fit`` is done, not by ``BackupAndRestore`` at the end of ``model.fit``:
  a kill while the slice is scored still resumes). A fit that raises keeps it.
- A resumed fit is not bit-identical to an uninterrupted one: batch order
  and dropout draws after the restart start again from the seed.
- ``state.json`` also records ``seconds``: the training time of the epochs
  backed up, summed over every process that ran them (the time of an epoch a
  kill cut short is lost with it), so a resumed training reports the time all
  its epochs took, not only the last process's (:meth:`TrainingBackup.seconds_before`).
- ``CSVLogger`` appends after a restart; rows of epochs the backup does not
  hold (run after the last backup) are dropped first (:func:`trim_csv`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

from kze.files import atomic_path, atomic_write_text, sha256_file

__all__ = ["STATE_FILE", "BackupRefusedError", "TrainingBackup", "fingerprint", "trim_csv"]

STATE_FILE = "state.json"
_FORMAT = 1
_WEIGHTS = "latest.weights.h5"  # BackupAndRestore's file names
_METADATA = "training_metadata.json"
_SAVED = {  # the state of the built-in callbacks that Keras resets in on_train_begin and never restores
    "EarlyStopping": ("wait", "stopped_epoch", "best", "best_epoch"),
    "ReduceLROnPlateau": ("wait", "cooldown_counter", "best"),
    "ModelCheckpoint": ("best",),
}


class BackupRefusedError(ValueError):
    """A backup folder this fit cannot resume from: another training's, not a backup, or files that do not match their record."""


def fingerprint(params: dict, data: str) -> str:
    """sha256 identifying one training: the estimator's parameters (JSON) and the data's hash."""
    text = json.dumps(params, sort_keys=True, default=repr)
    return hashlib.sha256(f"{text}\0{data}".encode()).hexdigest()


class TrainingBackup:
    """The backup folder of one fit (see the module docstring).

    Parameters
    ----------
    folder : path
        The folder, created if missing; empty or holding this fit's backup.
    fingerprint : str
        What identifies the fit (:func:`fingerprint`).
    """

    def __init__(self, folder, fingerprint: str):
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.state = None
        self._before = ({}, 0, 0.0)  # history, epochs and training seconds of the interrupted fit(s), as opened

    def open(self, seed: int) -> None:
        """Check the folder and read its verified state (``self.state``); a fresh backup records ``seed``.

        After it, ``self.state["seed"]`` is the seed to fit with (the first
        fit's) and :meth:`epochs_before` the epochs already done.

        Raises
        ------
        BackupRefusedError
            A ``ValueError``: for a folder holding another training's backup,
            something else, or a backup whose files do not match their record.
        """
        state_file = self.folder / STATE_FILE
        if not state_file.is_file():
            if self.folder.exists() and (not self.folder.is_dir() or any(not _temporary(p) for p in self.folder.iterdir())):
                raise BackupRefusedError(f"backup_dir {self.folder} is not empty and holds no training backup ({STATE_FILE}); "
                                 "give an empty or new folder")
            return self._start(seed)
        state = json.loads(state_file.read_text())
        if not isinstance(state, dict) or state.get("format") != _FORMAT or state.get("fingerprint") != self.fingerprint:
            raise BackupRefusedError(f"backup_dir {self.folder} holds the backup of another training (other parameters or data); "
                             "it is not resumed: remove the folder to start over, or give another one")
        if state["epoch"] == 0:
            for name in (_WEIGHTS, _METADATA, _WEIGHTS + ".bkp", _METADATA + ".bkp"):
                (self.folder / name).unlink(missing_ok=True)
            self.state = state
            return
        self._verify_weights(state)
        best = state.get("best_weights")
        if best is not None:
            path = self.folder / best["file"]
            if Path(best["file"]).name != best["file"] or not path.is_file() or sha256_file(path) != best["sha256"]:
                raise BackupRefusedError(f"backup_dir {self.folder}: {best['file']} does not match its record; remove the folder to start over")
            with np.load(path, allow_pickle=False) as arrays:
                state["best_weights_arrays"] = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
        self.state = state
        self._before = ({k: list(v) for k, v in state["history"].items()}, int(state["epoch"]), float(state.get("seconds", 0.0)))

    def _start(self, seed: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state = {"format": _FORMAT, "fingerprint": self.fingerprint, "seed": int(seed), "epoch": 0, "stopped": False,
                      "history": {}, "callbacks": {}, "weights_sha256": None, "best_weights": None, "seconds": 0.0}
        self._write(self.state)

    def _verify_weights(self, state: dict) -> None:
        """Make ``latest.weights.h5`` the verified weights of the recorded epoch (its ``.bkp`` after a torn save), and Keras's epoch file say so."""
        latest = self.folder / _WEIGHTS
        backup = self.folder / (_WEIGHTS + ".bkp")
        if not (latest.is_file() and sha256_file(latest) == state["weights_sha256"]):
            if not (backup.is_file() and sha256_file(backup) == state["weights_sha256"]):
                raise BackupRefusedError(f"backup_dir {self.folder}: no weights file matches the record of epoch {state['epoch']}; remove the folder to start over")
            shutil.copyfile(backup, latest)
        atomic_write_text(self.folder / _METADATA, json.dumps({"epoch": state["epoch"], "batch": 0}))

    def _write(self, state: dict) -> None:
        record = {k: v for k, v in state.items() if k != "best_weights_arrays"}
        atomic_write_text(self.folder / STATE_FILE, json.dumps(record))

    def callbacks(self, tracked: list) -> list:
        """Keras's ``BackupAndRestore`` and the callback saving and restoring the rest; last of the built-in callbacks.

        ``tracked``: the fit's ``EarlyStopping``, ``ReduceLROnPlateau`` and
        ``ModelCheckpoint`` callbacks, whose state is kept.
        """
        import keras

        keras_backup = keras.callbacks.BackupAndRestore(str(self.folder), save_freq="epoch", double_checkpoint=True, delete_checkpoint=False)
        return [keras_backup, _state_callback(self, tracked)]

    def history(self, history: dict) -> dict:
        """The epochs backed up before this process started, followed by ``history`` (this process's epochs)."""
        before = self._before[0]
        keys = list(before) + [k for k in history if k not in before]
        return {k: [float(v) for v in before.get(k, [])] + [float(v) for v in history.get(k, [])] for k in keys}

    def epochs_before(self) -> int:
        """Epochs completed before this process started (0 for a fresh fit)."""
        return self._before[1]

    def seconds_before(self) -> float:
        """Training seconds of the epochs completed before this process started (0.0 for a fresh fit)."""
        return self._before[2]

    def remove(self) -> None:
        """Delete the backup (after a successful fit)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _state_callback(backup: TrainingBackup, tracked: list):
    import keras

    class _TrainingState(keras.callbacks.Callback):
        """Restores the tracked callbacks' state on train begin; writes it with the history into ``state.json`` after every epoch."""

        def on_train_begin(self, logs=None):
            state = backup.state
            self.started = time.perf_counter()
            self.history = {k: list(v) for k, v in state["history"].items()}
            if state["epoch"] == 0:
                return
            for callback in tracked:
                for name, value in state["callbacks"].get(type(callback).__name__, {}).items():
                    setattr(callback, name, value)
                if isinstance(callback, keras.callbacks.EarlyStopping) and state.get("best_weights_arrays") is not None:
                    callback.best_weights = state["best_weights_arrays"]
            if state["stopped"]:  # early stopping ended the training before the kill: no more epochs (Keras reads this after on_train_begin)
                self.model._initial_epoch = self.params["epochs"]

        def on_epoch_end(self, epoch, logs=None):
            state = backup.state
            for key, value in (logs or {}).items():
                self.history.setdefault(key, []).append(float(value))
            saved = {}
            for callback in tracked:
                saved[type(callback).__name__] = {name: _plain(getattr(callback, name, None)) for name in _SAVED[type(callback).__name__]}
                if isinstance(callback, keras.callbacks.EarlyStopping) and callback.best_weights is not None:
                    if state["best_weights"] is None or callback.best_epoch == epoch:
                        state["best_weights"] = _write_best(backup.folder, epoch, callback.best_weights)
            state.update(epoch=epoch + 1, stopped=bool(self.model.stop_training), history=self.history, callbacks=saved,
                         weights_sha256=sha256_file(backup.folder / _WEIGHTS),
                         seconds=round(backup.seconds_before() + time.perf_counter() - self.started, 1))
            backup._write(state)
            for old in backup.folder.glob("best-*.npz"):
                if state["best_weights"] is None or old.name != state["best_weights"]["file"]:
                    old.unlink(missing_ok=True)

    return _TrainingState()


def _temporary(path: Path) -> bool:
    """Whether ``path`` is a temporary file of ``kze.files.atomic_path`` (left by a kill while writing)."""
    return path.name.startswith(".") and ".part" in path.name


def _write_best(folder: Path, epoch: int, weights: list) -> dict:
    name = f"best-{epoch:05d}.npz"
    with atomic_path(folder / name, ".npz") as tmp:
        np.savez(tmp, *[np.asarray(w) for w in weights])
    return {"file": name, "sha256": sha256_file(folder / name)}


def _plain(value):
    if isinstance(value, (np.generic, np.ndarray)):
        return float(value)
    if hasattr(value, "numpy"):
        return float(value.numpy())
    return value


def trim_csv(path, epochs: int) -> None:
    """Keep the header and the rows of the first ``epochs`` epochs of a ``CSVLogger`` file (rows logged after the last backup go)."""
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    if not lines:
        return
    kept = [lines[0]]
    for line in lines[1:]:
        with contextlib.suppress(ValueError):
            if int(line.split(",", 1)[0]) < epochs:
                kept.append(line)
    atomic_write_text(path, "".join(kept))
