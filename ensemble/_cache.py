"""Cache of member predictions: verified ``.npy`` files, never a pickle.

Each output is one file ``<key>-<sha256>.npy`` in the cache folder: ``key``
hashes the member's fingerprint, the prediction method and a hash of ``X``
(:func:`input_hash`: arrays and text are hashed chunk by chunk, never copied);
``sha256`` is that of the file's bytes. A file is used only if its bytes match
the digest in its name and it loads with ``allow_pickle=False`` into a numeric
or string array with one row per sample (and, where the member's classes
are known, one column per class); anything else (truncated, edited,
object arrays, symlinks) is a miss: it is removed and recomputed. Files are
written atomically (temporary file, then rename), so concurrent writers are
safe. An unusable cache folder gives one warning and predictions run uncached.

The digest detects damaged or edited entries, not deliberate forgeries:
whoever can write to the cache folder can also name a file after its digest,
so the folder must be as trusted as the data beside it (a forged entry can
change predictions; it cannot run code).
"""

import contextlib
import hashlib
import io
import os
import stat
import tempfile
import threading
import warnings
from pathlib import Path

import joblib
import numpy as np
from sklearn.utils.validation import _num_samples

from ensemble.kinds import Member
from kze.files import atomic_path

_FORMAT = "ensemble-prediction-cache-v3"
_KINDS = "biufU"  # booleans, integers, floats, strings: never object arrays
_warned = set()
_warned_lock = threading.Lock()


class CacheWarning(UserWarning):
    """The prediction cache folder cannot be used; predictions run uncached."""


class PredictionCache:
    """A folder of verified prediction files (see the module docstring)."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def __repr__(self):
        return f"PredictionCache({str(self.folder)!r})"

    def get(self, key, n_samples, row_shape=None):
        """The cached output for ``key``, or None; bad entries are removed.

        ``row_shape``, when known, is the shape of one row of the output (``(n_classes,)``
        for ``predict_proba``): an entry with other columns is a bad entry.
        """
        for path in sorted(self.folder.glob(f"{key}-*.npy")):
            out = _read_entry(path, n_samples, row_shape)
            if out is not None:
                return out
            with contextlib.suppress(OSError):
                path.unlink()
        return None

    def put(self, key, out):
        """Store ``out`` under ``key`` atomically; outputs that are not plain arrays are not cached."""
        out = np.asarray(out)
        if out.dtype.kind not in _KINDS or out.ndim == 0:
            return
        buffer = io.BytesIO()
        np.save(buffer, out, allow_pickle=False)
        data = buffer.getvalue()
        target = self.folder / f"{key}-{hashlib.sha256(data).hexdigest()}.npy"
        try:
            with atomic_path(target) as tmp:
                tmp.write_bytes(data)
        except OSError as exc:
            _warn_once(self.folder, exc)


def check_cache(memory):
    """A :class:`PredictionCache` for ``memory`` (a path, a ``joblib.Memory`` or None), or None.

    None also when the folder cannot be created or written to: then a
    :class:`CacheWarning` is given once per folder and predictions run uncached.
    """
    if memory is None or isinstance(memory, PredictionCache):
        return memory
    if isinstance(memory, (str, os.PathLike)):
        folder = memory
    elif hasattr(memory, "location"):  # joblib.Memory: its location folder
        folder = memory.location
        if folder is None:
            return None
    else:
        raise ValueError(f"memory must be None, a folder path or a joblib.Memory; got {type(memory).__name__}")
    folder = Path(os.fspath(folder)).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        _warn_once(folder, exc)
        return None
    return PredictionCache(folder)


def fingerprint(member):
    """What a member's predictions depend on: its kind's fingerprint (weights for Keras), the fitted state otherwise."""
    if isinstance(member, Member):
        return member.fingerprint()
    return joblib.hash(member)


def input_hash(X):
    """Hash of ``X`` for cache keys: :func:`ensemble.chunked.data_hash` (chunk by chunk) for arrays and
    text, ``joblib.hash`` for anything else (lists, data frames, sparse matrices)."""
    from ensemble.chunked import data_hash

    try:
        return data_hash(X)
    except TypeError:
        return joblib.hash(X)


def cached_output(memory, member, method, X, x_hash=None):
    """``getattr(member, method)(X)``, served from ``memory`` when it holds the result."""
    cache = check_cache(memory)
    if cache is None:
        return getattr(member, method)(X)
    key = hashlib.sha256(
        "\0".join([_FORMAT, fingerprint(member), method, x_hash or input_hash(X)]).encode()
    ).hexdigest()
    n_samples = _num_samples(X)
    out = cache.get(key, n_samples, _row_shape(member, method))
    if out is None:
        out = getattr(member, method)(X)
        cache.put(key, out)
    return out


def _row_shape(member, method):
    """The shape of one row of ``member``'s ``method`` output when it is known, else None."""
    classes = getattr(member, "classes_", None)
    if classes is None:
        return None
    if method == "predict_proba":
        return (len(classes),)
    return () if method == "predict" else None


def _read_entry(path, n_samples, row_shape=None):
    """The array in ``path`` if the file is regular, matches its name's digest and is plain; else None."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        data = fh.read()
    if hashlib.sha256(data).hexdigest() != path.stem.rpartition("-")[2]:
        return None
    try:
        out = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None
    if not isinstance(out, np.ndarray) or out.dtype.kind not in _KINDS or out.ndim == 0 or len(out) != n_samples:
        return None
    if row_shape is not None and out.shape[1:] != tuple(row_shape):
        return None
    return out


def _warn_once(folder, exc):
    with _warned_lock:
        if str(folder) in _warned:
            return
        _warned.add(str(folder))
    reason = exc.strerror or str(exc)
    warnings.warn(f"prediction cache {folder} is not usable ({reason}); running without it", CacheWarning, stacklevel=2)
