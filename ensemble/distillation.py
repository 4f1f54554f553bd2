"""Distillation: train one student model on an ensemble's (or any classifier's) soft labels.

>>> import ensemble, zoo
>>> student = ensemble.distill("ensembles/fashion_mnist", X_train,                    # doctest: +SKIP
...                            zoo.ZooClassifier("bn_cnn", epochs=20), temperature=2.0)
>>> student.distilled_from_["teacher_sha256"]                                         # doctest: +SKIP

Decisions:

- The teacher is any fitted estimator with ``predict_proba`` (a loaded
  ensemble, a :class:`~ensemble.BlendClassifier` or
  :class:`~ensemble.StackClassifier`, any scikit-learn classifier), or the
  folder of an ensemble saved with :func:`ensemble.save`. Its probabilities
  are computed with :func:`ensemble.predict_chunked`, ``chunk_size`` rows at
  a time, so a large ``X`` (a memory-mapped ``.npy`` file, a text file of one
  review per line) never has all the teacher's intermediate outputs in memory;
  the soft labels themselves (``n`` by ``k`` floats) are held.
- Soft labels are the teacher's probabilities at a temperature ``T``:
  ``p ** (1 / T)``, renormalised per row (:func:`soften`), i.e. a softmax of
  the teacher's log-probabilities divided by ``T`` (Hinton et al.'s
  temperature, applied to probabilities since a teacher such as a calibrated
  blend has no single logit layer). ``T = 1`` keeps them, ``T > 1`` softens,
  ``T < 1`` sharpens. It is computed in log space, so a small ``T`` cannot
  underflow a row to zeros. Columns follow the teacher's ``classes_``.
- A student says it learns from soft labels with the class attribute
  ``accepts_soft_targets = True``: its ``fit(X, P)`` takes a 2-D float array
  of class probabilities, rows summing to 1, columns for classes
  ``0 .. k - 1``, and it has ``predict_proba``. :class:`zoo.ZooClassifier` is
  such a student; any class can be (a duck-typed mark, since ``ensemble``
  does not import ``zoo``). Anything else is refused with a ``TypeError``
  before the teacher predicts, rather than tried: a scikit-learn classifier
  given a 2-D ``y`` would fail, or worse, fit a multi-output problem.
- The student given is fitted in place and returned (as ``fit`` returns
  ``self``). Its classes are ``0 .. k - 1``: column ``j`` of its
  ``predict_proba`` is the teacher's ``classes_[j]``, recorded in the
  provenance.
- Provenance is the student's ``distilled_from_``, a JSON-able dict:
  ``teacher`` (the teacher's class name), ``teacher_sha256`` (the sha256 of
  the saved ensemble's ``manifest.json``, which lists the sha256 of every
  other file, so it names the bundle's exact content; found through
  :func:`ensemble.persistence.read_manifest` when the teacher is given as a
  folder, else the ``teacher_sha256`` argument, else None), ``temperature``,
  ``n_examples``, ``data_sha256`` (the one data digest,
  :func:`ensemble.chunked.data_hash` = ``kze.data.data_hash``, of ``X``) and
  ``classes`` (the teacher's classes, in the soft labels' column order).
"""

from __future__ import annotations

import numbers
import os

import numpy as np

from ensemble.chunked import (
    TextLines,
    data_hash,
    open_input,
    predict_chunked,
    read_lines,
)
from kze.data import DEFAULT_CHUNK_SIZE

__all__ = ["distill", "soften"]


def soften(proba, temperature=1.0):
    """Class probabilities at a temperature: ``p ** (1 / T)``, renormalised per row.

    Parameters
    ----------
    proba : array-like of shape (n, k)
        Probabilities, rows summing to 1 (they are renormalised).
    temperature : float, default=1.0
        Positive: 1 keeps ``proba``, above 1 softens it towards uniform,
        below 1 sharpens it towards the argmax.

    Returns
    -------
    ndarray of float64, shape (n, k)

    Raises
    ------
    ValueError
        The temperature is not a positive finite number, or ``proba`` is not
        a 2-D array of finite non-negative values with positive row sums.
    """
    temperature = _check_temperature(temperature)
    P = np.asarray(proba, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] < 2:
        raise ValueError(f"expected probabilities of shape (n, n_classes) with at least 2 classes, got shape {P.shape}")
    if not np.isfinite(P).all() or (P < 0).any() or (P.sum(axis=1) <= 0).any():
        raise ValueError("probabilities must be finite and non-negative, with a positive sum in every row")
    with np.errstate(divide="ignore"):
        logits = np.log(P / P.sum(axis=1, keepdims=True)) / temperature
    logits -= logits.max(axis=1, keepdims=True)  # every row has a positive entry: its max is finite
    Q = np.exp(logits)
    return Q / Q.sum(axis=1, keepdims=True)


