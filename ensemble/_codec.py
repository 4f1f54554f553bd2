"""Encoding a fitted ensemble as JSON plus one file per model, and decoding it back.

Values become JSON: scalars as they are, arrays inline (small, finite) or as
``.npy`` files, containers tagged (``{"$tuple": [...]}``). Objects become
*parts*, written once each even when referenced twice (``estimators`` and
``estimators_`` share their prefit members). Part kinds are registered in
:mod:`ensemble.parts` (the encoder is the parts' *writer*, the decoder their
*reader*); this module registers the built-in ones, tried after those of
plug-ins (``zoo`` registers ``zoo`` and ``zoo_build``: a shipped zoo entry by
name and weights sha256, or builder, hyperparameters and ``.weights.h5``):

====================  ===============================================================
kind                  stored as
====================  ===============================================================
``keras``             a ``.keras`` file, loaded with ``safe_mode=True``
``keras_member``      a :class:`KerasMember` around a Keras part
``kind_member``       a member of a registered kind (:mod:`ensemble.kinds`) around a part
``frozen``            a ``FrozenEstimator`` around a part
``xgboost``           XGBoost's own UBJSON model file
``pipeline``          a ``Pipeline`` holding a Keras or XGBoost step: one part per step
``skops``             any other scikit-learn object, with ``skops.io`` and an allow-list
                      (:data:`TRUSTED_TYPES` and the types plug-ins register)
====================  ===============================================================

A manifest that names a kind nobody registered loads the plug-ins once
(:func:`ensemble.parts.get_part`); so does a skops file holding types outside
the allow-list, before it is refused.

Nothing here unpickles: every file is opened by a format that cannot run code
(``.npy`` without pickle, HDF5 weights, safe-mode ``.keras``, XGBoost JSON)
or by ``skops.io`` with an explicit list of trusted types. Decision trees are
accepted only because their node arrays are checked right after loading
(:mod:`ensemble._trees`); the other memory-unsafe structures need an opt-in.
The decoder refuses values nested more than ``_MAX_NESTING`` deep, parts that
contain themselves, and inline arrays that are not small arrays of numbers or
short strings.
"""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import numpy as np

from ensemble._keras import KerasMember, is_keras_model
from ensemble._trees import TREE_TYPE, check_trees
from ensemble.kinds import KindMember, member_kinds
from ensemble.parts import MissingPartError, get_part, part_for, register_part, registered_parts, trusted_types
from ensemble.plugins import load_plugins

_INLINE_ARRAY = 4096  # larger (or non-finite) arrays go to .npy files
_MAX_ITEMSIZE = 1 << 16  # bytes per element of an inline string array
_MAX_NESTING = 64  # values and parts nest at most this deep in a manifest
_MAX_BATCH = 1 << 20  # largest batch_size of a Keras member
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")

# Types and functions trusted by ensemble.load beyond skops' own defaults (scikit-learn's
# estimators, NumPy and SciPy containers), besides those plug-ins register for their own
# estimators (ensemble.parts.register_trusted_types). Functions are listed one by one on purpose.
# scikit-learn's decision-tree structure (``sklearn.tree._tree.Tree``) is accepted too, but only
# because every loaded tree's node arrays are checked before use (ensemble._trees); the other
# structures that skops calls memory-unsafe (TreePredictor, KDTree, BallTree) are not listed:
# loading them needs trusted=[...].
TRUSTED_TYPES = (
    "ensemble.preprocessing.Flatten",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "builtins.slice",
    "numpy.float64",
    "numpy.int64",
)


class UntrustedTypesError(ValueError):
    """A saved scikit-learn part holds types that are not on the allow-list."""


# --------------------------------------------------------------------------- encoding


