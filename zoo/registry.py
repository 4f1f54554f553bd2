"""The model registry: ``registry.yaml``, validated when read.

The registry lists every zoo entry: its architecture (builder and
hyperparameters), input spec, classes, weight and vocabulary files with their
sha256, parameter count, metrics on the validation and test splits, the recipe
that trained it and the library versions that produced it.

By default the registry is the one shipped with the package (``zoo/registry.yaml``
in an installed wheel, ``registry.yaml`` at the root of a source checkout) and
its weight files live in ``zoo/weights``. ``$ZOO_REGISTRY`` or the ``path``
argument selects another registry file (or a folder holding ``registry.yaml``,
such as a search's model library), whose weights live in a ``weights`` folder
beside it.

Format versions: ``1`` (the shipped registry) requires a dataset, a licence and
metrics on the ``validation`` and ``test`` splits. ``2`` (model libraries
written by ``zoo.search``) also reads every version-1 entry, and relaxes it:
``dataset`` and ``licence`` are optional (models trained on a user's data),
``metrics`` may hold any splits (a search records the ``early_stopping``
slice only; test metrics exist for shipped entries alone), ``task`` may also be
``tabular-classification``, and an entry may say which search trial produced it
(``search: {study, trial, objective: {name, value, direction}}``). A registry
keeps its version when entries are added.
"""

from __future__ import annotations

import copy
import fnmatch
import os
from pathlib import Path

import yaml

from kze.files import atomic_write_text, locked

__all__ = ["Registry", "RegistryError", "shipped_path"]

_PACKAGE_DIR = Path(__file__).resolve().parent
_FORMAT_VERSIONS = (1, 2)
_NEW_FORMAT = 2  # what Registry.create writes
_HEADER = (
    "# Zoo registry: one entry per pretrained model. Written by `zoo train` / scripts/train_zoo.py;\n"
    "# metrics and sha256 values are what the recipe produced. Validated by zoo.registry on read.\n"
)

_TASKS = {1: {"image-classification", "text-classification"}}
_TASKS[2] = _TASKS[1] | {"tabular-classification"}
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
_OPTIONAL_V2 = ("dataset", "licence")  # models trained on a user's data have neither
_INPUT_DTYPES = {"uint8", "float32", "string"}
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
    "text_nb": "text",
    "text_region_cnn": "text",
}
_RECIPE_REQUIRED = {"precision": str, "epochs": int, "batch_size": int, "optimizer": dict, "callbacks": dict, "seed": int, "early_stopping_size": int}


class RegistryError(ValueError):
    """The registry file or one of its entries is malformed, or a name is unknown."""


_SHIPPED = (_PACKAGE_DIR / "registry.yaml", _PACKAGE_DIR.parent / "registry.yaml")  # wheel, source checkout


def shipped_path() -> Path:
    """The ``registry.yaml`` shipped with the package (``zoo/registry.yaml`` in a wheel, the checkout's root file).

    Raises
    ------
    RegistryError
        Neither exists.
    """
    for candidate in _SHIPPED:
        if candidate.exists():
            return candidate
    raise RegistryError(f"no registry.yaml found in {_PACKAGE_DIR} or its parent; set ZOO_REGISTRY")


