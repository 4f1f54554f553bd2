"""``ensemble`` command line: fit blend weights, select from a model library or fit a stack on validation
data; evaluate; inspect diversity.

Members are zoo model names or model files: scikit-learn estimators or
pipelines saved with ``skops`` (``.skops``, loaded with an allow-list of
trusted types), Keras models (``.keras``, loaded in safe mode), XGBoost model
files (``.json``/``.ubj``; images are flattened) and, only with
``--allow-pickle``, joblib/pickle files (``.joblib``/``.pkl``: loading them
runs code from the file). ``select`` runs Caruana's ensemble selection over
the models of a library written by ``zoo search`` (``LIB/registry.yaml``,
each model loaded with ``zoo.load(name, registry=LIB)``, sha256-checked) and
any further members, and saves the members it selects with their weights
(:func:`ensemble.select`, the same selection in Python).
``fit-weights``, ``select`` and ``stack`` write a saved-ensemble
folder (see :mod:`ensemble.persistence`), which ``evaluate`` reads back;
``convert`` turns the ``weights.json`` files and ``stack/`` folders of
version 0.1 into that format. ``export`` fuses a saved ensemble into one
model and writes it as a TensorFlow SavedModel (:func:`ensemble.export_saved_model`).
Member predictions are cached (``--cache``,
default ``$ZOO_CACHE_DIR/predictions``), so refitting on the same data does
not re-run the members. ``diversity`` compares ``--members``, the models of a
``--library`` (loaded as ``select`` loads them), or both. ``--plot`` figures
(diversity; blend weights on ``select`` and ``evaluate``) are built by
:mod:`ensemble.plots`; this module checks the path and matplotlib before any
long computation and writes the file atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo._cli import (
    Output,
    UsageError,
    escape,
    load_npz,
    make_parser,
    positive_int,
    run,
    table,
)

_LEGACY_WEIGHTS, _LEGACY_STACK = "ensemble-blend-weights", "ensemble-stack"
_LEGACY_STACK_FILE = "stack.json"
_PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


@dataclass
class _Member:
    name: str
    kind: str  # "zoo", "sklearn", "keras" or "xgboost"
    source: str  # zoo name, or the file's path
    sha256: str
    estimator: object
    dataset: str | None = None  # zoo members only

    def record(self) -> dict:
        return {"name": self.name, "kind": self.kind, "source": self.source, "sha256": self.sha256}


# --------------------------------------------------------------------------- members and data


def _load_member(spec: str, args, sha256: str | None = None) -> _Member:
    """A member from a zoo name or a model file; with ``sha256``, the file must match it before it is opened."""
    import zoo
    from kze.files import sha256_file

    if spec in zoo.Registry():
        entry = zoo.info(spec)
        if sha256 is not None and entry["weights"]["sha256"] != sha256:
            raise UsageError(f"member {spec}: the zoo's weights changed since the ensemble was fitted; refit it")
        from ensemble import KerasMember

        model = zoo.load(spec)  # checks the weights' sha256
        member = KerasMember(model, classes=np.arange(len(entry["classes"])))
        return _Member(spec, "zoo", spec, entry["weights"]["sha256"], member, entry["dataset"])
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"member {spec!r} is neither a zoo model (see `zoo list`) nor an existing file")
    digest = sha256_file(path)
    if sha256 is not None and digest != sha256:
        raise UsageError(f"member file {path} has sha256 {digest[:12]}…, not the recorded {sha256[:12]}…; refusing to open it")
    from sklearn.frozen import FrozenEstimator

    suffix = path.suffix.lower()
    if suffix in (".json", ".ubj"):
        return _Member(path.stem, "xgboost", str(path), digest, FrozenEstimator(_xgboost_file(path)))
    if suffix == ".keras":
        return _Member(path.stem, "keras", str(path), digest, _keras_file(path))
    if suffix == ".skops":
        estimator = _skops_file(path, args.trust)
    elif suffix in _PICKLE_SUFFIXES:
        if not args.allow_pickle:
            raise UsageError(f"member {path} is a pickle: loading it runs code from the file; pass --allow-pickle if you trust it, or save the model with skops")
        import joblib

        try:
            estimator = joblib.load(path)
        except Exception as exc:  # unpickling can fail in many ways; all mean "not a usable model file"
            raise UsageError(f"cannot load member {path}: {type(exc).__name__}: {exc}") from exc
    else:
        raise UsageError(f"member {path}: unknown model file type {path.suffix!r}; use .skops (scikit-learn), .keras, .json/.ubj (XGBoost) or, with --allow-pickle, .joblib/.pkl")
    if not hasattr(estimator, "predict_proba") or not hasattr(estimator, "classes_"):
        raise UsageError(f"member {path} holds a {type(estimator).__name__}, not a fitted classifier with predict_proba")
    return _Member(path.stem, "sklearn", str(path), digest, FrozenEstimator(estimator))


def _skops_file(path: Path, trust: list[str]):
    from ensemble._codec import read_skops

    return read_skops(path.read_bytes(), f"member {path}", trust)


def _keras_file(path: Path):
    import keras

    from ensemble import KerasMember

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # a corrupt or unsafe .keras file
        raise UsageError(f"cannot load Keras model {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return KerasMember(model)


def _xgboost_file(path: Path):
    from sklearn.pipeline import make_pipeline
    from xgboost import XGBClassifier
    from xgboost.core import XGBoostError

    from ensemble.preprocessing import Flatten

    model = XGBClassifier()
    try:
        model.load_model(path)
    except XGBoostError as exc:
        raise UsageError(f"cannot load XGBoost model {path}: {str(exc).splitlines()[0]}") from exc
    return make_pipeline(Flatten(), model)


def _load_members(specs: list[str], args, library: list[_Member] = ()) -> list[_Member]:
    members = [*library, *(_load_member(s, args) for s in specs)]
    names = [m.name for m in members]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"members named more than once: {', '.join(duplicates)}")
    _check_datasets(members, args.dataset)
    return members


def _library_members(args) -> list[_Member]:
    """The models of the library ``args.library`` (those of ``args.dataset`` if given), sha256-checked on load."""
    import zoo
    from ensemble import KerasMember

    folder = Path(args.library)
    if not (folder / "registry.yaml").is_file():
        raise UsageError(f"--library {args.library}: not a model library (a folder holding registry.yaml, as `zoo search` writes)")
    library = zoo.Registry(folder)
    names = library.names()
    if args.dataset:
        names = [n for n in names if library.entry(n).get("dataset") == args.dataset]
    if not names:
        which = f" for {args.dataset}" if args.dataset else ""
        raise UsageError(f"--library {args.library} holds no models{which}")
    members = []
    for name in names:
        entry = library.entry(name)
        model = zoo.load(name, registry=library)  # checks the weights' sha256
        member = KerasMember(model, classes=_entry_classes(entry))
        members.append(_Member(name, "library", name, entry["weights"]["sha256"], member, entry.get("dataset")))
    return members


def _entry_classes(entry: dict) -> np.ndarray:
    """A registry entry's classes as labels of the data: indices of a dataset's class names, else as recorded."""
    classes = entry["classes"]
    if entry.get("dataset"):
        from zoo.datasets import class_names

        names = class_names(entry["dataset"])
        if all(c in names for c in classes):
            return np.array([names.index(c) for c in classes])
    return np.asarray(classes)


def _check_datasets(members: list[_Member], dataset: str | None) -> None:
    """Zoo members must all be models of one dataset: the one given, if any."""
    for m in members:
        if m.dataset is not None and dataset is not None and m.dataset != dataset:
            raise UsageError(f"member {m.name} is a model for {m.dataset}; the data are {dataset}")
    seen = {m.dataset: m.name for m in members if m.dataset is not None}
    if len(seen) > 1:
        detail = ", ".join(f"{name} ({ds})" for ds, name in seen.items())
        raise UsageError(f"members are models of different datasets: {detail}")


def _load_data(args, split: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """The evaluation data: a dataset split or the user's --data file, and a description of it."""
    if args.data:
        X, y = load_npz(args.data)
        where = {"data": str(args.data)}
    else:
        if not args.dataset:
            raise UsageError("give --dataset (mnist, fashion_mnist or imdb) or --data FILE.npz")
        import zoo

        X, y = zoo.datasets.load(args.dataset, split)
        where = {"dataset": args.dataset, "split": split}
    where.update(n=len(y), sha256=_data_sha256(X, y))
    return X, y, where


