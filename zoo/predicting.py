"""Reading the inputs of a zoo model from files, and predicting them (what ``zoo predict`` runs).

Decisions:

- Inputs: ``.npy``/``.npz`` arrays (never unpickled), PNG images (converted
  to grey and resized to the model's input; images over
  ``MAX_IMAGE_PIXELS`` are refused before decoding: decompression bombs), or
  text files of reviews, one per line (``ensemble.chunked.read_lines``, the
  one rule for review files). Every input is checked against what the model
  takes (shape, dtype, values) before TensorFlow starts, so input errors
  come fast; an input of a kind the model cannot take is refused, naming
  the file.
- Errors are :class:`InputError` (a ``ValueError``): the command line
  reports them in one line with exit code 2.
- :func:`predict_to_file`: one input predicted chunk by chunk into a
  ``.npy`` file of probabilities; a ``.npy`` input is memory-mapped and a
  text file read line by line, so memory holds one chunk whatever the
  input's size; the output is written under a temporary name and renamed
  into place when complete (``ensemble.chunked.predict_chunked``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["MAX_IMAGE_PIXELS", "InputError", "check_input", "open_input", "predict_rows", "predict_to_file", "read_array",
           "read_input", "read_inputs", "read_png"]

MAX_IMAGE_PIXELS = 4096 * 4096  # larger PNG inputs are refused before decoding (decompression bombs)


class InputError(ValueError):
    """An input file that cannot be read, or holds what the model does not take."""


def check_input(entry: dict, X, source: str):
    """``X`` as the model of registry entry ``entry`` takes it, or an :class:`InputError` saying what it takes."""
    from zoo._inputs import check_array

    try:
        return check_array(X, entry["input"]["shape"], entry["input"]["dtype"], entry["name"])
    except ValueError as exc:
        raise InputError(f"{source}: {exc}") from None


def read_inputs(entry: dict, paths: list) -> tuple[np.ndarray, list[str]]:
    """Every input file, in order, checked for the model: ``(X, a name for each example)``."""
    for p in paths:
        if not Path(p).is_file():
            raise InputError(f"input file {p} does not exist")
    arrays, names = [], []
    for p in paths:
        X, where = read_input(entry, Path(p))
        arrays.append(check_input(entry, X, str(p)))
        names += where
    return np.concatenate(arrays), names


def read_input(entry: dict, path: Path) -> tuple:
    """The examples in one input file, and a name for each."""
    path = Path(path)
    text_model = entry["input"]["dtype"] == "string"
    if path.suffix in (".npy", ".npz"):
        X = read_array(path)
        if X.ndim == 0:
            raise InputError(f"{path} holds a single value (a 0-d array); expected one row per example")
        return X, [f"{path.name}[{i}]" for i in range(len(X))]
    if path.suffix.lower() == ".png":
        if text_model:
            raise InputError(f"{entry['name']} is a text model; {path} is an image (give a text file with one review per line)")
        return read_png(path, entry["input"]["shape"])[None], [path.name]
    if not text_model:
        raise InputError(f"{entry['name']} is an image model; give .npy/.npz arrays or PNG images, not {path.name}")
    from ensemble.chunked import read_lines

    try:
        lines = read_lines(path)
    except OSError as exc:
        raise InputError(f"cannot read {path} as UTF-8 text: {exc}") from None
    except ValueError as exc:  # an empty or undecodable line: the message names the file and the line
        raise InputError(str(exc)) from None
    if not lines:
        raise InputError(f"{path} holds no reviews (one review per line)")
    return np.array(lines, dtype=object), [f"{path.name} line {i + 1}" for i in range(len(lines))]


def read_array(path: Path) -> np.ndarray:
    """The array in a ``.npy`` file, or the ``X`` (or only) array of a ``.npz`` file; no pickle."""
    import zipfile

    path = Path(path)
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as npz:
            key = "X" if "X" in npz.files else npz.files[0] if len(npz.files) == 1 else None
            if key is None:
                raise InputError(f"{path} holds arrays {npz.files}; name the input array X")
            return npz[key]
    except InputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc


def read_png(path: Path, shape) -> np.ndarray:
    """A PNG as a uint8 image of ``shape``; images over ``MAX_IMAGE_PIXELS`` are refused before decoding."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, with our message
            image = Image.open(path)
        with image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise InputError(f"{path} is {width}x{height} pixels, more than the {MAX_IMAGE_PIXELS:,} read as input (a decompression bomb?)")
            image = image.convert("L")
    except InputError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"cannot read {path} as an image: {exc}") from None
    if image.size != (shape[1], shape[0]):
        image = image.resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)[..., None]


def predict_rows(name: str, X, names: list[str]) -> list[dict]:
    """Predict ``X`` with zoo model ``name``: one ``{"input", "label", "class_index", "probability", "probabilities"}`` per example."""
    import zoo

    classes = zoo.info(name)["classes"]
    proba = zoo.predict_proba(zoo.load(name), X)
    return [
        {"input": n, "label": classes[int(p.argmax())], "class_index": int(p.argmax()), "probability": float(p.max()), "probabilities": p.tolist()}
        for n, p in zip(names, proba)
    ]


def open_input(entry: dict, paths: list, before_read=None) -> tuple:
    """The one input of :func:`predict_to_file`, opened for chunked reading and checked: ``(path, X)``.

    A ``.npy`` array is memory-mapped, a text file counted and checked line by
    line (``ensemble.chunked.TextLines``), other inputs read whole.
    ``before_read()`` runs once the path is known to exist (checking the output's name).
    """
    from ensemble.chunked import TextLines, iter_chunks

    if len(paths) != 1:
        raise InputError("--out takes one input file (a .npy array or a text file with one review per line)")
    path = Path(paths[0])
    if not path.is_file():
        raise InputError(f"input file {path} does not exist")
    if before_read is not None:
        before_read()
    if path.suffix in (".npy", ".npz") or path.suffix.lower() == ".png" or entry["input"]["dtype"] != "string":
        try:
            X = np.load(path, mmap_mode="r", allow_pickle=False) if path.suffix == ".npy" else read_input(entry, path)[0]
        except InputError:
            raise
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read {path}: {exc}") from None
    else:
        try:
            X = TextLines(path)  # every line counted and checked now, before any prediction
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc}") from None
        except ValueError as exc:  # an empty or undecodable line: the message names the file and the line
            raise InputError(str(exc)) from None
    if len(X) == 0:
        raise InputError(f"{path} holds no examples")
    check_input(entry, next(iter_chunks(X, 64))[2], str(path))  # shape and dtype now; values chunk by chunk
    return path, X


def predict_to_file(name: str, path, X, out, *, chunk_size: int | None = None, progress=None) -> dict:
    """Predict an input opened by :func:`open_input` chunk by chunk into the ``.npy`` file ``out``.

    Returns
    -------
    dict
        ``name``, ``input``, ``out``, ``n`` (rows), ``columns`` (the classes)
        and ``predicted``: how many rows each class won.
    """
    import zoo
    from ensemble.chunked import iter_chunks, predict_chunked

    classes = zoo.info(name)["classes"]
    model = zoo.load(name)
    try:
        proba = predict_chunked(model, X, chunk_size=chunk_size or 10_000, out=out, progress=progress)
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
    counts = np.zeros(len(classes), dtype=np.int64)
    for _, _, chunk in iter_chunks(proba, chunk_size or 10_000):
        counts += np.bincount(chunk.argmax(axis=1), minlength=len(classes))
    return {"name": name, "input": str(path), "out": str(out), "n": int(counts.sum()), "columns": classes,
            "predicted": {c: int(k) for c, k in zip(classes, counts)}}
