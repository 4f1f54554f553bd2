"""A model library: every completed search trial as an entry of ``LIB/registry.yaml``.

A library uses the zoo's own registry schema (``format_version: 2``): each
entry holds the builder, its hyperparameters, the recipe it was trained with,
the metrics of the early-stopping slice the search scored it on, the sha256 of
its ``LIB/weights/<name>.weights.h5`` (and vocabulary) file, the library
versions, and ``search: {study, trial, objective}``, the trial that produced
it; ``logs: runs/<entry>`` names its CSV and TensorBoard logs (relative to
the library) when the search wrote them. Entries are named
``<study>_t<trial number>`` (``fashion_mnist_bn_cnn_t0007``); a trial of a
snapshot ensemble (``snapshots=M > 1``, :func:`add_snapshot_trials`) also
writes its earlier snapshots as ``<study>_t<trial number>_s<k>``, ``k < M``.
``zoo.load(name, registry=LIB)`` loads them, checking the sha256, like the
shipped models.

Files are written atomically and the registry is updated under a lock, so
worker processes of one search, or several searches, can share a library. A
trial trained elsewhere (a Dask worker) is prepared there
(:func:`prepare_trial`) and written here (:func:`write_trial`), its files
checked against the sha256 the entry records.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

from zoo.registry import BUILDER_KINDS, Registry

__all__ = ["add_snapshot_trials", "add_trial", "drop_trial", "entry_name", "find_trial", "float32_model", "listing", "open_library", "prepare_trial", "ranked", "snapshot_name", "split_metrics", "write_model",
           "write_trial"]


def open_library(folder: str | os.PathLike) -> Registry:
    """The library's registry in ``folder``, created (empty, ``format_version: 2``) if missing."""
    return Registry.create(Path(folder))


def entry_name(study: str, number: int) -> str:
    """The library entry name of trial ``number`` of ``study``."""
    return f"{study}_t{number:04d}"


def find_trial(library: Registry, study: str, number: int) -> dict | None:
    """The entry that trial ``number`` of ``study`` wrote, or None."""
    name = entry_name(study, number)
    if name not in library:
        return None
    entry = library.entry(name)
    search = entry.get("search", {})
    return entry if (search.get("study"), search.get("trial")) == (study, number) else None


def ranked(library: Registry, pattern: str = "*") -> list[dict]:
    """Entries matching ``pattern``, best search objective first; entries without one come last."""
    entries = [library.entry(n) for n in library.names(pattern)]

    def key(entry):
        objective = entry.get("search", {}).get("objective")
        if objective is None:
            return (1, 0.0)
        return (0, -objective["value"] if objective["direction"] == "maximize" else objective["value"])

    return sorted(entries, key=key)


def listing(library: Registry, pattern: str = "*", dataset: str | None = None) -> list[dict]:
    """``zoo list --library``'s rows: name, builder, dataset, study, trial, objective, value, parameters; best first."""
    rows = []
    for e in ranked(library, pattern):
        if dataset is not None and e.get("dataset") != dataset:
            continue
        search = e.get("search", {})
        objective = search.get("objective", {})
        rows.append({"name": e["name"], "builder": e["builder"], "dataset": e.get("dataset"), "study": search.get("study"),
                     "trial": search.get("trial"), "objective": objective.get("name"), "value": objective.get("value"),
                     "parameters": e["parameters"]})
    return rows


def add_trial(library: Registry, clf, **record) -> dict:
    """Write a fitted :class:`zoo.ZooClassifier`'s weights and its entry into the library.

    ``record`` holds the keyword arguments of :func:`prepare_trial`. Returns the entry written.
    """
    entry = prepare_trial(clf, library.weights_dir, **record)
    library.put(entry)
    return entry


def snapshot_name(trial_entry: str, index: int, of: int) -> str:
    """The entry of snapshot ``index`` (1-based) of ``of``: the trial's own entry for the last, ``<entry>_s<index>`` before it."""
    return trial_entry if index == of else f"{trial_entry}_s{index}"


