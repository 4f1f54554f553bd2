"""Dataset loaders with fixed splits: MNIST, Fashion-MNIST and IMDB.

Files are read in their official formats (IDX ``.gz``; the ``aclImdb`` layout
from a ``.tar.gz`` archive or an extracted folder) from a data directory:

1. the ``data_dir`` argument, else
2. ``$ZOO_DATA_DIR``, else
3. a per-user cache directory (``$XDG_CACHE_HOME/keras-zoo/data``).

Each file lives in ``<data_dir>/<dataset>/<file name>`` and is checked against
a table of known-good sha256 values before it is read. A missing file is
downloaded from its official URL (or ``$ZOO_DATA_MIRROR/<dataset>/<file>``).

Splits are fixed: for MNIST and Fashion-MNIST, ``train`` is the first 50,000
official training images, ``validation`` the last 10,000 and ``test`` the
official 10,000; for IMDB, ``train`` (20,000) and ``validation`` (5,000) are a
seeded, stratified split of the official training reviews and ``test`` the
official 25,000; each IMDB split comes in a fixed, seeded random order (the
archive is sorted by label), so any prefix of it is a fair sample.
``validation`` is reserved for blending ensembles.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import itertools
import os
import re
import stat
import tarfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kze.files import atomic_path, cache_dir, env_path
from zoo._files import ChecksumError, DataUnavailableError, download, verify

__all__ = [
    "DATASETS",
    "SPLITS",
    "ChecksumError",
    "DataUnavailableError",
    "cache_dir",
    "class_names",
    "file_table",
    "load",
    "resolve_data_dir",
]

SPLITS = ("train", "validation", "test")
IMDB_SPLIT_SEED = 20111  # ACL 2011; fixed forever: changing it changes every IMDB number
IMDB_VALIDATION_SIZE = 5000
IMAGE_VALIDATION_SIZE = 10000


@dataclass(frozen=True)
class _File:
    name: str
    sha256: str
    url: str


_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/"


def _idx_files(url: str, shas: tuple[str, str, str, str]) -> dict[str, _File]:
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    keys = ("train_images", "train_labels", "test_images", "test_labels")
    return {k: _File(n, s, url + n) for k, n, s in zip(keys, names, shas)}


_FILES: dict[str, dict[str, _File]] = {
    "mnist": _idx_files(
        _MNIST_URL,
        (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ),
    ),
    "fashion_mnist": _idx_files(
        _FASHION_URL,
        (
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        ),
    ),
    "imdb": {
        # Either archive works; the official one is downloaded when neither is present.
        "official": _File(
            "aclImdb_v1.tar.gz",
            "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
            _IMDB_URL + "aclImdb_v1.tar.gz",
        ),
        "labeled": _File(
            "aclImdb_v1_labeled.tar.gz",
            "b5ce734d1f38e2102ddf0773af95c892376e3d28d4c412ca6070ad468eb395a6",
            _IMDB_URL + "aclImdb_v1.tar.gz",
        ),
    },
}

DATASETS = {
    "mnist": {
        "classes": [str(i) for i in range(10)],
        "licence": "CC BY-SA 3.0, Yann LeCun and Corinna Cortes",
    },
    "fashion_mnist": {
        "classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
        "licence": "MIT, Zalando SE",
    },
    "imdb": {
        "classes": ["negative", "positive"],
        "licence": "Maas et al., Learning Word Vectors for Sentiment Analysis, ACL 2011 (cite when used)",
    },
}


def class_names(name: str) -> list[str]:
    """Return the class names of a dataset, indexed by integer label."""
    _check_name(name)
    return list(DATASETS[name]["classes"])


def resolve_data_dir(path: str | os.PathLike | None = None) -> Path:
    """Resolve the data directory: ``path``, else ``$ZOO_DATA_DIR``, else the user cache.

    A relative ``$ZOO_DATA_DIR`` is made absolute once, against the working
    directory of its first use, so a later ``os.chdir`` does not move it.
    """
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get("ZOO_DATA_DIR")
    if env:
        return env_path(env)
    return cache_dir() / "data"


def load(name: str, split: str, data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of a dataset.

    Parameters
    ----------
    name : {"mnist", "fashion_mnist", "imdb"}
    split : {"train", "validation", "test"}
    data_dir : path, optional
        Data directory; defaults to ``$ZOO_DATA_DIR`` or the user cache.

    Returns
    -------
    X : ndarray
        uint8 images of shape ``(n, 28, 28, 1)``, or an object array of review strings.
    y : ndarray of int64
        Integer labels.
    """
    _check_name(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    root = resolve_data_dir(data_dir)
    if name == "imdb":
        return _imdb_split(root, split)
    return _image_split(root, name, split)


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")


# --------------------------------------------------------------------------- files


def _hint(root: Path) -> str:
    return (
        f"Put the official file in {root} (or point ZOO_DATA_DIR at a directory holding "
        f"<dataset>/<file>), or set ZOO_DATA_MIRROR to a reachable mirror."
    )


def _fetch(root: Path, dataset: str, spec: _File) -> Path:
    """Return the verified local path of ``spec``, downloading it if it is missing."""
    path = root / dataset / spec.name
    if not path.exists():
        mirror = os.environ.get("ZOO_DATA_MIRROR")
        url = f"{mirror.rstrip('/')}/{dataset}/{spec.name}" if mirror else spec.url
        created = list(itertools.takewhile(lambda p: not p.exists(), [path.parent, *path.parent.parents]))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataUnavailableError(f"{path} is missing and {path.parent} cannot be created ({exc}). {_hint(root)}") from exc
        try:
            download(url, path, spec.sha256, hint=f"{path} is missing. {_hint(root)}")
        except BaseException:
            for folder in created:  # a mistyped data directory is not left behind
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
    verify(path, spec.sha256, what=f"{dataset} file")
    return path


# --------------------------------------------------------------------------- images


def _read_idx(path: Path, expected_magic: int) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable gzip file: {exc}") from exc
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise ValueError(f"{path} is not an IDX file of the expected kind (magic {magic}, expected {expected_magic})")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: header says {dims}, found {len(raw) - offset} bytes of data")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def _image_split(root: Path, name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    files = _FILES[name]
    part = "test" if split == "test" else "train"
    images = _read_idx(_fetch(root, name, files[f"{part}_images"]), 2051)
    labels = _read_idx(_fetch(root, name, files[f"{part}_labels"]), 2049)
    if len(images) != len(labels):
        raise ValueError(f"{name} {part}: {len(images)} images but {len(labels)} labels")
    if split == "train":
        sl = slice(0, len(images) - IMAGE_VALIDATION_SIZE)
    elif split == "validation":
        sl = slice(len(images) - IMAGE_VALIDATION_SIZE, None)
    else:
        sl = slice(None)
    X = np.ascontiguousarray(images[sl])[..., None]
    return X, labels[sl].astype(np.int64)


# --------------------------------------------------------------------------- IMDB

_REVIEW = re.compile(r"^aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_IMDB_CACHE_VERSION = 2
# The known content of an extracted aclImdb/ folder: the sha256 of the `sha256sum` listing of the
# 50,000 labeled reviews the loader reads, sorted by name ("<sha256>  aclImdb/train/pos/0_9.txt" lines;
# equal to `find aclImdb/{train,test}/{pos,neg} -name '*_*.txt' | LC_ALL=C sort | xargs sha256sum | sha256sum`).
# Both official archives hold these files; other files of the folder (README, imdb.vocab, train/unsup/,
# the .feat and urls_*.txt files of the full archive) are not read and not covered.
_IMDB_FOLDER_SHA256 = "b155ae18c4016500d64b7ea091f3f04c4ea9e702ab3bdb2b4aa0effbd4da11c6"
_warned_caches: set[str] = set()


def _imdb_archive(root: Path) -> tuple[Path, str]:
    """The verified IMDB archive (either one, or a fresh download) and its sha256."""
    specs = _FILES["imdb"]
    for spec in (specs["labeled"], specs["official"]):
        if (root / "imdb" / spec.name).exists():
            return _fetch(root, "imdb", spec), spec.sha256
    return _fetch(root, "imdb", specs["official"]), specs["official"].sha256


def _iter_reviews(source: Path):
    """Yield (relative name, text) for every labeled review of an archive or a verified extracted folder."""
    if source.is_dir() or source.is_symlink():
        for name, data in _read_folder(source):
            yield name, data.decode("utf-8")
        return
    try:
        with tarfile.open(source, "r:gz") as tar:
            for member in tar:
                if member.isfile() and _REVIEW.match(member.name):
                    yield member.name, tar.extractfile(member).read().decode("utf-8")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"{source} is not a readable aclImdb .tar.gz archive: {exc}") from exc


def _read_folder(folder: Path) -> list[tuple[str, bytes]]:
    """The labeled reviews of an extracted ``aclImdb/`` folder, sorted by name, checked against the known digest.

    Symbolic links are refused, not followed: the folder, its ``{train,test}/{pos,neg}``
    subfolders and the review files must be real. Raises ``ChecksumError`` on any difference.
    """
    reviews = []
    for sub in ("", "train", "test", "train/pos", "train/neg", "test/pos", "test/neg"):
        path = folder / sub
        if path.is_symlink():
            raise ChecksumError(f"{path} is a symbolic link; the aclImdb folder must hold real folders and files (refusing to follow it)")
    for part in ("train", "test"):
        for label in ("pos", "neg"):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(folder / part / label) as entries:
                for entry in entries:
                    name = f"aclImdb/{part}/{label}/{entry.name}"
                    if _REVIEW.match(name):
                        reviews.append((name, _read_regular_file(Path(entry.path))))
    reviews.sort()
    listing = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in reviews)
    got = hashlib.sha256(listing.encode()).hexdigest()
    if got != _IMDB_FOLDER_SHA256:
        n_train = sum(name.startswith("aclImdb/train/") for name, _ in reviews)
        raise ChecksumError(
            f"extracted folder {folder} does not hold the official labeled reviews ({n_train} train and "
            f"{len(reviews) - n_train} test review files; digest {got}, expected {_IMDB_FOLDER_SHA256}); "
            "re-extract aclImdb_v1.tar.gz there, or remove the folder to read the archive"
        )
    return reviews