def distill(teacher, X, student, *, temperature=1.0, teacher_sha256=None, chunk_size=DEFAULT_CHUNK_SIZE,
            fit_params=None, trusted=None, progress=None):
    """Train ``student`` on ``teacher``'s soft labels for ``X``.

    Parameters
    ----------
    teacher : fitted estimator with ``predict_proba``, or path
        The model to imitate; a path is the folder of an ensemble saved with
        :func:`ensemble.save`, loaded (files checked) and its manifest's
        sha256 recorded.
    X : array, numpy.memmap, dask array or path
        The inputs to distil on, as the teacher and the student take them
        (e.g. uint8 images, raw strings). A ``.npy`` path is read
        memory-mapped; another path is a text file of one example per line
        (see :class:`ensemble.chunked.TextLines`).
    student : estimator
        Unfitted; it must have ``predict_proba`` and the class attribute
        ``accepts_soft_targets = True`` (its ``fit(X, P)`` takes class
        probabilities), e.g. ``zoo.ZooClassifier``. Fitted in place.
    temperature : float, default=1.0
        Soft labels are ``p ** (1 / temperature)``, renormalised (:func:`soften`).
    teacher_sha256 : str, default=None
        The sha256 of the teacher's saved form, to record when ``teacher`` is
        an estimator (e.g. the ``manifest.json`` digest of the bundle it was
        loaded from). With a path it is checked against the one found.
    chunk_size : int, default=10000
        Rows the teacher predicts at a time.
    fit_params : dict, default=None
        Further keyword arguments of ``student.fit`` (e.g. ``callbacks``).
    trusted : list of str, default=None
        Passed to :func:`ensemble.load` for a teacher given as a path.
    progress : bool, default=None
        A progress bar over the teacher's predictions (see :func:`ensemble.predict_chunked`).

    Returns
    -------
    student
        Fitted, with ``distilled_from_`` (the module's docstring lists its keys).

    Raises
    ------
    TypeError
        The student cannot learn from soft labels, or the teacher has no ``predict_proba``.
    ValueError
        A bad temperature, a ``teacher_sha256`` that contradicts the saved
        teacher's, or teacher outputs that are not probabilities.
    """
    temperature = _check_temperature(temperature)
    _check_student(student)
    if isinstance(teacher, (str, os.PathLike)):
        teacher, found = _load_teacher(teacher, trusted)
        if teacher_sha256 is not None and teacher_sha256 != found:
            raise ValueError(f"teacher_sha256={teacher_sha256!r}, but the saved teacher's manifest has sha256 {found}")
        teacher_sha256 = found
    elif teacher_sha256 is not None and not (isinstance(teacher_sha256, str) and len(teacher_sha256) == 64):
        raise ValueError(f"teacher_sha256 must be a sha256 hex digest (64 characters), got {teacher_sha256!r}")
    if not callable(getattr(teacher, "predict_proba", None)):
        raise TypeError(f"the teacher ({type(teacher).__name__}) has no predict_proba(); distill needs a fitted classifier "
                        "(a keras.Model can be wrapped in ensemble.KerasMember)")

    X = open_input(X)
    proba = predict_chunked(teacher, X, "predict_proba", chunk_size=chunk_size, progress=progress)
    classes = getattr(teacher, "classes_", None)
    if classes is not None and len(classes) != proba.shape[1]:
        raise ValueError(f"the teacher gives {proba.shape[1]} probability columns for its {len(classes)} classes_")
    targets = soften(proba, temperature)
    fit_X = np.array(read_lines(X.path), dtype=object) if isinstance(X, TextLines) else X
    student.fit(fit_X, targets, **(fit_params or {}))
    student.distilled_from_ = {
        "teacher": type(teacher).__name__,
        "teacher_sha256": teacher_sha256,
        "temperature": temperature,
        "n_examples": len(targets),
        "data_sha256": data_hash(X),
        "classes": _plain_list(classes if classes is not None else np.arange(proba.shape[1])),
    }
    return student


def _check_temperature(temperature) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not (0 < temperature < np.inf):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    return float(temperature)


