r"""Predictions over data larger than memory: chunk by chunk, from memory-mapped files, text files or Dask arrays.

>>> import numpy as np, ensemble
>>> X = np.load("images.npy", mmap_mode="r")                                     # doctest: +SKIP
>>> ensemble.predict_chunked(blend, X, out="proba.npy")                           # doctest: +SKIP
>>> ensemble.predict_chunked(zoo.load("imdb_bow"), "reviews.txt", out="p.npy")   # doctest: +SKIP

The input is read ``chunk_size`` rows at a time and each chunk is predicted
on its own, so memory holds one chunk of inputs and outputs whatever the
number of rows: pages of a memory-mapped input are released from this
process once their chunk is done (they stay in the file system's cache,
which the kernel frees as needed), and the output goes to a ``.npy`` file
written chunk by chunk, under a temporary name renamed into place at the end
(an error leaves no partial file). :func:`data_hash` hashes an input the same
way, chunk by chunk; the prediction cache keys outputs with it. The reading by
rows and the digest live in the neutral :mod:`kze.data` (``zoo`` uses the same
digest); this module adds text files, data frames and predictions.

Text files follow one rule, here and wherever the package or ``zoo`` reads
reviews from a file (``zoo predict``, ``ensemble evaluate --x``): one review
per ``\n``-terminated line (the last line may lack its ``\n``), a ``\r``
before the ``\n`` removed (``\r\n`` files read as ``\n`` files). Every other
character Python's :meth:`str.splitlines` would split on (``\x0b``, ``\x0c``,
``\x1c``-``\x1e``, U+0085, U+2028, U+2029, a lone ``\r``) stays inside its
review. An empty line (empty or whitespace only) is refused with a
``ValueError`` naming the file and the line, rather than skipped or
predicted: either would break the rule that row ``i`` of the predictions is
line ``i + 1`` of the file, which makes the count of predictions always the
count of lines; and an empty line in a file of one review per line is almost
always a mistake (a review cut in two, a stray blank line) better fixed at
its source. Undecodable UTF-8 is refused the same way, naming its line.
"""

import os
import sys

import numpy as np

from ensemble.kinds import Member, kind_of
from kze.data import DEFAULT_CHUNK_SIZE, check_chunk_size, data_hash, num_rows, row_chunks

__all__ = ["TextLines", "data_hash", "iter_chunks", "open_input", "predict_chunked", "read_lines"]


class TextLines:
    r"""The lines of a UTF-8 text file, one review per line, read lazily.

    Line ``i + 1`` of the file is row ``i``: lines end at ``\n`` only (a
    ``\r`` before it is removed; other separators such as U+0085 or U+2028
    stay in the review) and an empty or whitespace-only line is refused (see
    the module's docstring). The file is read once when the object is
    created, to count the lines and check them, and again for each pass over
    :func:`iter_chunks` (which raises a ``ValueError`` if the file no longer
    has that many lines); it is never held in memory. Its :func:`data_hash`
    is that of an object array of the same lines.

    Parameters
    ----------
    path : path
        A UTF-8 text file.

    Raises
    ------
    ValueError
        Naming the file and the 1-based number of its first empty or
        undecodable line.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self._n = sum(len(lines) for lines in self._batches(DEFAULT_CHUNK_SIZE))

    def __len__(self):
        return self._n

    def __repr__(self):
        return f"TextLines({self.path!r}, {self._n} lines)"

    @property
    def shape(self):
        return (self._n,)

    def row_chunks(self, size):
        """Yield the lines as 1-D object arrays of at most ``size`` strings, in order (read from the file each time).

        Raises
        ------
        ValueError
            The file no longer has the number of lines counted when it was opened.
        """
        for lines in self._batches(size, self._n):
            yield np.array(lines, dtype=object)

    def _batches(self, size, expected=None):
        """Lists of at most ``size`` lines, in order; a ``ValueError`` unless there are ``expected`` lines."""
        batch, count = [], 0
        for line in _iter_lines(self.path):
            count += 1
            if expected is not None and count > expected:
                break
            batch.append(line)
            if len(batch) == size:
                yield batch
                batch = []
        if expected is not None and count != expected:  # rows would be missing or extra in the outputs
            now = "more than" if count > expected else f"{count} lines now, not"
            raise ValueError(f"{self.path}: {now} the {expected} lines counted when it was opened (was it changed since?)")
        if batch:
            yield batch


def read_lines(path):
    r"""The lines of a UTF-8 text file, one review per line, as a list of strings.

    The whole file in memory, under :class:`TextLines`' rule: ``\n`` ends a
    line, a ``\r`` before it is removed, other separators stay in the line,
    and an empty or whitespace-only line is refused.

    Parameters
    ----------
    path : path
        A UTF-8 text file.

    Returns
    -------
    list of str
        Line ``i + 1`` of the file at index ``i``; empty for an empty file.

    Raises
    ------
    ValueError
        Naming the file and the 1-based number of its first empty or
        undecodable line.
    """
    return list(_iter_lines(os.fspath(path)))


def _iter_lines(path):
    """The reviews of text file ``path``, one per line, checked (the module's rule)."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):  # a binary file splits at b"\n" only
            if raw.endswith(b"\n"):
                raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}: line {number} is not UTF-8 text ({exc.reason})") from None
            if not line.strip():
                raise ValueError(f"{path}: line {number} is empty (one review per line: remove the line or put its review on it)")
            yield line