def _default_path() -> Path:
    env = os.environ.get("ZOO_REGISTRY")
    if env:
        return Path(env).expanduser()
    return shipped_path()


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
        if self.path.is_dir():  # a library folder
            self.path = self.path / "registry.yaml"
        if weights_dir is None:
            shipped = self.path.resolve() in set(_SHIPPED)
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
        version = doc.get("format_version")
        if version not in _FORMAT_VERSIONS or isinstance(version, bool):
            raise RegistryError(f"registry {self.path}: format_version must be one of {_FORMAT_VERSIONS}, got {version!r}")
        self.format_version = version
        entries: dict[str, dict] = {}
        for i, entry in enumerate(doc["models"]):
            _validate_entry(entry, i, version)
            if entry["name"] in entries:
                raise RegistryError(f"registry entry {entry['name']!r}: duplicate name")
            entries[entry["name"]] = entry
        return entries

    # ------------------------------------------------------------------ queries

    def is_shipped(self) -> bool:
        """Whether this is the registry shipped in the package, or writes into the package's weights folder."""
        return self.path.resolve() in {p.resolve() for p in _SHIPPED} or self.weights_dir.resolve() == (_PACKAGE_DIR / "weights").resolve()

    def names(self, pattern: str = "*", dataset: str | None = None) -> list[str]:
        """Entry names matching a shell-style ``pattern`` (and ``dataset``), in file order."""
        return [n for n, e in self._entries.items() if fnmatch.fnmatchcase(n, pattern) and (dataset is None or e.get("dataset") == dataset)]

    def entry(self, name: str) -> dict:
        """A deep copy of the entry called ``name``."""
        try:
            return copy.deepcopy(self._entries[name])
        except KeyError:
            raise RegistryError(f"unknown model {name!r}; {_suggest(str(name), self.names())}") from None

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

    @classmethod
    def create(cls, path: str | os.PathLike) -> Registry:
        """The registry at ``path`` (a file, or a folder for its ``registry.yaml``), created empty if missing.

        A new registry has the latest ``format_version``; creation happens
        under the same lock as :meth:`put`, so concurrent creators and writers
        never lose an entry.
        """
        path = Path(path)
        if path.suffix not in (".yaml", ".yml"):
            path = path / "registry.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        with locked(lock_file(path)):
            if not path.exists():
                atomic_write_text(path, _dump(_NEW_FORMAT, []))
        return cls(path)

    def put(self, entry: dict) -> None:
        """Add or replace an entry (validated) and save the file atomically.

        The file is re-read under an exclusive lock first, so entries written
        meanwhile by another process (say, a second training run) are kept.
        """
        with locked(lock_file(self.path)):
            self._entries = self._read()
            names = list(self._entries)
            index = names.index(entry.get("name")) if entry.get("name") in names else len(names)
            _validate_entry(entry, index, self.format_version)
            self._entries[entry["name"]] = copy.deepcopy(entry)
            self.save()

    def save(self) -> None:
        """Write the registry back to its file atomically (keeping its format version)."""
        atomic_write_text(self.path, _dump(self.format_version, list(self._entries.values())))


def _suggest(name: str, names: list[str]) -> str:
    """What to tell about an unknown ``name``: the nearest ``names`` by edit distance, else those containing it, else a few.

    Within ``max(2, len(name) // 3)`` edits (a transposition counts as one), so
    ``mnist_mpl`` suggests ``mnist_mlp`` and not the ``fashion_mnist_*`` models
    that also contain ``mnist``.
    """
    limit = max(2, len(name) // 3)
    near = sorted((d, n) for n in names if (d := _edit_distance(name, n, limit)) <= limit)
    if near:
        return f"did you mean {', '.join(n for _, n in near[:3])}?"
    return f"known models include: {', '.join(([n for n in names if name and name in n] or names)[:5])}"


def _edit_distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein distance (optimal string alignment) between ``a`` and ``b``; ``limit + 1`` when above ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before, row = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            cost = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + (ca != cb))
            if before is not None and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, before[j - 2] + 1)
            current.append(cost)
        before, row = row, current
    return min(row[-1], limit + 1)


def _dump(version: int, models: list) -> str:
    doc = {"format_version": version, "models": models}
    return _HEADER + yaml.safe_dump(doc, sort_keys=False, width=120, default_flow_style=None)


