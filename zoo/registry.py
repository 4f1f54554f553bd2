"""The model registry: ``registry.yaml``, validated when read.

The registry lists every zoo entry: its architecture (builder and
hyperparameters), input spec, classes, weight and vocabulary files with their
sha256, parameter count, metrics on the validation and test splits, the recipe
that trained it and the library versions that produced it.

By default the registry is the one shipped with the package (``zoo/registry.yaml``
in an installed wheel, ``registry.yaml`` at the root of a source checkout) and
its weight files live in ``zoo/weights``. ``$ZOO_REGISTRY`` or the ``path``
argument selects another registry file, whose weights live in a ``weights``
folder beside it.
"""

from __future__ import annotations

import copy
import fnmatch
import os
from pathlib import Path

import yaml

from zoo._files import atomic_write_text

__all__ = ["Registry", "RegistryError"]

_PACKAGE_DIR = Path(__file__).resolve().parent
_FORMAT_VERSION = 1
_HEADER = (
    "# Zoo registry: one entry per pretrained model. Written by `zoo train` / scripts/train_zoo.py;\n"
    "# metrics and sha256 values are what the recipe produced. Validated by zoo.registry on read.\n"
)

_TASKS = {"image-classification", "text-classification"}
_REQUIRED = {
    "name": str,
    "task": str,
    "dataset": str,
    "builder": str,
    "params": dict,
    "input": dict,
    "classes": list,
    "weights": dict,
    "parameters": int,
    "metrics": dict,
    "recipe": dict,
    "versions": dict,
    "licence": str,
}
# Builder names and their input kind; kept in step with zoo.architectures.BUILDERS
# (checked by a test) so that reading the registry does not import Keras.
BUILDER_KINDS = {
    "mlp": "image",
    "bn_cnn": "image",
    "sepconv": "image",
    "residual": "image",
    "inception": "image",
    "text_conv1d": "text",
    "text_rnn": "text",
    "text_bow": "text",
}
_RECIPE_REQUIRED = {"precision": str, "epochs": int, "batch_size": int, "optimizer": dict, "callbacks": dict, "seed": int, "early_stopping_size": int}


class RegistryError(ValueError):
    """The registry file or one of its entries is malformed, or a name is unknown."""


def _default_path() -> Path:
    env = os.environ.get("ZOO_REGISTRY")
    if env:
        return Path(env).expanduser()
    for candidate in (_PACKAGE_DIR / "registry.yaml", _PACKAGE_DIR.parent / "registry.yaml"):
        if candidate.exists():
            return candidate
    raise RegistryError(f"no registry.yaml found in {_PACKAGE_DIR} or its parent; set ZOO_REGISTRY")