def open_input(X):
    r"""``X`` ready for :func:`iter_chunks`: a path is opened, anything else is returned as is.

    A ``.npy`` file is opened memory-mapped (read-only, no pickle); any
    other file is read as text, one example per ``\n``-terminated line
    (:class:`TextLines`: an empty line or undecodable text raises a
    ``ValueError`` naming the file and the line).
    """
    if isinstance(X, (str, os.PathLike)):
        if os.fspath(X).endswith(".npy"):
            return np.load(X, mmap_mode="r", allow_pickle=False)
        return TextLines(X)
    return X


def iter_chunks(X, chunk_size=DEFAULT_CHUNK_SIZE):
    """Yield ``(start, stop, chunk)`` over the rows of ``X``, ``chunk_size`` rows at a time.

    ``X`` is an array (a memory-mapped one is read chunk by chunk and its
    pages are released after each chunk), a Dask array (each chunk is
    computed on its own), a :class:`TextLines`, a data frame or a sequence.
    Chunks are NumPy arrays (slices of a data frame for a data frame);
    lines of text come as 1-D object arrays of strings.
    """
    if not hasattr(X, "iloc"):
        yield from row_chunks(X, chunk_size)  # arrays, memory maps, Dask arrays, TextLines, sequences
        return
    chunk_size = check_chunk_size(chunk_size)
    n = num_rows(X)
    for start in range(0, n, chunk_size):  # a data frame: rows, columns kept
        yield start, min(start + chunk_size, n), X.iloc[start:start + chunk_size]


def predict_chunked(estimator, X, method="predict_proba", *, chunk_size=DEFAULT_CHUNK_SIZE, out=None, progress=None):
    r"""``estimator``'s ``method`` output on ``X``, computed ``chunk_size`` rows at a time.

    Parameters
    ----------
    estimator : fitted estimator, ensemble or keras.Model
        A model of a registered member kind (a Keras model, say) predicts
        through its kind's adapter (:func:`ensemble.kinds.kind_of`; for Keras,
        class probabilities, columns in output order).
    X : array, numpy.memmap, dask array, TextLines or path
        The inputs. A path to a ``.npy`` file is opened memory-mapped; any
        other path is a UTF-8 text file, one example per ``\n``-terminated
        line, empty lines refused (see :class:`TextLines`).
    method : str, default="predict_proba"
    chunk_size : int, default=10000
        Rows predicted at a time: memory holds one chunk of inputs and
        outputs (plus the estimator's own needs).
    out : path, default=None
        Write the outputs to this ``.npy`` file, chunk by chunk, under a
        temporary name renamed onto ``out`` once every chunk is done (an
        error leaves ``out`` as it was and no partial file). Without it the
        outputs are returned in memory.
    progress : bool, default=None
        A progress bar over the rows on stderr; by default only when stderr
        is a terminal.

    Returns
    -------
    ndarray
        The outputs, one row per row of ``X``: in memory, or with ``out``
        the written file opened memory-mapped (read-only).
    """
    X = open_input(X)
    n = num_rows(X)
    if n == 0:
        raise ValueError("X has no rows to predict")
    kind = kind_of(estimator)
    if kind is not None and not isinstance(estimator, Member):
        estimator = kind.wrap(estimator)
    if not hasattr(estimator, method):
        raise ValueError(f"{type(estimator).__name__} has no {method}()")
    predict = getattr(estimator, method)
    from tqdm.auto import tqdm

    with tqdm(total=n, unit="rows", unit_scale=True, desc=method, file=sys.stderr, leave=False,
              disable=None if progress is None else not progress) as bar:
        if out is None:
            return _predict_into(predict, X, n, chunk_size, bar, None)
        from kze.files import atomic_path

        with atomic_path(out, suffix=".npy") as tmp:
            _predict_into(predict, X, n, chunk_size, bar, tmp)
    return np.load(out, mmap_mode="r", allow_pickle=False)


def _predict_into(predict, X, n, chunk_size, bar, path):
    """Fill an array (``path`` None) or the ``.npy`` file ``path`` with the outputs, chunk by chunk."""
    result, fh = None, None
    try:
        for start, stop, chunk in iter_chunks(X, chunk_size):
            output = np.asarray(predict(chunk))
            if output.ndim == 0 or len(output) != stop - start:
                raise ValueError(f"the estimator gave {output.shape[:1] or 'no'} rows of output for {stop - start} rows of input")
            if start == 0:
                shape, dtype = (n, *output.shape[1:]), output.dtype
                if path is None:
                    result = np.empty(shape, dtype=dtype)
                else:
                    fh = _open_npy(path, shape, dtype)
            elif output.shape[1:] != shape[1:] or not np.can_cast(output.dtype, dtype, "same_kind") or output.dtype.itemsize > dtype.itemsize:
                raise ValueError(f"rows {start}-{stop}: outputs of shape {output.shape[1:]} and dtype {output.dtype}, "
                                 f"unlike the first chunk's {shape[1:]} {dtype}")
            if fh is None:
                result[start:stop] = output
            else:
                fh.write(memoryview(np.ascontiguousarray(output, dtype=dtype)).cast("B"))
            bar.update(stop - start)
    finally:
        if fh is not None:
            fh.close()
    return result


def _open_npy(path, shape, dtype):
    """``path`` as a ``.npy`` file of ``shape`` and ``dtype``, open for writing its data from the start."""
    if dtype.hasobject:
        raise ValueError(f"outputs of dtype {dtype} cannot be written to a .npy file (it would need pickle)")
    header = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)  # writes the header, sizes the file
    offset = header.offset
    del header
    fh = open(path, "r+b")  # noqa: SIM115 (closed by the caller)
    fh.seek(offset)
    return fh