def lock_file(path: str | Path) -> Path:
    """The lock file (``.<name>.lock`` beside it) that every writer of the registry file ``path`` holds."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def _validate_entry(entry, index: int, version: int = 1) -> None:
    if not isinstance(entry, dict):
        raise RegistryError(f"registry entry #{index}: expected a mapping, got {type(entry).__name__}")
    label = repr(entry.get("name", f"#{index}"))

    def fail(field, problem):
        raise RegistryError(f"registry entry {label}, field {field!r}: {problem}")

    for field, kind in _REQUIRED.items():
        if field not in entry:
            if version >= 2 and field in _OPTIONAL_V2:
                continue
            fail(field, "missing")
        value = entry[field]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            fail(field, f"expected {kind.__name__}, got {type(value).__name__}")
    if entry["task"] not in _TASKS[version]:
        fail("task", f"expected one of {sorted(_TASKS[version])}, got {entry['task']!r}")
    from zoo.datasets import DATASETS

    if "dataset" in entry and entry["dataset"] not in DATASETS:
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
    splits = ("validation", "test") if version == 1 else tuple(entry["metrics"])
    for split in splits:
        m = entry["metrics"].get(split)
        if not isinstance(m, dict) or not all(_is_number(m.get(k)) for k in ("accuracy", "log_loss")):
            fail("metrics", f"'{split}' needs numeric accuracy and log_loss")
        if not 0.0 <= m["accuracy"] <= 1.0:
            fail("metrics", f"{split} accuracy {m['accuracy']} is outside [0, 1]")
    if version >= 2:
        _check_input(entry["input"], fail)
    if "search" in entry:
        _check_search(entry["search"], fail)
    for field, kind in _RECIPE_REQUIRED.items():
        if not isinstance(entry["recipe"].get(field), kind):
            fail(f"recipe.{field}", f"missing or not {kind.__name__}")
    if entry["parameters"] <= 0:
        fail("parameters", "must be positive")
    _check_params(entry, fail)


def _check_params(entry: dict, fail) -> None:
    """Hyperparameters well-formed, within bounds, and (where the count does not need the
    vocabulary) making exactly ``parameters`` weights: absurd sizes are refused before any build."""
    from zoo.parameter_count import HyperparameterError, count_parameters

    try:
        count = count_parameters(entry["builder"], entry["params"])
    except HyperparameterError as exc:
        fail("params", str(exc))
    if entry["builder"] not in ("text_bow", "text_nb") and count != entry["parameters"]:
        fail("params", f"{entry['builder']} with these hyperparameters has {count:,} weights, not the {entry['parameters']:,} recorded")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_input(spec: dict, fail) -> None:
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        fail("input.shape", f"expected a list of positive sizes, got {shape!r}")
    if spec.get("dtype") not in _INPUT_DTYPES:
        fail("input.dtype", f"expected one of {sorted(_INPUT_DTYPES)}, got {spec.get('dtype')!r}")


def _check_search(search, fail) -> None:
    """``search: {study, trial, objective: {name, value, direction}}``: the trial that produced the entry."""
    if not isinstance(search, dict):
        fail("search", f"expected a mapping, got {type(search).__name__}")
    if not isinstance(search.get("study"), str) or not search["study"]:
        fail("search.study", "missing or not a non-empty str")
    trial = search.get("trial")
    if not isinstance(trial, int) or isinstance(trial, bool) or trial < 0:
        fail("search.trial", f"expected a trial number >= 0, got {trial!r}")
    objective = search.get("objective")
    if not isinstance(objective, dict) or not isinstance(objective.get("name"), str) or not _is_number(objective.get("value")):
        fail("search.objective", "needs a name and a numeric value")
    if objective.get("direction") not in ("maximize", "minimize"):
        fail("search.objective.direction", f"expected 'maximize' or 'minimize', got {objective.get('direction')!r}")


def _check_file_ref(ref: dict, field: str, fail, suffix: str) -> None:
    name, digest = ref.get("file"), ref.get("sha256")
    if not isinstance(name, str) or not name.endswith(suffix) or "/" in name or "\\" in name:
        fail(f"{field}.file", f"expected a bare file name ending in {suffix}, got {name!r}")
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        fail(f"{field}.sha256", f"expected 64 lowercase hex digits, got {digest!r}")