def _read_regular_file(path: Path) -> bytes:
    """The bytes of ``path``, refusing symbolic links and anything but a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if path.is_symlink():
            raise ChecksumError(f"{path} is a symbolic link; refusing to follow it") from None
        raise ChecksumError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ChecksumError(f"{path} is not a regular file")
        return fh.read()


def _parse_imdb(reviews, source: Path) -> dict[str, np.ndarray]:
    names, texts = [], []
    for name, text in reviews:
        names.append(name)
        texts.append(text)
    order = np.argsort(np.array(names))  # archive order must not matter
    names = [names[i] for i in order]
    texts = [texts[i] for i in order]
    is_train = np.array([n.startswith("aclImdb/train/") for n in names])
    counts = (int(is_train.sum()), int((~is_train).sum()))
    if counts != (25000, 25000):
        raise ValueError(f"{source} holds {counts[0]} train and {counts[1]} test reviews; expected 25,000 each (incomplete?)")
    labels = np.array([1 if "/pos/" in n else 0 for n in names], dtype=np.int64)
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.cumsum([0] + [len(b) for b in encoded]).astype(np.int64)
    return {
        "blob": np.frombuffer(b"".join(encoded), dtype=np.uint8),
        "offsets": offsets,
        "labels": labels,
        "is_train": is_train,
    }


def _imdb_arrays(root: Path) -> dict[str, np.ndarray]:
    """The parsed reviews, from the parse cache keyed by the verified source's digest, else parsed now.

    An extracted ``aclImdb/`` folder is read and verified in full on every
    load (its digest is the cache key); an archive is verified by its sha256.
    """
    folder = root / "imdb" / "aclImdb"
    if os.path.lexists(folder):
        source, key = folder, _IMDB_FOLDER_SHA256
        reviews = _read_folder(folder)
    else:
        source, key = _imdb_archive(root)
        reviews = None
    prefix = f"imdb-v{_IMDB_CACHE_VERSION}-{key[:16]}"
    arrays = _read_cache(prefix, {"blob", "offsets", "labels", "is_train"})
    if arrays is None:
        if reviews is not None:
            reviews = ((name, data.decode("utf-8")) for name, data in reviews)
        arrays = _parse_imdb(_iter_reviews(source) if reviews is None else reviews, source)
        _write_cache(prefix, arrays)
    return arrays


# --------------------------------------------------------------------------- parse cache


def _read_cache(prefix: str, keys: set[str]) -> dict[str, np.ndarray] | None:
    """Arrays of the cache entry ``<prefix>-<sha256>.npz`` whose bytes match its name; bad entries are removed."""
    for path in sorted(cache_dir().glob(f"{prefix}-*.npz")):
        try:
            data = _read_regular_file(path)
            if hashlib.sha256(data).hexdigest() == path.stem.rpartition("-")[2]:
                with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                    if set(npz.files) == keys:
                        return {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            pass
        with contextlib.suppress(OSError):
            path.unlink()
    return None


def _write_cache(prefix: str, arrays: dict[str, np.ndarray]) -> None:
    """Store ``arrays`` as ``<prefix>-<sha256>.npz``, atomically; an unusable cache folder warns once."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    folder = cache_dir()
    try:
        with atomic_path(folder / f"{prefix}-{hashlib.sha256(data).hexdigest()}.npz") as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        if str(folder) not in _warned_caches:
            _warned_caches.add(str(folder))
            warnings.warn(f"cache folder {folder} is not usable ({exc.strerror or exc}); the IMDB archive is parsed on every load", stacklevel=4)


def _imdb_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    arrays = _imdb_arrays(root)
    blob = arrays["blob"].tobytes()
    offsets = arrays["offsets"]
    part = arrays["is_train"] if split != "test" else ~arrays["is_train"]
    index = np.flatnonzero(part)
    if split == "test":
        index = np.random.default_rng(IMDB_SPLIT_SEED).permutation(index)
    else:
        train_idx, val_idx = _stratified_split(arrays["labels"][index], IMDB_VALIDATION_SIZE, IMDB_SPLIT_SEED)
        index = index[train_idx if split == "train" else val_idx]
    X = np.empty(len(index), dtype=object)
    for j, i in enumerate(index):
        X[j] = blob[offsets[i] : offsets[i + 1]].decode("utf-8")
    return X, arrays["labels"][index]


def _stratified_split(y: np.ndarray, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified split into (train, validation) positions, each in seeded random order."""
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(len(y)), test_size=n_val, stratify=y, random_state=seed, shuffle=True)


def file_table() -> dict[str, dict[str, str]]:
    """Known-good sha256 values of every official file, by dataset and file name."""
    return {ds: {f.name: f.sha256 for f in files.values()} for ds, files in _FILES.items()}

