"""The one digest of a data set, read chunk by chunk: arrays, memory maps, Dask arrays and lines of text.

>>> from kze.data import data_hash, data_hash_pair
>>> data_hash(X)                        # doctest: +SKIP
>>> data_hash_pair(X, y)                # doctest: +SKIP

Decisions:

- Duck-typed, so ``kze`` imports neither ``ensemble`` nor ``zoo``: an input
  is read by rows through ``X[start:stop]`` (NumPy arrays, memory maps, Dask
  arrays: each slice computed on its own) or, for inputs that cannot be
  sliced cheaply such as the lines of a text file, through its own
  ``row_chunks(size)`` method, which yields 1-D arrays of consecutive rows;
  such an input has a ``shape`` and, without a ``dtype``, holds text (its rows
  are ``str``). A read-only memory map's pages are released from the process
  after each chunk, so hashing a file larger than memory holds one chunk.
- The digest covers whether the input is text, its dtype, its shape and its
  values (strings by their UTF-8 bytes, each with its length), and starts with
  ``ensemble-data-v1``: it is the digest ``ensemble.chunked.data_hash`` has
  always computed, so prediction caches keyed by it stay valid. It does not
  depend on the chunk size or on how the input is held (in memory, memory
  mapped, Dask, or a text file's lines against an object array of the same
  strings).
- :func:`data_hash_pair` is the digest of inputs with their labels (what a
  fit or an evaluation was run on): the two digests, hashed together.
"""

from __future__ import annotations

import hashlib
import mmap

import numpy as np

__all__ = ["DEFAULT_CHUNK_SIZE", "check_chunk_size", "data_hash", "data_hash_pair", "num_rows", "row_chunks"]

DEFAULT_CHUNK_SIZE = 10_000
_HASH_CHUNK_BYTES = 16 << 20  # rows hashed at a time: about 16 MiB
_HASH_FORMAT = b"ensemble-data-v1\0"
_PAIR_FORMAT = b"kze-data-pair-v1\0"