def add_snapshot_trials(library: Registry, clf, *, study: str, trial: int, objective: dict, hyperparameters: dict, seconds: float,
                        examples: int, dataset: str | None = None, data: dict | None = None, subset: int | None = None,
                        logs: str | None = None) -> list[dict]:
    """Write every snapshot of a search trial's fitted ``clf`` (``snapshots > 1``) as its own library entry.

    Takes the keyword arguments of :func:`prepare_trial`. The last snapshot
    (``clf.model_``) is the trial's entry ``<study>_tNNNN``, put last
    (``find_trial`` and ``zoo.search.trials.reap`` take it as the sign that
    the trial is written); the earlier ones are ``<study>_tNNNN_s<k>``. Each
    entry records ``snapshot: {index, of, epoch}``, its own slice metrics, and
    its own slice score as ``search.objective``'s value, so selection ranks
    them; weights are written once each, by :func:`write_model`. See
    ``zoo.snapshots`` for the decisions.

    Parameters
    ----------
    library : Registry
        The library's registry.
    clf : ZooClassifier
        Fitted with ``snapshots > 1`` and an early-stopping slice.

    Returns
    -------
    list of dict
        The entries written, snapshot 1 first.
    """
    import optuna

    trial_entry = entry_name(study, trial)
    key = objective["name"].removeprefix("early_stopping_")
    entries = []
    for member in clf.snapshot_estimators():
        snapshot = member.snapshot_
        scores = {k: round(float(v), 6) for k, v in member.early_stopping_scores_.items()}
        own = {**objective, "value": scores[key]} if key in scores else dict(objective)
        search = {"study": study, "trial": int(trial), "objective": own, "hyperparameters": hyperparameters}
        entry = write_model(member, library.weights_dir, snapshot_name(trial_entry, snapshot["index"], snapshot["of"]), dataset=dataset,
                            seconds=seconds, examples=examples, metrics={"early_stopping": scores}, subset=subset, search=search,
                            data=data, logs=logs, versions={"optuna": optuna.__version__})
        entry["snapshot"] = dict(snapshot)
        entries.append(entry)
    for entry in entries:  # the trial's own entry (the last snapshot) last
        library.put(entry)
    return entries


def prepare_trial(
    clf,
    folder: str | os.PathLike,
    *,
    study: str,
    trial: int,
    objective: dict,
    hyperparameters: dict,
    seconds: float,
    examples: int,
    dataset: str | None = None,
    data: dict | None = None,
    subset: int | None = None,
    logs: str | None = None,
) -> dict:
    """Save a fitted :class:`zoo.ZooClassifier`'s weights (and vocabulary) into ``folder``; return its entry.

    The files are written atomically, named as in a library's ``weights/``
    folder; the entry references them with their sha256. A search on a cluster
    prepares trials on its workers and sends files and entry to
    :func:`write_trial`.

    Parameters
    ----------
    clf : ZooClassifier
        Fitted, with an early-stopping slice.
    folder : path
        Where to write the files (a library's ``weights_dir``, or a scratch folder).
    study, trial : str, int
        The Optuna study and trial number that produced it.
    objective : dict
        ``{"name", "value", "direction"}``.
    hyperparameters : dict
        The values the trial drew from the search space.
    seconds : float
        Training time in this process; the training time of epochs resumed
        from a backup (``clf.resumed_seconds_``) is added to it.
    examples : int
        Number of examples given to ``fit`` (the early-stopping slice included).
    dataset : str, optional
        The zoo dataset it was trained on (None for a user's data).
    data : dict, optional
        For a user's data: ``{"source", "examples", "sha256"}``.
    subset : int, optional
        The ``subset`` of a smoke run.
    logs : str, optional
        The trial's log folder, relative to the library (``runs/<entry>``).

    Returns
    -------
    dict
        The library entry.
    """
    import optuna

    search = {"study": study, "trial": int(trial), "objective": dict(objective), "hyperparameters": hyperparameters}
    metrics = {"early_stopping": {k: round(float(v), 6) for k, v in clf.early_stopping_scores_.items()}}
    return write_model(clf, folder, entry_name(study, trial), dataset=dataset, seconds=seconds, examples=examples,
                       metrics=metrics, subset=subset, search=search, data=data, logs=logs,
                       versions={"optuna": optuna.__version__})