def _data_sha256(X, y) -> str:
    """sha256 of the data, read chunk by chunk (``X`` may be memory-mapped or a text file's lines)."""
    from ensemble.chunked import TextLines, iter_chunks

    digest = hashlib.sha256()
    text = isinstance(X, TextLines) or X.dtype == object
    if not text:
        digest.update(str(X.shape).encode())
    for _, _, chunk in iter_chunks(X):
        if text:
            for item in chunk:
                digest.update(str(item).encode("utf-8") + b"\0")
        else:
            digest.update(memoryview(np.ascontiguousarray(chunk)).cast("B"))
    for _, _, chunk in iter_chunks(y):
        digest.update(chunk.astype(str).tobytes())
    return digest.hexdigest()


def _open_xy(args) -> tuple[object, np.ndarray, dict]:
    """``--x`` (a memory-mapped .npy array or a text file's lines) and ``--y`` (a memory-mapped .npy array)."""
    from ensemble.chunked import open_input

    if args.data:
        raise UsageError("give --x and --y, or --data, not both")
    if not (args.x and args.y):
        raise UsageError("--x and --y go together: the inputs and their labels")
    for option, path in (("--x", args.x), ("--y", args.y)):
        if not Path(path).is_file():
            raise UsageError(f"{option} {path}: no such file")
    if Path(args.x).suffix == ".npz" or Path(args.y).suffix != ".npy":
        raise UsageError("--x takes a .npy array or a text file (one review per line), --y a .npy array; for an .npz file use --data")
    try:
        X = open_input(args.x)
        y = np.load(args.y, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read --x {args.x} / --y {args.y}: {exc}") from None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.dtype.kind not in "biuUS":
        raise UsageError(f"--y {args.y}: expected one label per row (integers or strings), got shape {y.shape} and dtype {y.dtype}")
    if len(X) != len(y):
        raise UsageError(f"--x {args.x} has {len(X)} rows but --y {args.y} has {len(y)} labels")
    if len(y) == 0:
        raise UsageError(f"--x {args.x} holds no examples")
    return X, y, {"x": str(args.x), "y": str(args.y), "n": len(y), "sha256": _data_sha256(X, y)}


def _memory(args):
    from zoo.datasets import cache_dir

    return str(Path(args.cache) if args.cache else cache_dir() / "predictions")


def _member_probabilities(names, estimators, X, memory, quiet: bool) -> list[np.ndarray]:
    """Each member's class probabilities on X, through the prediction cache, with a progress bar."""
    from tqdm.auto import tqdm

    from ensemble._cache import check_cache
    from ensemble._members import check_keras_inputs, predict_members

    check_keras_inputs(names, estimators, X)
    out = []
    for name, est in tqdm(list(zip(names, estimators)), desc="member predictions", unit="member", disable=quiet, file=sys.stderr):
        (proba,) = predict_members([name], [est], X, "predict_proba", memory=check_cache(memory))
        out.append(np.asarray(proba, dtype=np.float64))
    return out


def _scores(y_index: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    from zoo.models import scores

    return scores(y_index, proba)


def _classes_and_index(model, y):
    """The ensemble's classes, and y as column indices into them."""
    classes = np.asarray(model.classes_)
    _check_labels(classes, y)
    return classes, np.searchsorted(classes, y)


def _check_labels(classes, y) -> None:
    unknown = sorted(set(np.unique(y).tolist()) - set(classes.tolist()))
    if unknown:
        raise UsageError(f"labels {unknown[:5]} of the data are not among the members' classes {classes.tolist()[:10]}")


def _check_classes(members: list[_Member], y) -> None:
    """Prefit members must agree on their classes, and know every label of y."""
    classes = np.asarray(members[0].estimator.classes_)
    for member in members[1:]:
        other = np.asarray(member.estimator.classes_)
        if not np.array_equal(other, classes):
            raise UsageError(f"members disagree on the classes: {members[0].name} has {classes.tolist()}, {member.name} has {other.tolist()}")
    _check_labels(classes, y)


# --------------------------------------------------------------------------- fit-weights / stack


def _fit_and_save(args, kind: str):
    """Fit a blend (``fit-weights``), a selection (``select``) or a stack on the data; save it to ``args.out``."""
    import ensemble

    _check_plot(args)
    X, y, where = _load_data(args, args.split)
    _check_out(args.out)
    library = _library_members(args) if kind == "select" else []
    members = _load_members(args.members, args, library)
    _check_classes(members, y)
    memory = _memory(args)
    names = [m.name for m in members]
    probas = _member_probabilities(names, [m.estimator for m in members], X, memory, args.quiet)
    named = [(m.name, m.estimator) for m in members]
    if kind == "select":  # the selected members only, with the weights found; `fitted` covers every candidate
        model, fitted = ensemble.select(
            named, X, y, ensemble_size=args.ensemble_size, n_init=args.init, n_bags=args.bags, bag_fraction=args.bag_fraction,
            n_best=args.prune, scoring=args.scoring, calibrate=args.calibrate, memory=memory, random_state=args.seed,
            return_candidates=True,
        )
        label = "caruana selection"
    else:
        if kind == "blend":
            model = ensemble.BlendClassifier(named, method=args.method, calibrate=args.calibrate, memory=memory, random_state=args.seed)
            label = f"{args.method} blend"
        else:
            model = ensemble.StackClassifier(named, final_estimator=_meta_learner(args.meta, args.seed), memory=memory)
            label = f"stack ({args.meta})"
        fitted = model.fit(X, y)
    _, y_index = _classes_and_index(fitted, y)
    rows = [{**m.record(), "validation": _scores(y_index, p)} for m, p in zip(members, probas)]
    if kind != "stack":
        for row, w, t in zip(rows, fitted.weights_, fitted.temperatures_):
            row["weight"] = float(w)
            row["temperature"] = float(t)
    ensemble_scores = _scores(y_index, model.predict_proba(X))
    metadata = {"command": f"ensemble {args.command}", "label": label, "fitted_on": where, "members": rows,
                "ensemble": {"validation": ensemble_scores}}
    if kind != "stack":
        metadata["method"] = "caruana" if kind == "select" else args.method
        metric = args.scoring if kind == "select" else "log_loss"
        metadata["metric"] = {"slsqp": metric, "caruana": metric, "nnls": "squared error on one-hot targets"}.get(metadata["method"])
        metadata["calibrate"] = bool(args.calibrate)
        metadata["blend_temperature"] = float(model.blend_temperature_)
    else:
        metadata["meta_learner"] = args.meta
    if kind == "select":
        metadata["selection"] = {"library": str(Path(args.library).resolve()), "candidates": len(members), "selected": len(model.estimators_),
                                 "ensemble_size": args.ensemble_size, "init": args.init, "bags": args.bags,
                                 "bag_fraction": args.bag_fraction, "prune": args.prune, "scoring": args.scoring}
    model.set_params(memory=None)  # the cache is a setting of this machine, not part of the model
    ensemble.save(model, args.out, metadata=metadata)
    print(f"{'stack' if kind == 'stack' else 'weights'} written to {args.out}", file=sys.stderr)
    if getattr(args, "plot", None):
        _plot_weights(rows, "validation", f"{label}: weights", args.plot)
    data = {**metadata, "out": str(args.out)}
    return _report(rows, ensemble_scores, "validation", label, weights=kind != "stack", data=data)


def _check_out(out: str) -> None:
    """Refuse an output path we could not write, before any long computation."""
    from ensemble.persistence import POINTER

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder (a saved ensemble is a folder)")
    if path.is_dir() and not (path / POINTER).exists() and any(path.iterdir()):
        raise UsageError(f"--out {out}: a non-empty folder that holds no saved ensemble; choose another path")
    if not path.exists():
        from kze.files import check_file_name

        try:
            check_file_name(path)  # the name's length, and a folder to hold it
        except OSError as exc:
            raise UsageError(f"--out {escape(path.name[:40])}…: {exc.strerror}") from None


def _cmd_fit_weights(args):
    return _fit_and_save(args, "blend")


def _cmd_stack(args):
    return _fit_and_save(args, "stack")


def _cmd_select(args):
    return _fit_and_save(args, "select")


def _meta_learner(name: str, seed: int):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from xgboost import XGBClassifier

    return {
        "logreg": lambda: LogisticRegression(max_iter=2000),
        "rf": lambda: RandomForestClassifier(n_estimators=300, min_samples_leaf=3, n_jobs=-1, random_state=seed),
        "xgboost": lambda: XGBClassifier(n_estimators=300, learning_rate=0.05, max_depth=4, tree_method="hist", n_jobs=2, random_state=seed),
    }[name]()


# --------------------------------------------------------------------------- evaluate


def _load_ensemble(path: Path, args):
    import ensemble
    from ensemble.persistence import read_manifest

    if _legacy_document(path) is not None:
        raise UsageError(f"{path} is a version 0.1 ensemble file; convert it first: ensemble convert {path} --out NEW_FOLDER")
    manifest, _ = read_manifest(path)
    model = ensemble.load(path, trusted=args.trust)
    return model, manifest.get("metadata") or {}


def _cmd_evaluate(args):
    from sklearn.base import is_classifier

    path = Path(args.path)
    model, metadata = _load_ensemble(path, args)
    if not is_classifier(model):
        raise UsageError(f"{path} holds a {type(model).__name__}; `ensemble evaluate` evaluates classifiers")
    if args.plot and getattr(model, "weights_", None) is None:
        raise UsageError(f"--plot draws blend weights; {escape(str(path))} holds a {type(model).__name__}, which has none")
    _check_plot(args)
    fitted_on = metadata.get("fitted_on") or {}
    if not args.data and not args.dataset:
        args.dataset = fitted_on.get("dataset")
    names = list(model.named_estimators_)
    used = [(n, est) for n, est in model.named_estimators_.items() if not isinstance(est, str)]  # "drop" left out
    datasets = _member_datasets(model)
    _check_datasets([_Member(n, "", "", "", None, d) for (n, _), d in zip(used, datasets)], args.dataset)
    X, y, where = _open_xy(args) if args.x or args.y else _load_data(args, args.split)
    if where["sha256"] == fitted_on.get("sha256"):
        print("note: these are the data the ensemble was fitted on; its scores here are optimistic", file=sys.stderr)
    member_scores, ensemble_scores = _evaluate_in_chunks(model, used, X, y, _memory(args), args)
    weights = getattr(model, "weights_", None)
    recorded = {r.get("name"): r for r in metadata.get("members", []) if isinstance(r, dict)}
    rows = []
    for (name, _), member_score in zip(used, member_scores):
        row = {"name": name, **{k: recorded.get(name, {}).get(k) for k in ("kind", "source", "sha256")}, "scores": member_score}
        if weights is not None:
            row["weight"] = float(weights[names.index(name)])
        rows.append(row)
    label = str(metadata.get("label") or type(model).__name__)
    split = where.get("split", where.get("data", where.get("x")))
    data = {"ensemble": label, "evaluated_on": where, "members": rows, "ensemble_scores": ensemble_scores}
    best = max(r["scores"]["accuracy"] for r in rows)
    data["gain_over_best_member_points"] = round(100 * (ensemble_scores["accuracy"] - best), 4)
    if args.plot:
        _plot_weights(rows, "scores", f"{label}: weights on {split}", args.plot)
    return _report([{**r, split: r["scores"]} for r in rows], ensemble_scores, split, label, weights=weights is not None, data=data)


def _evaluate_in_chunks(model, used, X, y, memory, args) -> tuple[list[dict], dict]:
    """Each member's scores and the ensemble's on ``X, y``, predicted ``--chunk-size`` rows at a time.

    Memory holds one chunk: member outputs go through the prediction cache
    chunk by chunk, and the scores are sums over the chunks.
    """
    from tqdm.auto import tqdm

    from ensemble._cache import check_cache
    from ensemble._members import check_keras_inputs, predict_members
    from ensemble.chunked import iter_chunks

    classes = np.asarray(model.classes_)
    labels = set()
    for _, _, chunk in iter_chunks(y, args.chunk_size):
        labels.update(np.unique(chunk).tolist())
    _check_labels(classes, np.array(sorted(labels)))
    names, estimators = [n for n, _ in used], [e for _, e in used]
    cache = check_cache(memory)
    model.set_params(memory=memory)
    members, whole = [_RunningScores() for _ in used], _RunningScores()
    with tqdm(total=len(y), unit="rows", unit_scale=True, desc="predictions", file=sys.stderr, leave=False,
              disable=True if args.quiet else None) as bar:
        for start, stop, chunk in iter_chunks(X, args.chunk_size):
            y_index = np.searchsorted(classes, np.asarray(y[start:stop]))
            check_keras_inputs(names, estimators, chunk)
            probas = predict_members(names, estimators, chunk, "predict_proba", memory=cache)
            for running, name, proba in zip(members, names, probas):
                running.add(y_index, _columns_of(model, name, np.asarray(proba, dtype=np.float64)))
            whole.add(y_index, model.predict_proba(chunk))
            bar.update(stop - start)
    return [m.result() for m in members], whole.result()


class _RunningScores:
    """Accuracy and log loss summed over chunks: ``zoo.models.scores`` of all the rows at the end."""

    def __init__(self):
        self.n, self.correct, self.loss = 0, 0, 0.0

    def add(self, y_index: np.ndarray, proba: np.ndarray) -> None:
        from sklearn.metrics import log_loss

        self.n += len(y_index)
        self.correct += int(np.sum(proba.argmax(axis=1) == y_index))
        proba = np.asarray(proba, dtype=np.float64)
        sums = proba.sum(axis=1, keepdims=True)
        if np.all(np.abs(sums - 1) < 1e-4):  # float32 round-off, which log_loss would warn about in float64
            proba = proba / sums
        self.loss += log_loss(y_index, proba, labels=np.arange(proba.shape[1]), normalize=False)

    def result(self) -> dict[str, float]:
        return {"accuracy": self.correct / self.n, "log_loss": self.loss / self.n}


def _columns_of(model, name, proba):
    """A member's probabilities over the ensemble's classes (members may know fewer)."""
    if proba.shape[1] == len(model.classes_):
        return proba
    est = model.named_estimators_[name]
    full = np.zeros((proba.shape[0], len(model.classes_)))
    full[:, np.searchsorted(model.classes_, np.asarray(est.classes_))] = proba
    return full


def _member_datasets(model) -> list[str | None]:
    """The zoo dataset of each member (None for non-zoo members)."""
    from ensemble import KerasMember
    from zoo.models import provenance

    out = []
    for est in model.estimators_:
        origin = provenance(est.model) if isinstance(est, KerasMember) else None  # trained further or not: same dataset
        out.append(origin["entry"].get("dataset") if origin else None)
    return out


# --------------------------------------------------------------------------- export


def _cmd_export(args):
    import ensemble

    path = Path(args.path)
    if not path.is_dir():
        raise UsageError(f"{escape(str(path))} is not a saved-ensemble folder")
    model, _ = _load_ensemble(path, args)
    try:
        out = ensemble.export_saved_model(model, args.out)
    except FileExistsError as exc:
        raise UsageError(f"--out {escape(str(args.out))}: {exc}") from None
    print(f"exported {escape(str(path))} to {escape(str(out))}", file=sys.stderr)
    return Output({"out": str(out), "ensemble": str(path), "format": "tf_saved_model"}, f"exported {path} to {out}")


# --------------------------------------------------------------------------- convert (version 0.1 files)


def _legacy_document(path: Path) -> tuple[dict, Path] | None:
    """A version 0.1 weights file or stack folder's document, or None if ``path`` is neither."""
    file = path / _LEGACY_STACK_FILE if path.is_dir() else path
    if not file.is_file() or file.suffix != ".json":
        return None
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{file} is not valid JSON ({exc}); was it truncated?") from exc
    if not isinstance(doc, dict) or doc.get("format") not in (_LEGACY_WEIGHTS, _LEGACY_STACK):
        raise UsageError(f"{file} is not a saved ensemble nor a version 0.1 ensemble file (format {doc.get('format') if isinstance(doc, dict) else None!r})")
    return doc, file.parent


def _bare_file(base: Path, name, what: str) -> Path:
    """``base / name`` for a bare file name inside ``base``; anything else is refused."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", "..") or Path(name).is_absolute():
        raise UsageError(f"{what} {str(name)[:80]!r} is not a bare file name inside {base}; refusing it")
    path = base / name
    if path.is_symlink():
        raise UsageError(f"{what} {path} is a symbolic link; refusing it")
    return path


def _cmd_convert(args):
    import ensemble
    from kze.files import sha256_file

    found = _legacy_document(Path(args.path))
    if found is None:
        raise UsageError(f"{args.path} is neither a version 0.1 weights .json file nor a stack folder holding {_LEGACY_STACK_FILE}")
    doc, base = found
    _check_out(args.out)
    records = doc.get("members")
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise UsageError(f"{args.path}: 'members' must be a non-empty list of member records")
    members = []
    for r in records:
        kind, source, sha = r.get("kind"), r.get("source"), r.get("sha256")
        if not all(isinstance(v, str) for v in (kind, source, sha)):
            raise UsageError(f"{args.path}: member record {str(r)[:80]} needs string kind, source and sha256")
        spec = source if kind == "zoo" else str(_bare_file(base, source, "member file"))
        member = _load_member(spec, args, sha256=sha)
        member.name = str(r.get("name", member.name))
        members.append(member)
    named = [(m.name, m.estimator) for m in members]
    if doc["format"] == _LEGACY_WEIGHTS:
        weights = [r.get("weight") for r in records]
        if not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights):
            raise UsageError(f"{args.path}: every member needs a numeric weight")
        model = ensemble.BlendClassifier(named, method="mean", weights=weights)
        label = f"{doc.get('method')} blend"
    else:
        meta = doc.get("meta_learner") if isinstance(doc.get("meta_learner"), dict) else {}
        meta_path = _bare_file(base, meta.get("file"), "meta-learner file")
        if not meta_path.is_file():
            raise UsageError(f"stack folder {base} lacks its meta-learner file {meta_path.name}")
        if sha256_file(meta_path) != meta.get("sha256"):
            raise UsageError(f"meta-learner {meta_path} does not match its recorded sha256; refusing to open it")
        if not args.allow_pickle:
            raise UsageError(f"the meta-learner {meta_path} is a pickle: loading it runs code from the file; pass --allow-pickle if you trust it")
        import joblib
        from sklearn.frozen import FrozenEstimator

        model = ensemble.StackClassifier(named, final_estimator=FrozenEstimator(joblib.load(meta_path)))
        label = f"stack ({meta.get('name')})"
    # Every part is prefit or frozen, so fit() learns nothing from the data: it only assembles the ensemble.
    fitted_on = doc.get("fitted_on") if isinstance(doc.get("fitted_on"), dict) else {}
    if not args.data and not args.dataset:
        args.dataset = fitted_on.get("dataset")
    _check_datasets(members, args.dataset)
    X, y, _ = _load_data(args, args.split)
    _check_classes(members, y)
    model.set_params(memory=_memory(args)).fit(X, y)
    model.set_params(memory=None)
    metadata = {"command": "ensemble convert", "label": label, "converted_from": str(args.path), "fitted_on": doc.get("fitted_on"),
                "members": [{**m.record(), **{k: v for k, v in r.items() if k in ("validation", "weight")}} for m, r in zip(members, records)]}
    ensemble.save(model, args.out, metadata=metadata)
    print(f"converted {escape(str(args.path))} to {escape(str(args.out))}", file=sys.stderr)
    return Output({"out": str(args.out), **metadata}, f"converted {args.path} to {args.out}")


def _report(member_rows, ensemble_scores, split, label, *, data, weights=False):
    best = max(r[split]["accuracy"] for r in member_rows)
    headers = ["model", *(["weight"] if weights else []), "accuracy", "log loss"]
    rows = [[r["name"], *([float(r["weight"])] if weights else []), r[split]["accuracy"], r[split]["log_loss"]] for r in member_rows]
    rows.append([label, *([1.0] if weights else []), ensemble_scores["accuracy"], ensemble_scores["log_loss"]])
    gain = 100 * (ensemble_scores["accuracy"] - best)
    text = f"{label} on {split}\n" + table(headers, rows) + f"\n\ngain over the best member: {gain:+.2f} accuracy points"
    return Output(data, text)


# --------------------------------------------------------------------------- diversity


def _cmd_diversity(args):
    import ensemble

    if not args.members and not args.library:
        raise UsageError("give the members to compare: --members M [M ...], --library LIB, or both")
    _check_plot(args)
    X, y, where = _load_data(args, args.split)
    library = _library_members(args) if args.library else []
    members = _load_members(args.members, args, library)
    memory = _memory(args)
    _member_probabilities([m.name for m in members], [m.estimator for m in members], X, memory, args.quiet)  # fills the cache
    report = ensemble.diversity([(m.name, m.estimator) for m in members], X, y, memory=memory)
    if args.plot:
        from ensemble.plots import diversity_figure

        _save_plot(diversity_figure(report), args.plot, "diversity")
    return Output({"data": where, **report.to_dict()}, str(report))


def _check_plot(args) -> None:
    """Refuse ``--plot`` without matplotlib or with a path we could not write, before any long computation."""
    if not getattr(args, "plot", None):
        return
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'keras-zoo-ensemble[plot]'") from None
    from kze.files import check_file_name

    try:
        check_file_name(args.plot)
    except OSError as exc:
        raise UsageError(f"--plot {escape(str(args.plot))}: {exc.strerror}") from None
    from matplotlib.backend_bases import FigureCanvasBase

    kinds = FigureCanvasBase.get_supported_filetypes()
    if Path(args.plot).suffix.lstrip(".").lower() not in kinds:
        raise UsageError(f"--plot {escape(str(args.plot))}: name the file with one of the image suffixes .{', .'.join(sorted(kinds))}")


def _plot_weights(rows: list[dict], scores: str, title: str, path: str) -> None:
    """Draw the weight of each member row (with its accuracy, from ``row[scores]``) to ``path``."""
    from ensemble.plots import weights_figure

    accuracies = [r[scores]["accuracy"] for r in rows]
    _save_plot(weights_figure([r["name"] for r in rows], [r["weight"] for r in rows], accuracies=accuracies, title=title), path, "weights")


def _save_plot(fig, path: str, what: str) -> None:
    """Write a figure of :mod:`ensemble.plots` to ``path`` atomically; say so on stderr."""
    from kze.files import atomic_path

    with atomic_path(path, suffix=Path(path).suffix) as tmp:
        fig.savefig(tmp, dpi=120, format=Path(path).suffix.lstrip(".").lower())
    print(f"{what} plot written to {escape(str(path))}", file=sys.stderr)


# --------------------------------------------------------------------------- parser


def _fraction(text: str) -> float:
    """``argparse`` type: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value



def build_parser():
    parser, sub, common = make_parser("ensemble", "Blend and stack zoo models and saved scikit-learn/XGBoost models.")

    def data_args(p, default_split):
        p.add_argument("--dataset", choices=["mnist", "fashion_mnist", "imdb"], help="dataset whose split to use")
        p.add_argument("--split", choices=["train", "validation", "test"], default=default_split)
        p.add_argument("--data", metavar="FILE.npz", help="your own arrays X and y instead of a dataset split")
        p.add_argument("--cache", metavar="DIR", help="member prediction cache (default: $ZOO_CACHE_DIR/predictions)")
        p.add_argument("--seed", type=int, default=0, help="random seed (Caruana bagging, random-forest meta-learner)")

    def member_args(p, required=True):
        p.add_argument("--members", nargs="+", required=required, default=[], metavar="M", help="zoo names or model files (.skops, .keras, .json/.ubj)")
        trust_args(p)

    def trust_args(p):
        p.add_argument("--trust", action="append", default=[], metavar="TYPE",
                       help="trust this type or function (module.Name) in .skops files; repeat for several")
        p.add_argument("--allow-pickle", action="store_true",
                       help="accept .joblib/.pkl files: loading them RUNS CODE from the file, only for files you trust")

    p = sub.add_parser("fit-weights", parents=[common], help="fit blend weights on validation data; save the blend to a folder")
    member_args(p)
    p.add_argument("--method", choices=["mean", "slsqp", "nnls", "caruana"], default="slsqp")
    p.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=False,
                   help="temperature-scale each member, then the blend, on the same data (default: off)")
    p.add_argument("--out", required=True, metavar="DIR", help="saved-ensemble folder to write (replaced atomically)")
    data_args(p, "validation")
    p.set_defaults(func=_cmd_fit_weights)

    p = sub.add_parser("select", parents=[common], help="Caruana's ensemble selection from a model library on validation data; save the blend")
    p.add_argument("--library", required=True, metavar="LIB", help="model library folder (LIB/registry.yaml, as `zoo search` writes)")
    p.add_argument("--members", nargs="+", default=[], metavar="M", help="more candidates: zoo names or model files")
    trust_args(p)
    p.add_argument("--ensemble-size", type=positive_int, default=50, metavar="N", help="selections, with replacement (default: 50)")
    p.add_argument("--init", type=positive_int, default=1, metavar="N", help="sorted initialisation: start from the N best (default: 1)")
    p.add_argument("--bags", type=positive_int, default=1, metavar="B", help="bagged selection: average B selections (default: 1)")
    p.add_argument("--bag-fraction", type=_fraction, default=0.5, metavar="F", help="fraction of the candidates in each bag (default: 0.5)")
    p.add_argument("--prune", type=positive_int, metavar="K", help="library pruning: only the K candidates best alone (default: all)")
    p.add_argument("--scoring", choices=["log_loss", "accuracy"], default="log_loss", help="what the selection optimises (default: log_loss)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the weight of each candidate (matplotlib)")
    p.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=True,
                   help="temperature-scale each candidate before selecting, then the blend (default: on)")
    p.add_argument("--out", required=True, metavar="DIR", help="saved-ensemble folder to write (replaced atomically)")
    data_args(p, "validation")
    p.set_defaults(func=_cmd_select)

    p = sub.add_parser("stack", parents=[common], help="fit a stacking meta-learner on validation data; save the stack to a folder")
    member_args(p)
    p.add_argument("--meta", choices=["logreg", "rf", "xgboost"], default="logreg")
    p.add_argument("--out", required=True, metavar="DIR", help="saved-ensemble folder to write (replaced atomically)")
    data_args(p, "validation")
    p.set_defaults(func=_cmd_stack)

    p = sub.add_parser("evaluate", parents=[common], help="members vs ensemble on a split (a saved-ensemble folder)")
    p.add_argument("path", metavar="DIR")
    trust_args(p)
    data_args(p, "test")
    p.add_argument("--x", metavar="X.npy|TEXT", help="inputs larger than memory: a .npy array (memory-mapped) or a UTF-8 text file, one review per line")
    p.add_argument("--y", metavar="Y.npy", help="the labels of --x, a .npy array (memory-mapped)")
    p.add_argument("--chunk-size", type=positive_int, default=10_000, metavar="N", help="rows predicted at a time (default: 10000)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the blend weight of each member, with its accuracy (matplotlib)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("convert", parents=[common], help="convert a version 0.1 weights.json or stack folder to a saved-ensemble folder")
    p.add_argument("path", metavar="WEIGHTS_JSON_OR_STACK_DIR")
    p.add_argument("--out", required=True, metavar="DIR")
    trust_args(p)
    data_args(p, "validation")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("export", parents=[common], help="fuse a saved ensemble into one model; write it as a TensorFlow SavedModel")
    p.add_argument("path", metavar="DIR")
    p.add_argument("--out", required=True, metavar="PATH", help="SavedModel folder to create (refused if it exists and is not empty)")
    trust_args(p)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("diversity", parents=[common], help="member accuracy, log loss and pairwise diversity")
    member_args(p, required=False)
    p.add_argument("--library", metavar="LIB", help="also compare the models of this library (LIB/registry.yaml, as `zoo search` writes)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the error-correlation heatmap and accuracies (matplotlib)")
    data_args(p, "validation")
    p.set_defaults(func=_cmd_diversity)
    for action in sub.choices.values():
        action.set_defaults(needs_tensorflow=True)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``ensemble`` command."""
    return run(lambda args: args.func(args), build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