def _check_student(student) -> None:
    """A ``TypeError`` unless ``student`` declares it learns from soft labels and predicts probabilities."""
    name = type(student).__name__
    if isinstance(student, type):
        raise TypeError(f"student must be an estimator instance, got the class {student.__name__}")
    if getattr(type(student), "accepts_soft_targets", False) is not True:
        raise TypeError(
            f"{name} cannot be a distillation student: distill needs a student whose fit(X, P) learns from soft targets "
            "(P: a 2-D float array of class probabilities, rows summing to 1, one column per teacher class) and whose "
            "class declares it with accepts_soft_targets = True, such as zoo.ZooClassifier"
        )
    if not callable(getattr(student, "fit", None)) or not callable(getattr(student, "predict_proba", None)):
        raise TypeError(f"{name} cannot be a distillation student: it needs fit(X, P) and predict_proba(X)")


def _load_teacher(path, trusted):
    """The saved ensemble at ``path`` and the sha256 of the manifest of the version loaded."""
    from ensemble.persistence import MANIFEST, load, read_manifest
    from kze.files import sha256_file

    _, folder = read_manifest(path)  # the live version folder: loaded by itself, so its manifest is the one hashed
    digest = sha256_file(folder / MANIFEST)
    teacher = load(folder, trusted=trusted)
    if sha256_file(folder / MANIFEST) != digest:  # a version folder is written once; this would be tampering
        raise ValueError(f"{folder / MANIFEST} changed while the teacher was loaded")
    return teacher, digest


def _plain_list(values) -> list:
    """``values`` as a JSON-able list (NumPy scalars as Python ones)."""
    return np.asarray(values).tolist()


def distill_into(teacher, X, student, out, *, name, dataset=None, temperature=1.0, epochs=None, seed=0, trusted=None,
                 progress=None, command=None, backup_dir=None):
    """Distil a saved ensemble into a student named by a plug-in, and save it where the plug-in saves students.

    What ``ensemble distill DIR --student NAME --out OUT`` does: the student
    comes from :func:`ensemble.sources.make_student` (the zoo registers its
    recipes and builders, saved as model-library entries that record
    ``distilled_from``).

    Parameters
    ----------
    teacher : path
        The saved ensemble's folder.
    X : array
        The inputs to distil on (usually the training split the members saw).
    student : str
        A student name a plug-in resolves (a zoo recipe such as ``"fashion_mnist_bn_cnn"``, or a builder).
    out : path
        Where the plug-in writes the student (for the zoo: a model library folder).
    name : str
        The student's name there.
    dataset : str, optional
        The registered dataset ``X`` comes from, recorded with the student.
    temperature, trusted, progress
        As for :func:`distill`.
    epochs : int, optional
        Override the student's number of epochs.
    seed : int, default=0
        The student's random seed.
    command : str, optional
        The command line recorded with the student (the command-line tool
        passes its own, so that it reproduces the student); by default one
        naming the teacher, student, temperature, epochs and seed.
    backup_dir : path, optional
        Folder the student's training backs itself up into after every epoch
        (passed to the student's ``fit``, as ``zoo.ZooClassifier`` takes it):
        the same call made again after a crash or a kill resumes from the
        last completed epoch. The teacher predicts again on resumption; its
        soft labels must be the same for the backup to be accepted.

    Returns
    -------
    dict
        What the plug-in wrote (``name`` and more), plus ``seconds`` (the
        student's training time, with that of the epochs a resumed backup held,
        as the student reports it in ``resumed_seconds_``) and ``distilled_from``.
    """
    import time

    from ensemble.sources import make_student

    model, save = make_student(student, epochs=epochs, seed=seed, examples=len(X))
    started = time.perf_counter()
    fit_params = None if backup_dir is None else {"backup_dir": backup_dir}
    distill(teacher, X, model, temperature=temperature, trusted=trusted, progress=progress, fit_params=fit_params)
    seconds = time.perf_counter() - started
    if command is None:
        command = f"ensemble distill {teacher} --student {student} --temperature {temperature} --seed {seed}"
        command += "" if epochs is None else f" --epochs {epochs}"
    record = save(model, out, name=name, dataset=dataset, seconds=seconds, examples=len(X), command=command)
    seconds += getattr(model, "resumed_seconds_", 0.0)  # a student resumed from its backup: the epochs run before
    return {**record, "seconds": round(seconds, 1), "distilled_from": model.distilled_from_}