class Encoder:
    """Turns values into JSON and files under ``folder`` (the parts' writer); ``files`` lists the files written."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.files: list[str] = []
        self.parts: list[dict] = []
        self._memo: dict[int, int] = {}
        self._keep = []  # keep encoded objects alive so their ids stay unique
        self.hint = "value"  # where the part being encoded sits (e.g. estimators_.cnn): for file names and messages

    def file(self, stem: str, suffix: str) -> tuple[str, Path]:
        """A new file for a part to write: its bare name (for the record) and its path in the folder."""
        if not isinstance(suffix, str) or not re.fullmatch(r"(\.[A-Za-z0-9_-]{1,16}){1,3}", suffix):
            raise ValueError(f"a part file's suffix is like '.npy' or '.weights.h5', not {str(suffix)[:40]!r}")
        base = _SAFE_NAME.sub("_", stem)[:60] or "part"
        name = f"{len(self.files):03d}-{base}{suffix}"
        self.files.append(name)
        return name, self.folder / name

    def value(self, obj, hint: str = "value"):
        """JSON for ``obj``; objects that are not plain data become parts."""
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int) and not isinstance(obj, bool):
            return obj
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else {"$float": repr(obj)}
        if isinstance(obj, np.generic):
            return {"$scalar": self.value(np.asarray(obj), hint)}
        if isinstance(obj, np.ndarray):
            return self._array(obj, hint)
        if isinstance(obj, tuple):
            return {"$tuple": [self.value(v, hint) for v in obj]}
        if isinstance(obj, list):
            return [self.value(v, hint) for v in obj]
        from sklearn.utils import Bunch

        if isinstance(obj, dict):
            bad = [k for k in obj if not isinstance(k, str)]
            if bad:
                raise TypeError(f"cannot save a dict with non-string keys ({bad[:3]!r}) in {hint}")
            tag = "$bunch" if isinstance(obj, Bunch) else "$dict"
            return {tag: {k: self.value(v, f"{hint}.{k}") for k, v in obj.items()}}
        return {"$part": self.part(obj, hint)}

    def _array(self, a: np.ndarray, hint: str):
        if a.dtype.kind == "O":
            kinds = {type(v) for v in a.ravel()}
            if kinds <= {str}:
                return {"$ndarray_object": self._array(a.astype(str), hint)}
            raise TypeError(f"cannot save an object array holding {sorted(k.__name__ for k in kinds)} in {hint}")
        if a.dtype.kind not in "biufcUS" or a.dtype.kind == "c":
            raise TypeError(f"cannot save an array of dtype {a.dtype} in {hint}")
        if a.size <= _INLINE_ARRAY and (a.dtype.kind != "f" or np.isfinite(a).all()):
            return {"$ndarray": {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.ravel().tolist()}}
        name, path = self.file(hint, ".npy")
        np.save(path, a, allow_pickle=False)
        return {"$npy": name}

    def part(self, obj, hint: str) -> int:
        """Index of the part record for ``obj``, writing its files the first time."""
        key = id(obj)
        if key in self._memo:
            return self._memo[key]
        self._keep.append(obj)
        record = self._record(obj, hint)
        self.parts.append(record)
        self._memo[key] = len(self.parts) - 1
        return self._memo[key]

    def _record(self, obj, hint):
        part = part_for(obj)
        if part is None:
            raise TypeError(f"cannot save {hint}: {type(obj).__name__} is not an estimator, a model or plain data")
        outer, self.hint = self.hint, hint
        try:
            record = part.encode(obj, self)
        finally:
            self.hint = outer
        if not isinstance(record, dict):
            raise TypeError(f"the {part.kind!r} part of {hint} encoded to {type(record).__name__}, not a dict")
        return {"kind": part.kind, **{k: v for k, v in record.items() if k != "kind"}}


# --------------------------------------------------------------------------- built-in kinds


def _encode_keras_member(obj, writer):
    return {"model": writer.value(obj.model, writer.hint), "classes": writer.value(obj.classes, writer.hint),
            "batch_size": obj.batch_size, "task": obj.task}


def _decode_keras_member(record, reader):
    batch_size, task = record["batch_size"], record["task"]
    if type(batch_size) is not int or not 1 <= batch_size <= _MAX_BATCH:
        raise ValueError(f"a Keras member has batch_size {str(batch_size)[:40]!r}; expected a whole number from 1 to {_MAX_BATCH}")
    if task not in ("classification", "regression"):
        raise ValueError(f"a Keras member has task {str(task)[:40]!r}; expected 'classification' or 'regression'")
    return KerasMember(reader.value(record["model"]), classes=reader.value(record["classes"]), batch_size=batch_size, task=task)


def _encode_kind_member(obj, writer):
    return {"member_kind": obj.member_kind.name, "model": writer.value(obj.model, writer.hint), "task": obj.task}


def _decode_kind_member(record, reader):
    """A member of a registered kind: the kind by its name (plug-ins loaded once if nobody registered it), the model as a part."""
    name, task = record["member_kind"], record["task"]
    if task not in ("classification", "regression"):
        raise ValueError(f"a member has task {str(task)[:40]!r}; expected 'classification' or 'regression'")
    kind = _member_kind(name)
    if kind is None:
        load_plugins()
        kind = _member_kind(name)
    if kind is None:
        raise MissingPartError(f"the bundle holds a member of kind {str(name)[:40]!r}, which nobody registered (ensemble.register_member_kind)")
    return KindMember(reader.value(record["model"]), kind=kind, task=task)


def _member_kind(name):
    return next((k for k in member_kinds() if k.name == name), None)


def _encode_keras(model, writer):
    name, path = writer.file(writer.hint, ".keras")
    model.save(path)
    return {"file": name}


def _decode_keras(record, reader):
    import keras

    try:
        return keras.saving.load_model(reader.path(record["file"]), compile=False, safe_mode=True)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:  # a damaged or hostile .keras file
        raise ValueError(f"{record['file']} is not a loadable .keras file ({type(exc).__name__}: {str(exc)[:200]})") from None


def _is_frozen(obj) -> bool:
    from sklearn.frozen import FrozenEstimator

    return isinstance(obj, FrozenEstimator)


def _decode_frozen(record, reader):
    from sklearn.frozen import FrozenEstimator

    return FrozenEstimator(reader.value(record["estimator"]))


def _encode_xgboost(model, writer):
    params = {k: v for k, v in model.get_params().items() if _is_plain(v)}
    record = {"class": _qualname(type(model)), "file": None, "params": params}
    if _xgboost_fitted(model):  # unfitted models (an ensemble's templates) are their parameters
        record["file"], path = writer.file(writer.hint, ".ubj")
        model.save_model(path)
    return record


def _decode_xgboost(record, reader):
    return _xgboost(record, None if record.get("file") is None else reader.path(record["file"]))


def _is_split_pipeline(obj) -> bool:
    from sklearn.pipeline import Pipeline

    return isinstance(obj, Pipeline) and _needs_split(obj)


def _encode_pipeline(obj, writer):
    return {"steps": [[name, writer.value(step, f"{writer.hint}.{name}")] for name, step in obj.steps], "verbose": bool(obj.verbose)}


def _decode_pipeline(record, reader):
    from sklearn.pipeline import Pipeline

    steps = record["steps"]
    if not isinstance(steps, list) or not all(isinstance(s, list) and len(s) == 2 and isinstance(s[0], str) for s in steps):
        raise ValueError("a pipeline's steps in the manifest are not [name, value] pairs")
    return Pipeline([(name, reader.value(step)) for name, step in steps], verbose=record.get("verbose") is True)


def _encode_skops(obj, writer):
    if _needs_split(obj):
        raise TypeError(
            f"cannot save {writer.hint}: a {type(obj).__name__} holding models that skops cannot hold (Keras, XGBoost, plug-in parts); "
            "use them directly or as steps of a Pipeline"
        )
    import skops.io

    name, path = writer.file(writer.hint, ".skops")
    skops.io.dump(obj, path)
    return {"file": name, "class": _qualname(type(obj))}


def _decode_skops(record, reader):
    return read_skops(reader.path(record["file"]).read_bytes(), record["file"], reader.trusted)


# kinds that hold other parts, or hold anything skops can: the others (Keras, XGBoost, plug-in
# kinds) are what a scikit-learn object saved whole by skops must not contain
_STRUCTURAL = ("frozen", "pipeline", "skops")

register_part("keras_member", lambda o: isinstance(o, KerasMember), _encode_keras_member, _decode_keras_member, fallback=True)
register_part("kind_member", lambda o: isinstance(o, KindMember), _encode_kind_member, _decode_kind_member, fallback=True)
register_part("keras", is_keras_model, _encode_keras, _decode_keras, packages=("keras",), fallback=True)
register_part("frozen", _is_frozen, lambda o, w: {"estimator": w.value(o.estimator, w.hint)}, _decode_frozen, fallback=True)
register_part("xgboost", lambda o: _is_xgboost(o), _encode_xgboost, _decode_xgboost, packages=("xgboost",), fallback=True)
register_part("pipeline", _is_split_pipeline, _encode_pipeline, _decode_pipeline, fallback=True)
register_part("skops", lambda o: hasattr(o, "get_params"), _encode_skops, _decode_skops,
              packages=("skops",), fallback=True)


def _xgboost_fitted(model) -> bool:
    try:
        model.get_booster()
    except Exception:  # xgboost raises NotFittedError (or XGBoostError in older versions)
        return False
    return True


def _is_plain(v):
    return v is None or isinstance(v, (bool, int, str)) or (isinstance(v, float) and math.isfinite(v))


def _qualname(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_xgboost(obj) -> bool:
    return type(obj).__module__.split(".")[0] == "xgboost" and hasattr(obj, "save_model")


def _needs_split(obj) -> bool:
    """Whether ``obj`` is or holds (as a parameter, recursively) a part skops cannot hold (Keras, XGBoost, plug-in kinds)."""
    if any(part.match(obj) for part in registered_parts() if part.kind not in _STRUCTURAL):
        return True
    if not hasattr(obj, "get_params") or isinstance(obj, type):
        return False
    try:
        params = obj.get_params(deep=False)
    except Exception:  # an estimator that cannot list its parameters holds nothing we know
        return False
    values = []
    for v in params.values():
        values.extend(v if isinstance(v, (list, tuple)) else [v])
    values = [v[1] if isinstance(v, tuple) and len(v) == 2 else v for v in values]
    return any(_needs_split(v) for v in values if not isinstance(v, (str, int, float, bool, type(None))))


# --------------------------------------------------------------------------- decoding


class Decoder:
    """Rebuilds values from JSON and files already checked against the manifest (the parts' reader)."""

    def __init__(self, folder: Path, parts: list, files: set, trusted=()):
        self.folder = Path(folder)
        self.records = parts
        self.files = files
        self.trusted = tuple(trusted)
        self._built: dict[int, object] = {}
        self._building: set[int] = set()

    def path(self, name) -> Path:
        """The path of the file ``name`` of the bundle: only names the manifest lists (sha256 checked)."""
        if not isinstance(name, str) or name not in self.files:
            raise ValueError(f"the manifest refers to {name!r}, which is not one of its verified files")
        return self.folder / name

    def value(self, doc, depth: int = 0):
        """The value the JSON ``doc`` encodes (parts are rebuilt once each)."""
        if depth > _MAX_NESTING:
            raise ValueError(f"the manifest nests values more than {_MAX_NESTING} deep")
        if doc is None or isinstance(doc, (bool, int, float, str)):
            return doc
        if isinstance(doc, list):
            return [self.value(v, depth + 1) for v in doc]
        if not isinstance(doc, dict) or len(doc) != 1:
            raise ValueError(f"malformed value in the manifest: {str(doc)[:80]}")
        (tag, body), = doc.items()
        if tag == "$float":
            return float(body) if body in ("nan", "inf", "-inf") else _bad(doc)
        if tag == "$scalar":
            scalar = self.value(body, depth + 1)
            return scalar[()] if isinstance(scalar, np.ndarray) and scalar.ndim == 0 else _bad(doc)
        if tag == "$ndarray":
            return _inline_array(body)
        if tag == "$ndarray_object":
            strings = self.value(body, depth + 1)
            return strings.astype(object) if isinstance(strings, np.ndarray) and strings.dtype.kind in "US" else _bad(doc)
        if tag == "$npy":
            return np.load(self.path(body), allow_pickle=False)
        if tag == "$tuple" and isinstance(body, list):
            return tuple(self.value(v, depth + 1) for v in body)
        if tag in ("$dict", "$bunch") and isinstance(body, dict):
            items = {k: self.value(v, depth + 1) for k, v in body.items()}
            if tag == "$dict":
                return items
            from sklearn.utils import Bunch

            return Bunch(**items)
        if tag == "$part":
            return self.part(body)
        return _bad(doc)

    def part(self, index):
        if type(index) is not int or not 0 <= index < len(self.records):
            raise ValueError(f"the manifest refers to part {str(index)[:40]!r}, which it does not define")
        if index not in self._built:
            if index in self._building:
                raise ValueError(f"part {index} of the manifest contains itself")
            if len(self._building) >= _MAX_NESTING:
                raise ValueError(f"the manifest nests parts more than {_MAX_NESTING} deep")
            record = self.records[index]
            if not isinstance(record, dict):
                raise ValueError(f"part {index} of the manifest is not a record")
            self._building.add(index)
            try:
                self._built[index] = self._build(record)
            finally:
                self._building.discard(index)
        return self._built[index]

    def _build(self, record):
        return get_part(record.get("kind")).decode(record, self)


def read_skops(data: bytes, where: str, trusted=()):
    """The object in the skops file ``data``, if all its types are trusted; its trees are checked.

    Raises
    ------
    UntrustedTypesError
        The file holds types outside :data:`TRUSTED_TYPES`, those plug-ins
        trust (:func:`ensemble.parts.register_trusted_types`) and ``trusted``.
    ValueError
        The bytes are not a skops file, or a decision tree in it is malformed.
    """
    import skops.io

    try:
        types = skops.io.get_untrusted_types(data=data)
    except Exception as exc:  # not a skops file (a zip with a schema): every failure means the same
        raise ValueError(f"{where} is not a readable skops file ({type(exc).__name__}: {exc})") from None
    untrusted = [t for t in types if t not in {*TRUSTED_TYPES, TREE_TYPE, *trusted_types(), *trusted}]
    if untrusted:  # a plug-in not imported yet may trust them
        load_plugins()
        untrusted = [t for t in untrusted if t not in trusted_types()]
    if untrusted:
        raise UntrustedTypesError(
            f"{where} holds types that are not trusted: {', '.join(untrusted)}; if you trust "
            "their source, pass them to ensemble.load(..., trusted=[...]) (or --trust on the command line)"
        )
    obj = skops.io.load(io.BytesIO(data), trusted=types)
    check_trees(obj, where)  # before anything can predict with it
    return obj


def _inline_array(body) -> np.ndarray:
    """An ``$ndarray`` value: plain numbers or strings, at most ``_INLINE_ARRAY`` of them."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list) or not isinstance(body.get("shape"), list):
        raise ValueError("malformed $ndarray in the manifest")
    shape, data = body["shape"], body["data"]
    if not all(type(d) is int and d >= 0 for d in shape) or len(shape) > 32 or math.prod(shape) != len(data) or len(data) > _INLINE_ARRAY:
        raise ValueError(f"an $ndarray in the manifest has shape {str(shape)[:40]} for {len(data)} values")
    if not isinstance(body.get("dtype"), str):
        raise ValueError("malformed $ndarray dtype in the manifest")
    try:
        dtype = np.dtype(body["dtype"])
    except TypeError:
        raise ValueError(f"an $ndarray in the manifest has an unknown dtype {body['dtype'][:40]!r}") from None
    if dtype.kind not in "biufUS" or dtype.itemsize > _MAX_ITEMSIZE:
        raise ValueError(f"an $ndarray in the manifest has dtype {dtype}; inline arrays hold numbers or short strings")
    if not all(isinstance(v, str if dtype.kind in "US" else (bool, int, float)) for v in data):
        raise ValueError(f"an $ndarray of dtype {dtype} in the manifest holds values of another kind")
    return np.asarray(data, dtype=dtype).reshape(shape)


def _bad(doc):
    raise ValueError(f"malformed value in the manifest: {json.dumps(doc)[:80]}")


def _xgboost(record, path):
    import xgboost

    cls = record.get("class", "")
    allowed = {f"xgboost.sklearn.{n}": getattr(xgboost, n) for n in ("XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor")}
    if cls not in allowed:
        raise ValueError(f"unknown XGBoost model class {cls!r} in the manifest")
    params = {k: v for k, v in (record.get("params") or {}).items() if _is_plain(v)}
    model = allowed[cls](**params)
    if path is not None:
        model.load_model(path)
    return model