def write_model(
    clf,
    folder: str | os.PathLike,
    name: str,
    *,
    dataset: str | None,
    seconds: float,
    examples: int,
    metrics: dict,
    subset: int | None = None,
    command: str | None = None,
    search: dict | None = None,
    data: dict | None = None,
    logs: str | None = None,
    versions: dict | None = None,
    model=None,
    distilled_from: dict | None = None,
) -> dict:
    """Write a fitted :class:`zoo.ZooClassifier`'s weights (and vocabulary) into ``folder``; return its registry entry.

    The one writer of trained models: ``zoo train`` (:func:`zoo.training.train`)
    and every search trial (:func:`prepare_trial`) call it. The saved model is
    the float32 one ``zoo.load`` rebuilds, without optimizer state; files are
    written atomically and referenced with their sha256. The caller puts the
    entry into a registry.

    Parameters
    ----------
    clf : ZooClassifier
        Fitted.
    folder : path
        A registry's ``weights_dir`` (or a scratch folder).
    name : str
        The entry name (files are ``<name>.weights.h5``, ``<name>.vocab.txt``).
    dataset : str or None
        The zoo dataset it was trained on (None for a user's data).
    seconds : float
        Training time in this process; the training time of epochs resumed
        from a backup (``clf.resumed_seconds_``) is added to it.
    examples : int
        Examples given to ``fit``, its early-stopping slice included.
    metrics : dict
        The entry's ``metrics`` (splits or the early-stopping slice -> scores).
    subset : int, optional
        The ``subset`` of a smoke run.
    command : str, optional
        The command that trained it (``training.command``).
    search : dict, optional
        ``{"study", "trial", "objective", "hyperparameters"}`` of a search trial.
    data : dict, optional
        For a user's data: ``{"source", "examples", "sha256"}``.
    logs : str, optional
        Its log folder, relative to the library.
    versions : dict, optional
        Library versions recorded beside Keras, TensorFlow and NumPy.
    model : keras.Model, optional
        ``float32_model(clf)`` if the caller already built it (to measure it).
    distilled_from : dict, optional
        A distilled student's provenance (``ensemble.distill``'s
        ``distilled_from_``: the teacher's sha256, the temperature, the data).

    Returns
    -------
    dict
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from kze.files import atomic_path, atomic_write_text, sha256_file
    from zoo import datasets
    from zoo.estimator import plain_value

    folder = Path(folder)
    spec = clf.spec_
    bare = float32_model(clf) if model is None else model
    folder.mkdir(parents=True, exist_ok=True)
    weights_file = f"{name}.weights.h5"
    with atomic_path(folder / weights_file, suffix=".weights.h5") as tmp:
        bare.save_weights(tmp)

    text = BUILDER_KINDS[spec["builder"]] == "text"
    features = not text and len(spec["params"]["input_shape"]) == 1
    if text:
        task, input_spec = "text-classification", {"shape": [], "dtype": "string"}
    elif features:
        task, input_spec = "tabular-classification", {"shape": list(spec["params"]["input_shape"]), "dtype": "float32"}
    else:
        task, input_spec = "image-classification", {"shape": list(spec["params"]["input_shape"]), "dtype": "uint8"}
    if dataset is not None:
        names = datasets.class_names(dataset)
        classes = [names[int(c)] for c in clf.classes_]
    else:
        classes = plain_value(list(clf.classes_))

    entry = {"name": name, "task": task}
    if dataset is not None:
        entry["dataset"] = dataset
    entry.update({"builder": spec["builder"], "params": spec["params"], "input": input_spec, "classes": classes,
                  "weights": {"file": weights_file, "sha256": sha256_file(folder / weights_file)}})
    if text:
        vocab_file = f"{name}.vocab.txt"
        atomic_write_text(folder / vocab_file, "".join(t + "\n" for t in clf.vocabulary_))
        entry["vocabulary"] = {"file": vocab_file, "sha256": sha256_file(folder / vocab_file)}
    es_examples = spec["recipe"]["early_stopping_size"]
    entry.update({"parameters": int(bare.count_params()), "metrics": metrics, "recipe": spec["recipe"]})
    if search is not None:
        entry["search"] = {**search, "hyperparameters": plain_value(search.get("hyperparameters", {}))}
    entry["training"] = {
        "epochs_run": len(clf.history_["loss"]),
        "best_epoch": int(clf.best_epoch_),
        "seconds": round(seconds + getattr(clf, "resumed_seconds_", 0.0), 1),
        "fit_examples": int(examples) - es_examples,
        "early_stopping_examples": es_examples,
        "subset": subset,
        "date": _dt.date.today().isoformat(),
    }
    if command is not None:
        entry["training"]["command"] = command
    if data is not None:
        entry["data"] = dict(data)
    if logs is not None:
        entry["logs"] = logs
    if distilled_from is not None:
        entry["distilled_from"] = plain_value(distilled_from)
    entry["versions"] = {"keras": keras.__version__, "tensorflow": tf.__version__, "numpy": np.__version__, **(versions or {})}
    if dataset is not None:
        entry["licence"] = datasets.DATASETS[dataset]["licence"]
    return entry


def split_metrics(predict_proba, dataset, classes) -> dict:
    """``{"validation": scores, "test": scores}`` of ``predict_proba`` on a zoo dataset's splits ({} for other data).

    ``classes`` are the labels of the probability columns (a distilled
    student's columns are its teacher's ``classes_``). What a student's entry
    records, as ``zoo train`` records a recipe's test metrics.
    """
    import numpy as np

    from zoo import datasets
    from zoo.models import scores

    if dataset not in datasets.DATASETS:
        return {}
    classes = np.asarray(classes)
    order = np.argsort(classes, kind="stable")
    out = {}
    for split in ("validation", "test"):
        X, y = datasets.load(dataset, split)
        column = order[np.searchsorted(classes[order], y)]  # each label's column
        out[split] = {k: round(float(v), 6) for k, v in scores(column, predict_proba(X)).items()}
    return out


def float32_model(clf):
    """The model ``zoo.load`` rebuilds from a fitted :class:`zoo.ZooClassifier`'s weights: float32, no optimizer state.

    Its metrics are the ones an entry records, so they can be re-checked from the files.
    """
    from zoo.estimator import set_model_weights
    from zoo.models import build_model

    spec = clf.spec_
    bare = build_model(spec["builder"], spec["params"], vocabulary=clf.vocabulary_)
    set_model_weights(bare, clf.model_.get_weights())
    return bare


def write_trial(library: Registry, entry: dict, files: dict[str, bytes]) -> dict:
    """Write a prepared trial's files (checked against the entry's sha256), then its entry.

    Parameters
    ----------
    library : Registry
        The library's registry.
    entry : dict
        An entry returned by :func:`prepare_trial`.
    files : dict
        The contents of the files the entry references (weights, vocabulary), by name.

    Returns
    -------
    dict
        The entry written.
    """
    import hashlib

    from kze.files import atomic_path
    from zoo._files import ChecksumError
    from zoo.registry import RegistryError

    refs = [ref for ref in (entry.get("weights"), entry.get("vocabulary")) if ref is not None]
    names = [ref.get("file") if isinstance(ref, dict) else None for ref in refs]
    for name in names:  # plain names: nothing is written outside the weights folder
        if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name or name.startswith("."):
            raise RegistryError(f"trial entry {entry.get('name')!r}: file name {name!r} is not a plain file name")
    if sorted(names) != sorted(files):
        raise RegistryError(f"trial entry {entry.get('name')!r} references files {names}, got {sorted(files)}")
    for ref in refs:
        got = hashlib.sha256(files[ref["file"]]).hexdigest()
        if got != ref.get("sha256"):
            raise ChecksumError(f"trial entry {entry.get('name')!r}: {ref['file']} has sha256 {got}, expected {ref.get('sha256')}; not written")
    written = []
    try:
        for name in names:
            with atomic_path(library.weights_dir / name) as tmp:
                tmp.write_bytes(files[name])
            written.append(library.weights_dir / name)
        library.put(entry)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return entry


def drop_trial(library: Registry, name: str) -> bool:
    """Remove entry ``name`` and its files from the library; whether it was there."""
    from kze.files import locked
    from zoo.registry import lock_file

    with locked(lock_file(library.path)):
        library._entries = library._read()
        entry = library._entries.pop(name, None)
        if entry is None:
            return False
        library.save()
    for ref in (entry.get("weights"), entry.get("vocabulary")):
        if ref is not None:
            (library.weights_dir / ref["file"]).unlink(missing_ok=True)
    return True
