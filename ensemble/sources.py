"""Where the ensemble command line finds its members and data: registries that plug-ins fill, and model files.

>>> from ensemble import sources
>>> sources.dataset_names()                                   # doctest: +SKIP
['mnist', 'fashion_mnist', 'imdb']
>>> X, y = sources.load_dataset("mnist", "validation")        # doctest: +SKIP
>>> member = sources.load_member("mnist_mlp")                 # doctest: +SKIP
>>> member.record()                                           # doctest: +SKIP
{'name': 'mnist_mlp', 'kind': 'zoo', 'source': 'mnist_mlp', 'sha256': '…'}

Design decisions:

* ``ensemble`` knows no dataset, model name or library format of its own:
  plug-ins (:mod:`ensemble.plugins`; the zoo's is ``zoo.ensemble_plugin``)
  register them with :func:`register_dataset`, :func:`register_member_source`
  and :func:`register_library`. Every reader here calls
  :func:`ensemble.plugins.load_plugins` first (once per process), so Python
  code and the command line see the same names.
* Model files are the built-in source, chosen by suffix: ``.skops`` through
  the one skops reader (:func:`ensemble._codec.read_skops`: an allow-list of
  trusted types, checked trees), ``.keras`` in Keras' safe mode, XGBoost
  ``.json``/``.ubj`` (images flattened), and pickles (``.joblib``/``.pkl``/
  ``.pickle``) only with ``allow_pickle=True``. With ``sha256``, a file must
  match it before it is opened: nothing is deserialised unchecked.
* Problems with what the caller named (an unknown name, a wrong digest, a file
  that is not a classifier) are ``ValueError``s with one-line messages that
  name the member; the command line reports them as input errors.
* ``progress`` is passed to the plug-ins' loaders, which may download: the
  command line's ``--quiet`` turns their progress bars off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LibraryError", "Member", "check_datasets", "dataset_names", "library_members", "load_dataset", "load_member",
    "load_members", "load_model_file", "member_datasets", "register_dataset", "register_library", "register_member_source",
]

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


@dataclass
class Member:
    """A loaded ensemble member and where it came from.

    Attributes
    ----------
    name : str
        The member's name in the ensemble.
    kind : str
        ``"sklearn"``, ``"keras"``, ``"xgboost"`` for files; a plug-in's own
        kind otherwise (the zoo's: ``"zoo"``, ``"library"``).
    source : str
        The name it was resolved from, or the file's path.
    sha256 : str
        Digest of the weights or file it was loaded from.
    estimator : object
        A prefit classifier (``KerasMember``, ``FrozenEstimator``, ...).
    dataset : str or None
        The registered dataset the model was trained on, if known.
    """

    name: str
    kind: str
    source: str
    sha256: str
    estimator: object
    dataset: str | None = None

    def record(self) -> dict:
        """The JSON record of the member saved in an ensemble's metadata."""
        return {"name": self.name, "kind": self.kind, "source": self.source, "sha256": self.sha256}


class LibraryError(ValueError):
    """A folder that is not a model library, or a library without models for the data."""


@dataclass
class _Source:
    load: Callable
    description: str
    extra: Callable | None = None


_DATASETS: dict[str, _Source] = {}
_MEMBER_SOURCES: list[_Source] = []
_LIBRARIES: list[_Source] = []
_STUDENTS: list[_Source] = []


def _plugins() -> None:
    from ensemble.plugins import load_plugins

    load_plugins()


# --------------------------------------------------------------------------- registration


def register_dataset(name: str, load: Callable, *, description: str = "") -> None:
    """Make ``name`` a dataset of the command line's ``--dataset``.

    Parameters
    ----------
    name : str
        The dataset's name.
    load : callable
        ``load(split, *, progress=True)`` returns ``(X, y)`` for ``split`` in
        ``"train"``, ``"validation"``, ``"test"``.
    description : str, optional
        One line for listings.
    """
    _DATASETS[str(name)] = _Source(load, description)


def register_member_source(resolve: Callable, *, description: str, dataset_of: Callable | None = None) -> None:
    """Let members be named by something other than a model file (e.g. a model zoo's names).

    Parameters
    ----------
    resolve : callable
        ``resolve(spec, *, sha256=None, progress=True)`` returns a
        :class:`Member`, or None when ``spec`` is not one of its names. With
        ``sha256``, it raises ``ValueError`` unless the member's weights match.
    description : str
        What the names are, for the error about an unknown member (``"a zoo
        model (see `zoo list`)"``).
    dataset_of : callable, optional
        ``dataset_of(estimator)`` returns the dataset a loaded member was
        trained on, or None when the estimator is not one of its members.
    """
    if all(s.load is not resolve for s in _MEMBER_SOURCES):  # registering twice changes nothing
        _MEMBER_SOURCES.append(_Source(resolve, description, dataset_of))


def register_library(detect: Callable, members: Callable, *, description: str) -> None:
    """Make folders of one format usable as model libraries (``--library``).

    Parameters
    ----------
    detect : callable
        ``detect(folder)`` is true for a folder of this format.
    members : callable
        ``members(folder, *, dataset=None, progress=True)`` returns the
        library's models (those of ``dataset``, if given) as
        :class:`Member` objects, each checked against its recorded sha256.
    description : str
        What such a folder is (``"a folder holding registry.yaml, as `zoo
        search` writes"``).
    """
    if all(s.load is not members for s in _LIBRARIES):
        _LIBRARIES.append(_Source(members, description, detect))


def register_student(resolve: Callable, save: Callable, *, description: str) -> None:
    """Let ``ensemble distill --student NAME`` build a student by name and save it.

    Parameters
    ----------
    resolve : callable
        ``resolve(name, *, epochs=None, seed=0, examples=None)`` returns an
        unfitted student that learns from soft targets (see
        :func:`ensemble.distill`) on ``examples`` examples, or None when
        ``name`` is not one of its names.
    save : callable
        ``save(student, out, *, name, dataset, seconds, examples, command)``
        writes the fitted student into ``out`` and returns a dict describing
        what it wrote (at least ``"name"``).
    description : str
        What the names are (``"a zoo recipe or builder"``).
    """
    if all(s.load is not resolve for s in _STUDENTS):
        _STUDENTS.append(_Source(resolve, description, save))


def make_student(name: str, *, epochs: int | None = None, seed: int = 0, examples: int | None = None) -> tuple:
    """``(student, save)`` for a registered student name (see :func:`register_student`).

    Raises
    ------
    ValueError
        If no plug-in knows ``name``.
    """
    _plugins()
    for source in _STUDENTS:
        student = source.load(name, epochs=epochs, seed=seed, examples=examples)
        if student is not None:
            return student, source.extra
    kinds = " nor ".join(s.description for s in _STUDENTS) or "a student name (no plug-in registered any)"
    raise ValueError(f"student {name!r} is not {kinds}")


# --------------------------------------------------------------------------- datasets


def dataset_names() -> list[str]:
    """The registered datasets, in the order they were registered."""
    _plugins()
    return list(_DATASETS)


def load_dataset(name: str, split: str, *, progress: bool = True) -> tuple:
    """``(X, y)`` of a split of a registered dataset.

    Raises
    ------
    ValueError
        If no plug-in registered ``name``.
    """
    _plugins()
    if name not in _DATASETS:
        known = ", ".join(_DATASETS) or "none (no plug-in registered any)"
        raise ValueError(f"unknown dataset {name!r}; the registered datasets are {known}")
    return _DATASETS[name].load(split, progress=progress)


# --------------------------------------------------------------------------- members


def load_member(spec: str, *, sha256: str | None = None, trusted: Sequence[str] = (), allow_pickle: bool = False,
                progress: bool = True) -> Member:
    """A member from a registered name (a zoo model's, say) or a model file.

    Parameters
    ----------
    spec : str
        A name a member source resolves, else a model file's path.
    sha256 : str, optional
        The recorded digest: the weights or file must match it before they are opened.
    trusted : sequence of str
        Further types to trust in ``.skops`` files.
    allow_pickle : bool, default=False
        Accept pickles (loading one runs code from the file).
    progress : bool, default=True
        Let a source show download progress bars.

    Returns
    -------
    Member

    Raises
    ------
    ValueError
        ``spec`` is neither a known name nor a file, a digest does not match,
        or the file is not a usable classifier.
    """
    _plugins()
    for source in _MEMBER_SOURCES:
        member = source.load(spec, sha256=sha256, progress=progress)
        if member is not None:
            return member
    path = Path(spec)
    if not path.is_file():
        kinds = [s.description for s in _MEMBER_SOURCES]
        what = f"neither {' nor '.join(kinds)} nor an existing file" if kinds else "not an existing file"
        raise ValueError(f"member {spec!r} is {what}")
    from kze.files import sha256_file

    digest = sha256_file(path)
    if sha256 is not None and digest != sha256:
        raise ValueError(f"member file {path} has sha256 {digest[:12]}…, not the recorded {sha256[:12]}…; refusing to open it")
    kind, estimator = load_model_file(path, trusted=trusted, allow_pickle=allow_pickle)
    return Member(path.stem, kind, str(path), digest, estimator)


def load_model_file(path, *, trusted: Sequence[str] = (), allow_pickle: bool = False) -> tuple[str, object]:
    """The prefit classifier in a model file, chosen by its suffix, and its kind.

    The caller checks the file's sha256 first when it has a record of it.

    Returns
    -------
    kind : {"sklearn", "keras", "xgboost"}
    estimator : object
        A ``KerasMember`` for ``.keras``, else a ``FrozenEstimator``.

    Raises
    ------
    ValueError
        An unknown suffix, a pickle without ``allow_pickle``, an unreadable
        file, or one that holds no fitted classifier.
    """
    from sklearn.frozen import FrozenEstimator

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".json", ".ubj"):
        return "xgboost", FrozenEstimator(_xgboost_file(path))
    if suffix == ".keras":
        return "keras", _keras_file(path)
    if suffix == ".skops":
        from ensemble._codec import read_skops

        estimator = read_skops(path.read_bytes(), f"member {path}", trusted)
    elif suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise ValueError(f"member {path} is a pickle: loading it runs code from the file; pass --allow-pickle if you trust it, or save the model with skops")
        import joblib

        try:
            estimator = joblib.load(path)
        except Exception as exc:  # unpickling can fail in many ways; all mean "not a usable model file"
            raise ValueError(f"cannot load member {path}: {type(exc).__name__}: {exc}") from exc
    else:
        raise ValueError(f"member {path}: unknown model file type {path.suffix!r}; use .skops (scikit-learn), .keras, .json/.ubj (XGBoost) or, with --allow-pickle, .joblib/.pkl")
    if not hasattr(estimator, "predict_proba") or not hasattr(estimator, "classes_"):
        raise ValueError(f"member {path} holds a {type(estimator).__name__}, not a fitted classifier with predict_proba")
    return "sklearn", FrozenEstimator(estimator)


