"""Saved parts: how ``ensemble.save`` stores an object that is not plain data, and how ``ensemble.load`` rebuilds it.

A *part kind* is a name (stored as the ``"kind"`` of the part's record in the
manifest) and three functions::

    match(obj) -> bool                 # is obj saved as this kind?
    encode(obj, writer) -> dict        # the record (JSON), writing the part's own files
    decode(record, reader) -> object   # the object back, from the record and its checked files

>>> from ensemble.parts import register_part
>>> register_part("mylib", lambda o: isinstance(o, MyModel), encode, decode, packages=("mylib",))  # doctest: +SKIP

The *writer* (given to ``encode``) has ``writer.file(hint, suffix) -> (name,
path)``: a new file in the bundle's folder for the part to write, whose
``name`` the record keeps; and ``writer.value(obj, hint)``: the JSON of a
nested value (arrays, containers, other parts). The *reader* (given to
``decode``) has ``reader.path(name)``: the path of a file the record names,
and ``reader.value(doc)``: a nested value back; ``reader.trusted`` lists the
extra types the caller of ``ensemble.load`` trusts.

Decisions:

- The core, not the part, keeps the bundle safe: every file a writer hands
  out is a bare name inside the version folder and its sha256 goes into the
  manifest; ``reader.path`` answers only for names the manifest lists, after
  their sha256 was checked, so a part never opens a file that was altered
  or one outside the folder. A part that parses its file must still parse it
  with a format that cannot run code (no pickle).
- Matching: kinds registered by plug-ins are tried first, in the order they
  were registered; then the built-in kinds (registered with
  ``fallback=True``: Keras members and models, frozen estimators, XGBoost,
  pipelines that hold them, and last ``skops`` for any other scikit-learn
  object). Registering a kind again replaces it.
- Plug-ins (:mod:`ensemble.plugins`) register kinds when imported. ``save``
  loads them first (an object of a plug-in's package can only exist once
  that package is imported, but its plug-in may not be yet); ``load`` loads
  them when a manifest names a kind, or a class, nobody registered, then
  fails with :class:`MissingPartError` naming the kind and any plug-in that
  could not be imported.
- A part kind names the distributions whose versions a bundle holding it
  records (``packages``); ``ensemble.load`` warns when they differ.
- Trusted types (:func:`register_trusted_types`) extend the allow-list of
  types that saved scikit-learn parts (``skops``) may hold, for the
  provider's own estimators; :func:`register_estimator` adds classes that
  ``ensemble.save`` saves at the top level (beside the blends and stacks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from ensemble.plugins import load_plugins

__all__ = [
    "MissingPartError",
    "Part",
    "estimator_class",
    "get_part",
    "part_for",
    "register_estimator",
    "register_part",
    "register_trusted_types",
    "registered_estimators",
    "registered_parts",
    "trusted_types",
    "unregister_part",
]


class Part(NamedTuple):
    """A registered part kind (see the module's docstring)."""

    kind: str
    match: Callable
    encode: Callable
    decode: Callable
    packages: tuple = ()
    fallback: bool = False


class MissingPartError(ValueError):
    """A bundle needs a part kind or class that no installed plug-in provides."""


_parts: dict[str, Part] = {}
_trusted: set[str] = set()
_estimators: dict[str, type] = {}


def register_part(kind, match, encode, decode, *, packages=(), fallback=False) -> Part:
    """Teach ``ensemble.save`` and ``ensemble.load`` a kind of saved part.

    Parameters
    ----------
    kind : str
        The name stored in the manifest; keep it stable, bundles refer to it.
    match : callable
        ``match(obj) -> bool``: whether ``obj`` is saved as this kind. It is
        called on every object saved, so it must be cheap and never raise.
    encode : callable
        ``encode(obj, writer) -> dict``: the JSON record (its ``"kind"`` is
        set by the core); files go through ``writer.file(hint, suffix)``.
    decode : callable
        ``decode(record, reader) -> object``; files come from
        ``reader.path(name)`` (checked against their sha256). Raise a
        ``ValueError`` for a record or file it cannot rebuild from.
    packages : tuple of str, default=()
        Distributions whose versions a bundle holding the part records.
    fallback : bool, default=False
        Try this kind only after every kind registered without it.

    Returns
    -------
    Part
    """
    if not isinstance(kind, str) or not kind or kind.startswith("$"):
        raise ValueError(f"a part kind is a non-empty string not starting with '$', not {kind!r}")
    for name, fn in (("match", match), ("encode", encode), ("decode", decode)):
        if not callable(fn):
            raise TypeError(f"register_part({kind!r}): {name} must be callable")
    part = Part(kind, match, encode, decode, tuple(packages), bool(fallback))
    _parts.pop(kind, None)
    _parts[kind] = part
    return part


def unregister_part(kind: str) -> bool:
    """Remove the part kind ``kind``; returns whether it was registered (bundles holding it then no longer load)."""
    return _parts.pop(kind, None) is not None


def register_trusted_types(*names: str) -> None:
    """Trust the types or functions ``names`` (``"module.Name"``) in saved scikit-learn parts.

    Only for types whose state cannot run code or crash the process when
    loaded (a provider's own estimators, whose attributes are arrays and
    plain values).
    """
    bad = [n for n in names if not isinstance(n, str) or "." not in n]
    if bad:
        raise ValueError(f"trusted types are qualified names such as 'package.module.Class', not {bad!r}")
    _trusted.update(names)


def register_estimator(cls: type) -> None:
    """Let ``ensemble.save`` save a fitted ``cls`` at the top level (its class name goes into the manifest).

    ``cls`` must be a scikit-learn estimator whose parameters and fitted
    attributes are plain data or saved parts.
    """
    if not isinstance(cls, type) or not hasattr(cls, "get_params"):
        raise TypeError(f"register_estimator takes an estimator class, not {cls!r}")
    _estimators[cls.__name__] = cls


def registered_parts() -> list[Part]:
    """The registered part kinds, in the order they are tried."""
    return [p for p in _parts.values() if not p.fallback] + [p for p in _parts.values() if p.fallback]


def part_for(obj) -> Part | None:
    """The first registered kind that matches ``obj``, or None."""
    for part in registered_parts():
        if part.match(obj):
            return part
    return None


def get_part(kind) -> Part:
    """The part kind named ``kind``, loading the plug-ins once if nobody registered it.

    Raises
    ------
    MissingPartError
        No registered kind and no installed plug-in provides ``kind``.
    """
    if not isinstance(kind, str):
        raise MissingPartError(f"unknown part kind {str(kind)[:40]!r} in the manifest")
    if kind not in _parts:
        failed = load_plugins()
        if kind not in _parts:
            raise MissingPartError(f"unknown part kind {kind[:40]!r} in the manifest{_because(failed)}")
    return _parts[kind]


def trusted_types() -> frozenset:
    """The types registered with :func:`register_trusted_types`."""
    return frozenset(_trusted)


def registered_estimators() -> dict[str, type]:
    """Class name -> class of the estimators registered with :func:`register_estimator`."""
    return dict(_estimators)


def estimator_class(name: str, known: dict) -> type:
    """The class named ``name``: one of ``known`` or registered, loading the plug-ins once if need be.

    Raises
    ------
    MissingPartError
        No such class, even after loading the plug-ins.
    """
    classes = {**known, **_estimators}
    if name not in classes:
        failed = load_plugins()
        classes = {**known, **_estimators}
        if name not in classes:
            raise MissingPartError(f"{str(name)[:80]!r} is not a class ensemble.load restores ({', '.join(classes)}){_because(failed)}")
    return classes[name]


def _because(failed: dict) -> str:
    broken = [f"{name!r} ({error})" for name, error in failed.items() if error is not None]
    if len(broken) == 1:
        return f"; the plug-in that may provide it could not be imported: {broken[0]}"
    if broken:
        return f"; the plug-ins that may provide it could not be imported: {', '.join(broken)}"
    return "; no installed plug-in provides it (is the package that wrote it installed?)"