class Registry:
    """A registry file and the folder that holds its weight files.

    Parameters
    ----------
    path : path, optional
        The ``registry.yaml`` to read; defaults to ``$ZOO_REGISTRY`` or the shipped one.
    weights_dir : path, optional
        Folder of the weight and vocabulary files; defaults to ``zoo/weights``
        for the shipped registry and ``<registry folder>/weights`` otherwise.
    """

    def __init__(self, path: str | os.PathLike | None = None, weights_dir: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else _default_path()
        if weights_dir is None:
            shipped = self.path.resolve() in {_PACKAGE_DIR / "registry.yaml", _PACKAGE_DIR.parent / "registry.yaml"}
            weights_dir = _PACKAGE_DIR / "weights" if shipped else self.path.parent / "weights"
        self.weights_dir = Path(weights_dir)
        self._entries = self._read()

    # ------------------------------------------------------------------ reading

    def _read(self) -> dict[str, dict]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RegistryError(f"cannot read registry {self.path}: {exc}") from exc
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RegistryError(f"registry {self.path} is not valid YAML: {exc}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("models"), list):
            raise RegistryError(f"registry {self.path}: expected a mapping with a 'models' list")
        if doc.get("format_version") != _FORMAT_VERSION:
            raise RegistryError(f"registry {self.path}: format_version must be {_FORMAT_VERSION}, got {doc.get('format_version')!r}")
        entries: dict[str, dict] = {}
        for i, entry in enumerate(doc["models"]):
            _validate_entry(entry, i)
            if entry["name"] in entries:
                raise RegistryError(f"registry entry {entry['name']!r}: duplicate name")
            entries[entry["name"]] = entry
        return entries

    # ------------------------------------------------------------------ queries

    def names(self, pattern: str = "*", dataset: str | None = None) -> list[str]:
        """Entry names matching a shell-style ``pattern`` (and ``dataset``), in file order."""
        return [n for n, e in self._entries.items() if fnmatch.fnmatchcase(n, pattern) and (dataset is None or e["dataset"] == dataset)]

    def entry(self, name: str) -> dict:
        """A deep copy of the entry called ``name``."""
        try:
            return copy.deepcopy(self._entries[name])
        except KeyError:
            close = ", ".join(self.names(f"*{name}*")[:5]) or ", ".join(self.names()[:5])
            raise RegistryError(f"unknown model {name!r}; known models include: {close}") from None

    def weights_path(self, name: str) -> Path:
        """Path of the entry's ``.weights.h5`` file."""
        return self.weights_dir / self._entries[name]["weights"]["file"]

    def vocabulary_path(self, name: str) -> Path | None:
        """Path of the entry's vocabulary file, or None for image models."""
        vocab = self._entries[name].get("vocabulary")
        return self.weights_dir / vocab["file"] if vocab else None

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    # ------------------------------------------------------------------ writing

    def put(self, entry: dict) -> None:
        """Add or replace an entry (validated) and save the file atomically.

        The file is re-read under an exclusive lock first, so entries written
        meanwhile by another process (say, a second training run) are kept.
        """
        import fcntl

        lock_path = self.path.with_name(f".{self.path.name}.lock")
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._entries = self._read()
            names = list(self._entries)
            index = names.index(entry.get("name")) if entry.get("name") in names else len(names)
            _validate_entry(entry, index)
            self._entries[entry["name"]] = copy.deepcopy(entry)
            self.save()

    def save(self) -> None:
        """Write the registry back to its file atomically."""
        doc = {"format_version": _FORMAT_VERSION, "models": list(self._entries.values())}
        atomic_write_text(self.path, _HEADER + yaml.safe_dump(doc, sort_keys=False, width=120, default_flow_style=None))


def _validate_entry(entry, index: int) -> None:
    if not isinstance(entry, dict):
        raise RegistryError(f"registry entry #{index}: expected a mapping, got {type(entry).__name__}")
    label = repr(entry.get("name", f"#{index}"))

    def fail(field, problem):
        raise RegistryError(f"registry entry {label}, field {field!r}: {problem}")

    for field, kind in _REQUIRED.items():
        if field not in entry:
            fail(field, "missing")
        value = entry[field]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            fail(field, f"expected {kind.__name__}, got {type(value).__name__}")
    if entry["task"] not in _TASKS:
        fail("task", f"expected one of {sorted(_TASKS)}, got {entry['task']!r}")
    from zoo.datasets import DATASETS

    if entry["dataset"] not in DATASETS:
        fail("dataset", f"unknown dataset {entry['dataset']!r}")
    if entry["builder"] not in BUILDER_KINDS:
        fail("builder", f"unknown builder {entry['builder']!r}")
    _check_file_ref(entry["weights"], "weights", fail, suffix=".weights.h5")
    if BUILDER_KINDS[entry["builder"]] == "text":
        if not isinstance(entry.get("vocabulary"), dict):
            fail("vocabulary", "text models need a vocabulary {file, sha256}")
        _check_file_ref(entry["vocabulary"], "vocabulary", fail, suffix=".txt")
    if len(entry["classes"]) < 2:
        fail("classes", "need at least two class names")
    for split in ("validation", "test"):
        m = entry["metrics"].get(split)
        if not isinstance(m, dict) or not all(isinstance(m.get(k), (int, float)) for k in ("accuracy", "log_loss")):
            fail("metrics", f"'{split}' needs numeric accuracy and log_loss")
        if not 0.0 <= m["accuracy"] <= 1.0:
            fail("metrics", f"{split} accuracy {m['accuracy']} is outside [0, 1]")
    for field, kind in _RECIPE_REQUIRED.items():
        if not isinstance(entry["recipe"].get(field), kind):
            fail(f"recipe.{field}", f"missing or not {kind.__name__}")
    if entry["parameters"] <= 0:
        fail("parameters", "must be positive")


def _check_file_ref(ref: dict, field: str, fail, suffix: str) -> None:
    name, digest = ref.get("file"), ref.get("sha256")
    if not isinstance(name, str) or not name.endswith(suffix) or "/" in name or "\\" in name:
        fail(f"{field}.file", f"expected a bare file name ending in {suffix}, got {name!r}")
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        fail(f"{field}.sha256", f"expected 64 lowercase hex digits, got {digest!r}")