def _keras_file(path: Path):
    import keras

    from ensemble import KerasMember

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # a corrupt or unsafe .keras file
        raise ValueError(f"cannot load Keras model {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
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
        raise ValueError(f"cannot load XGBoost model {path}: {str(exc).splitlines()[0]}") from exc
    return make_pipeline(Flatten(), model)


def load_members(specs: Iterable[str], *, library: Sequence[Member] = (), dataset: str | None = None,
                 trusted: Sequence[str] = (), allow_pickle: bool = False, progress: bool = True) -> list[Member]:
    """``library`` and the members named by ``specs``; names must be unique, datasets agree (see :func:`check_datasets`)."""
    members = [*library, *(load_member(s, trusted=trusted, allow_pickle=allow_pickle, progress=progress) for s in specs)]
    names = [m.name for m in members]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"members named more than once: {', '.join(duplicates)}")
    check_datasets(members, dataset)
    return members


def library_members(folder, *, dataset: str | None = None, progress: bool = True) -> list[Member]:
    """The models of a library folder (those of ``dataset``, if given), each sha256-checked on load.

    Raises
    ------
    LibraryError
        ``folder`` is not in a registered library format, or holds no models
        (of ``dataset``).
    """
    _plugins()
    for library in _LIBRARIES:
        if library.extra(Path(folder)):
            members = library.load(Path(folder), dataset=dataset, progress=progress)
            if not members:
                raise LibraryError(f"{folder} holds no models{f' for {dataset}' if dataset else ''}")
            return members
    kinds = "; or ".join(library.description for library in _LIBRARIES) or "no plug-in registered a library format"
    raise LibraryError(f"{folder}: not a model library ({kinds})")


def check_datasets(members: Sequence[Member], dataset: str | None) -> None:
    """Members of known datasets must all be models of one dataset: ``dataset``, if given.

    Raises
    ------
    ValueError
        A member of another dataset, or members of two datasets.
    """
    for m in members:
        if m.dataset is not None and dataset is not None and m.dataset != dataset:
            raise ValueError(f"member {m.name} is a model for {m.dataset}; the data are {dataset}")
    seen = {m.dataset: m.name for m in members if m.dataset is not None}
    if len(seen) > 1:
        detail = ", ".join(f"{name} ({ds})" for ds, name in seen.items())
        raise ValueError(f"members are models of different datasets: {detail}")


def member_datasets(model) -> list[str | None]:
    """The dataset of each of a fitted ensemble's ``estimators_`` (None where no source knows it)."""
    _plugins()
    hooks = [s.extra for s in _MEMBER_SOURCES if s.extra is not None]
    return [next((d for d in (hook(est) for hook in hooks) if d is not None), None) for est in model.estimators_]

