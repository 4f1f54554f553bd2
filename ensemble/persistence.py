"""Saving and loading fitted ensembles without pickle.

A saved ensemble is a folder::

    PATH/CURRENT                  name of the live version, replaced atomically
    PATH/v-<time>-<id>/manifest.json
    PATH/v-<time>-<id>/000-...    one file per model, meta-learner or large array

``manifest.json`` holds the format version, the estimator's class, its
parameters and fitted attributes (as JSON, see :mod:`ensemble._codec`), the
library versions that wrote it and the sha256 of every other file. A save
writes a new version folder beside the live one and then swaps ``CURRENT``,
so a failed or killed save leaves the previous ensemble loadable, and of two
concurrent saves one complete ensemble wins. The previous version is kept
for readers that started before the swap.

:func:`load` checks every file's sha256 before opening it, accepts only bare
file names that the manifest lists, and opens nothing with pickle.

Decisions:

- ``memory`` (the prediction-cache folder) is a setting of the machine, not
  of the model: it is saved as ``null`` and ignored on load, so a manifest
  cannot make prediction create, write or read a folder of its choosing.
- Every way a manifest can be malformed (types, nesting, parts that contain
  themselves, garbage part files) is a :class:`BundleError`; the decoder
  bounds nesting and inline arrays, and builder hyperparameters are counted
  against the weight file before a model is built (``zoo.parameter_count``).
- A save's temporary folder ``.tmp-<host>-<pid>-*`` is removed by the next
  save to the same folder once its process has ended (or after an hour, for
  another machine's), so a killed save leaves nothing behind for long.
- Each ``format_version`` is read by its own reader (``_READERS``); a new
  format adds a reader and keeps the old ones, so format 1 stays readable for
  good, and a version newer than this package knows is a :class:`BundleError`
  that says to upgrade.
- Nothing here knows ``zoo``: the kinds of saved parts, the extra top-level
  classes (``zoo.ZooClassifier``) and trusted types come from plug-ins
  (:mod:`ensemble.parts`); a part kind names the packages whose versions the
  bundle records, and load checks every recorded version that is installed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
import warnings
from importlib import metadata as _metadata  # not `metadata`: save() takes a parameter of that name
from pathlib import Path

import numpy as np

from ensemble._codec import Decoder, Encoder, UntrustedTypesError
from ensemble.parts import MissingPartError, estimator_class, get_part, registered_estimators
from ensemble.plugins import load_plugins
from kze.files import atomic_path, locked, sha256_file

__all__ = ["BundleError", "BundleVersionWarning", "UntrustedTypesError", "load", "read_manifest", "save"]

FORMAT = "keras-zoo-ensemble"
FORMAT_VERSION = 1
MANIFEST, POINTER = "manifest.json", "CURRENT"
_VERSION_DIR = re.compile(r"^v-\d{20}-[0-9a-f]{8}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_STALE_TMP_S = 3600
_DISTRIBUTION = "keras-zoo-ensemble"  # the distribution of this package, whose version a bundle records


class BundleError(ValueError):
    """A saved ensemble is missing, malformed, tampered with or not readable by this version."""


class BundleVersionWarning(UserWarning):
    """A saved ensemble was written by other versions of the libraries it uses."""


def _classes():
    """Class name -> class of what ``save`` saves: the ensembles, then the classes plug-ins registered."""
    from ensemble.blend import BlendClassifier, BlendRegressor
    from ensemble.stack import StackClassifier, StackRegressor

    classes = {cls.__name__: cls for cls in (BlendClassifier, BlendRegressor, StackClassifier, StackRegressor)}
    return {**registered_estimators(), **classes}


# --------------------------------------------------------------------------- save


def save(estimator, path, *, metadata=None):
    """Save a fitted ensemble to the folder ``path``, atomically.

    Parameters
    ----------
    estimator : BlendClassifier, BlendRegressor, StackClassifier, StackRegressor, or a class a plug-in registered
        A fitted ensemble (or, e.g., a ``zoo.ZooClassifier``). Its members may be zoo models (saved by reference),
        other Keras models (``.keras``), scikit-learn estimators and pipelines
        (``skops``) and XGBoost models (XGBoost's own format).
    path : str or path-like
        Folder to write. If it holds a saved ensemble, that one is replaced as a
        whole; any other existing non-empty folder is refused.
    metadata : dict, optional
        JSON-able information to keep in the manifest (e.g. what it was fitted on).

    Returns
    -------
    path : pathlib.Path
        The folder of the version just written.
    """
    from sklearn.utils.validation import check_is_fitted

    load_plugins()  # the kinds of parts and classes they provide, for what the estimator holds
    classes = _classes()
    if type(estimator).__name__ not in classes or type(estimator) is not classes[type(estimator).__name__]:
        raise TypeError(f"ensemble.save saves {', '.join(classes)}; got {type(estimator).__name__}")
    check_is_fitted(estimator)
    root = Path(path)
    _prepare_root(root)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_tmp_prefix()}{os.getpid()}-", dir=root))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700; give the folder the usual mode
    try:
        manifest = _write_version(estimator, tmp, metadata)
        _write_json(tmp / MANIFEST, manifest)
        with locked(root / ".lock"):
            name = f"v-{time.time_ns():020d}-{secrets.token_hex(4)}"
            os.rename(tmp, root / name)
            with atomic_path(root / POINTER, durable=True) as tmp:
                tmp.write_text(name + "\n", encoding="utf-8")
            _prune(root, keep=name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root / name


def _prepare_root(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise BundleError(f"{root} exists and is not a folder")
    if root.is_dir() and not (root / POINTER).exists():
        others = [p.name for p in root.iterdir() if not p.name.startswith((".tmp-", ".lock"))]
        if others:
            raise BundleError(f"{root} is a non-empty folder that holds no saved ensemble; choose another path")
    root.mkdir(parents=True, exist_ok=True)


def _write_version(estimator, folder: Path, metadata) -> dict:
    encoder = Encoder(folder)
    params = estimator.get_params(deep=False)
    encoded_params = {}
    for key, value in params.items():
        encoded_params[key] = encoder.value(_plain_param(key, value), f"param.{key}")
    fitted = {}
    for key, value in vars(estimator).items():
        if key in params or key.startswith("__") or not (key.endswith("_") or key.startswith("_")):
            continue
        if key == "_metadata_request":
            continue
        fitted[key] = encoder.value(value, key.strip("_") or key)
    files = {name: _sha256(folder / name) for name in encoder.files}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": type(estimator).__name__,
        "params": encoded_params,
        "fitted": fitted,
        "parts": encoder.parts,
        "files": files,
        "versions": _versions(encoder.parts),
        "metadata": _json_safe(metadata or {}),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _plain_param(key, value):
    """Parameters that are not data: ``memory`` is not saved (a setting of the machine); others must be plain."""
    if key == "memory":
        return None
    if key == "random_state" and isinstance(value, np.random.RandomState):
        raise TypeError("cannot save random_state=RandomState(...); use an int or None")
    if callable(value) and not hasattr(value, "get_params") and not hasattr(value, "fit"):
        raise TypeError(f"cannot save the callable parameter {key}={value!r}; use a scorer name")
    return value


def _json_safe(doc):
    try:
        return json.loads(json.dumps(doc, allow_nan=False, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))
    except ValueError as exc:
        raise TypeError(f"metadata must be JSON-able: {exc}") from None


def _versions(parts) -> dict:
    """Versions of Python, the core libraries, this package and the packages its parts' kinds name."""
    import sklearn

    versions = {"python": sys.version.split()[0], "numpy": np.__version__, "scikit-learn": sklearn.__version__}
    with contextlib.suppress(_metadata.PackageNotFoundError):  # run from a source tree: not recorded
        versions[_DISTRIBUTION] = _metadata.version(_DISTRIBUTION)
    for kind in dict.fromkeys(p["kind"] for p in parts):
        for package in get_part(kind).packages:
            with contextlib.suppress(_metadata.PackageNotFoundError):
                versions.setdefault(package, _metadata.version(package))
    return versions


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _prune(root: Path, keep: str) -> None:
    """Remove versions but the new and the previous one, and temporary folders of ended or stale saves."""
    versions = sorted((p for p in root.iterdir() if _VERSION_DIR.match(p.name)), reverse=True)
    kept = {keep, *[p.name for p in versions if p.name != keep][:1]}
    for p in versions:
        if p.name not in kept:
            shutil.rmtree(p, ignore_errors=True)
    now = time.time()
    for p in root.glob(".tmp-*"):
        with contextlib.suppress(OSError):
            if now - p.lstat().st_mtime > _STALE_TMP_S or _writer_is_gone(p.name):
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    for p in root.glob(f".{POINTER}.*.part"):  # a pointer's temporary file, left by a save killed while renaming
        with contextlib.suppress(OSError):
            if now - p.lstat().st_mtime > _STALE_TMP_S and not p.is_dir():
                p.unlink()


def _tmp_prefix() -> str:
    """``.tmp-<host>-``: temporary folders name the machine and process that write them."""
    import hashlib
    import socket

    return f".tmp-{hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]}-"


def _writer_is_gone(name: str) -> bool:
    """Whether the temporary folder ``name`` was left by a save on this machine whose process has ended."""
    prefix = _tmp_prefix()
    if not name.startswith(prefix):
        return False  # another machine's (or an older version's) save: only the age rule applies
    pid = name[len(prefix):].split("-", 1)[0]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, owned by another user
        return False
    return False


def _write_json(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")


def _sha256(path: Path) -> str:

    return sha256_file(path)


# --------------------------------------------------------------------------- load


def read_manifest(path) -> tuple[dict, Path]:
    """The manifest of the saved ensemble at ``path`` and its version folder, checked for form only."""
    folder = _version_folder(Path(path))
    file = folder / MANIFEST
    if file.is_symlink() or not file.is_file():
        raise BundleError(f"{folder} holds no {MANIFEST}")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{file} is not valid JSON ({exc})") from None
    except RecursionError:
        raise BundleError(f"{file} nests values too deeply to be a manifest") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleError(f"{file} is not a saved ensemble (format {doc.get('format') if isinstance(doc, dict) else None!r})")
    version = doc.get("format_version")
    if type(version) is not int or version < 1:
        raise BundleError(f"{file} has format_version {str(version)[:40]!r}, which is not a format version (a whole number from 1)")
    if version not in _READERS:
        raise BundleError(f"{file} has format_version {version}; this keras-zoo-ensemble reads {_known_versions()}: upgrade it")
    _READERS[version][0](doc, file)
    return doc, folder


def _known_versions() -> str:
    known = sorted(_READERS)
    return f"format {known[0]}" if len(known) == 1 else f"formats {', '.join(map(str, known))}"


def _version_folder(root: Path) -> Path:
    if (root / MANIFEST).exists():
        return root
    pointer = root / POINTER
    if pointer.is_symlink():
        raise BundleError(f"{pointer} is a symbolic link; a saved ensemble's {POINTER} is a plain file, refusing to follow it")
    if not root.is_dir() or not pointer.is_file():
        raise BundleError(f"{root} is not a saved ensemble (no {POINTER} or {MANIFEST})")
    name = pointer.read_text(encoding="utf-8").strip()
    folder = root / name
    if not _VERSION_DIR.match(name) or folder.is_symlink() or not folder.is_dir():
        raise BundleError(f"{pointer} names {name[:80]!r}, which is not a version folder of {root}")
    return folder


def load(path, *, trusted=None):
    """Load an ensemble saved by :func:`save`, verifying every file first.

    Parameters
    ----------
    path : str or path-like
        The folder given to :func:`save` (or one of its version folders).
    trusted : list of str, optional
        Extra type or function names (``"module.Name"``) to trust in saved
        scikit-learn parts, beyond the package's allow-list. Trusting a
        ``FunctionTransformer``'s function means running it: add only names
        whose source you trust.

    Returns
    -------
    estimator
        The fitted ensemble, predicting exactly as when it was saved.

    Raises
    ------
    BundleError
        The folder is not a saved ensemble, a file is missing, altered or
        outside the folder, or the format is newer than this package.
    UntrustedTypesError
        A scikit-learn part holds types outside the allow-list.
    """
    root = Path(path)
    try:
        return _load_once(root, trusted or ())
    except (BundleError, FileNotFoundError):
        # A concurrent save may have pruned the version being read: retry once if CURRENT moved on.
        before = _pointer(root)
        if before is None:
            raise
        time.sleep(0.05)
        if _pointer(root) == before and not _was_pruned(root, before):
            raise
        return _load_once(root, trusted or ())


def _pointer(root: Path):
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return (root / POINTER).read_text(encoding="utf-8").strip()
    return None


def _was_pruned(root: Path, name: str) -> bool:
    return not (root / name).is_dir()


def _load_once(root: Path, trusted):
    doc, folder = read_manifest(root)
    return _READERS[doc["format_version"]][1](doc, folder, trusted)


# --------------------------------------------------------------------------- format 1


def _check_v1(doc: dict, file: Path) -> None:
    """The fields of a format-1 manifest have their types."""
    for key, kind in (("class", str), ("params", dict), ("fitted", dict), ("parts", list), ("files", dict), ("versions", dict)):
        if not isinstance(doc.get(key), kind):
            raise BundleError(f"{file}: field {key!r} is missing or not a {kind.__name__}")


def _read_v1(doc: dict, folder: Path, trusted):
    """The estimator of a format-1 manifest: files checked, then versions, then values rebuilt."""
    files = _verify_files(doc, folder)
    _check_versions(doc)
    try:
        cls = estimator_class(doc["class"], _classes())
    except MissingPartError as exc:
        raise BundleError(f"{folder}: {exc}") from None
    decoder = Decoder(folder, doc["parts"], files, trusted)
    try:
        # memory (the prediction-cache folder) is a setting of the machine, never of the file: a saved
        # value is ignored, so a manifest cannot make prediction write or read a folder of its choosing.
        params = {k: None if k == "memory" else decoder.value(v) for k, v in doc["params"].items()}
        estimator = cls(**params)
        for key, value in doc["fitted"].items():
            if not isinstance(key, str) or not (key.endswith("_") or key.startswith("_")) or key.startswith("__"):
                raise BundleError(f"manifest field fitted.{key!s:.40} is not a fitted attribute")
            setattr(estimator, key, decoder.value(value))
    except (UntrustedTypesError, BundleError, FileNotFoundError):
        raise
    except MissingPartError as exc:
        raise BundleError(f"{folder}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError, OSError) as exc:
        # Every way a hand-edited manifest or a damaged part file can fail to rebuild is the same refusal.
        raise BundleError(f"{folder}: cannot rebuild the ensemble: {type(exc).__name__}: {str(exc)[:300]}") from exc
    return estimator


def _verify_files(doc: dict, folder: Path) -> set:

    files = doc["files"]
    for name, digest in files.items():
        if not isinstance(name, str) or not _FILE_NAME.match(name) or name in (MANIFEST, POINTER):
            raise BundleError(f"manifest names a file {name[:80]!r}: only bare file names inside the folder are allowed")
        path = folder / name
        if path.is_symlink() or not path.is_file():
            raise BundleError(f"{folder} lacks {name} (or it is a link or not a regular file)")
        got = sha256_file(path)
        if got != digest:
            raise BundleError(f"{path} has sha256 {got[:12]}…, not the {str(digest)[:12]}… its manifest records; refusing to read it")
    return set(files)


def _check_versions(doc: dict) -> None:
    saved = doc["versions"]
    now = _installed_versions(saved)
    for lib, version in saved.items():
        if lib == "python" or lib not in now or now[lib] == version:
            continue
        if lib == "keras" and str(version).split(".")[0] != str(now[lib]).split(".")[0]:
            raise BundleError(f"the ensemble was saved with keras {version}; this is keras {now[lib]}: the formats differ")
        warnings.warn(
            f"the ensemble was saved with {lib} {version} and is loaded with {lib} {now[lib]}; "
            "check its predictions", BundleVersionWarning, stacklevel=4,
        )


def _installed_versions(saved) -> dict:
    """The installed versions of the libraries ``saved`` names (those not installed are left out)."""
    import sklearn

    now = {"numpy": np.__version__, "scikit-learn": sklearn.__version__}
    for lib in saved:
        if lib not in now and lib != "python" and isinstance(lib, str):
            with contextlib.suppress(_metadata.PackageNotFoundError, ValueError):
                now[lib] = _metadata.version(lib)
    return now


# format_version -> (check of the manifest's fields, reader); every format ever written stays here
_READERS = {1: (_check_v1, _read_v1)}