def check_chunk_size(chunk_size) -> int:
    """``chunk_size`` as an ``int``; a ``ValueError`` unless it is a positive whole number."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return int(chunk_size)


def num_rows(X) -> int:
    """The number of rows of ``X`` (its first dimension, or its length).

    Raises
    ------
    ValueError
        ``X`` is a 0-d array, or a Dask array of unknown length.
    """
    shape = getattr(X, "shape", None)
    if shape is not None:
        if len(shape) == 0:
            raise ValueError("X is a single value (a 0-d array); expected one row per example")
        if shape[0] is None or shape[0] != shape[0]:  # a Dask array of unknown length (nan)
            raise ValueError("X has an unknown number of rows (a Dask array with unknown chunk sizes: call compute_chunk_sizes())")
        return int(shape[0])
    return len(X)


def row_chunks(X, chunk_size=DEFAULT_CHUNK_SIZE):
    """Yield ``(start, stop, chunk)`` over the rows of ``X``, ``chunk_size`` rows at a time.

    Parameters
    ----------
    X : array, numpy.memmap, dask array, sequence, or an object with ``row_chunks(size)``
        Sliced by rows (a Dask slice is computed on its own, a memory map's
        pages are released after each chunk); an object with a
        ``row_chunks(size)`` method is read through it instead.
    chunk_size : int, default=10000

    Yields
    ------
    start, stop : int
    chunk : ndarray
        Rows ``start`` to ``stop`` of ``X``.
    """
    chunk_size = check_chunk_size(chunk_size)
    if hasattr(X, "row_chunks"):
        start = 0
        for rows in X.row_chunks(chunk_size):
            rows = np.asarray(rows)
            yield start, start + len(rows), rows
            start += len(rows)
        return
    n = num_rows(X)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        part = X[start:stop]
        if _is_dask_array(part):
            part = part.compute()
        yield start, stop, np.asarray(part)
        _release(X)


def data_hash(X, *, chunk_size=None) -> str:
    """sha256 (hex) of ``X``'s type, shape and values, computed chunk by chunk.

    Never holds more than a chunk of ``X``: the same digest for an array in
    memory, the same array memory-mapped, as a Dask array or, for text, as
    the lines of a file (``ensemble.chunked.TextLines``), and for any
    ``chunk_size``.

    Parameters
    ----------
    X : ndarray, numpy.memmap, dask array, or text with ``row_chunks(size)``
        Numbers, booleans, fixed-width strings, or an object array of
        ``str``/``bytes`` (raw text).
    chunk_size : int, default=None
        Rows hashed at a time (default: about 16 MiB of them).

    Raises
    ------
    TypeError
        For other inputs (lists, data frames, sparse matrices, object
        arrays of other things); hash those another way.
    """
    lines = hasattr(X, "row_chunks") and not hasattr(X, "dtype")
    text = lines or getattr(X, "dtype", None) == object
    if not (text or isinstance(X, np.ndarray) or _is_dask_array(X)):
        raise TypeError(f"data_hash takes arrays and lines of text, not {type(X).__name__}")
    dtype = np.dtype(object) if lines else np.dtype(X.dtype)
    if not text and dtype.kind not in "biufcUSmM":
        raise TypeError(f"data_hash cannot hash arrays of dtype {dtype}")
    shape = tuple(int(s) for s in X.shape)
    if chunk_size is None:
        row_bytes = max(1, dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64)))
        chunk_size = DEFAULT_CHUNK_SIZE if text else max(1, _HASH_CHUNK_BYTES // row_bytes)
    digest = hashlib.sha256(_HASH_FORMAT)
    digest.update(f"{'text' if text else 'array'}\0{dtype.str}\0{shape}\0".encode())
    for _, _, chunk in row_chunks(X, chunk_size):
        if text:
            _update_text(digest, chunk)
        else:
            digest.update(memoryview(np.ascontiguousarray(chunk)).cast("B"))
    return digest.hexdigest()


def data_hash_pair(X, y, *, chunk_size=None) -> str:
    """sha256 (hex) of inputs ``X`` and their labels ``y`` together.

    Parameters
    ----------
    X, y : as for :func:`data_hash`
        A list or tuple is read as ``numpy.asarray`` of it.
    chunk_size : int, default=None
        Rows hashed at a time, for both.
    """
    digest = hashlib.sha256(_PAIR_FORMAT)
    for part in (X, y):
        part = np.asarray(part) if isinstance(part, (list, tuple)) else part
        digest.update(data_hash(part, chunk_size=chunk_size).encode() + b"\0")
    return digest.hexdigest()


def _update_text(digest, chunk):
    for item in chunk.flat:
        if isinstance(item, str):
            data = b"s" + item.encode("utf-8", "surrogatepass")
        elif isinstance(item, bytes):
            data = b"b" + item
        else:
            raise TypeError(f"data_hash hashes object arrays of str or bytes, not {type(item).__name__}")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)


def _is_dask_array(X):
    return type(X).__module__.split(".")[0] == "dask" and hasattr(X, "compute") and hasattr(X, "chunks")


def _release(X):
    """Drop a read-only or shared memory map's pages from this process (they stay in the page cache)."""
    mm = getattr(X, "_mmap", None)
    if mm is None or getattr(X, "mode", "c") not in ("r", "r+", "w+") or not hasattr(mm, "madvise"):
        return
    try:
        mm.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):  # a closed map, or a platform without it: pages stay until the kernel needs them
        pass


def load_npz(path: str) -> tuple:
    """Read ``X`` and ``y`` from a user's ``.npz`` file (no pickle); ``ValueError`` names what is wrong with it."""
    import zipfile

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = {"X", "y"} - set(npz.files)
            if missing:
                raise ValueError(f"{path} lacks array(s) {', '.join(sorted(missing))}; expected arrays named X and y")
            X, y = npz["X"], npz["y"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"cannot read {path} as .npz: {exc}") from exc
    for name, array in (("X", X), ("y", y)):
        if array.ndim == 0:
            raise ValueError(f"{path}: {name} is a single value (a 0-d array); expected one row per example")
        if len(array) == 0:
            raise ValueError(f"{path}: {name} is empty (shape {array.shape}); expected at least one example")
    if len(X) != len(y):
        raise ValueError(f"{path}: X has {len(X)} rows but y has {len(y)}")
    if X.dtype.kind == "U":
        X = X.astype(object)
    return X, y
