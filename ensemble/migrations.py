"""Converting ensembles saved by version 0.1 (a ``weights.json`` file, a ``stack/`` folder) into saved-ensemble folders.

>>> from ensemble.migrations import convert
>>> convert("old/weights.json", "blend", dataset="mnist")      # doctest: +SKIP

Design decisions:

* Version 0.1 wrote a JSON document listing the members (a name a member
  source resolves, such as a zoo model's, or a model file beside the
  document) with their sha256, and the blend weights, or a stack's pickled
  meta-learner. :func:`convert` rebuilds the ensemble from those records and
  saves it with :func:`ensemble.save`; ``ensemble convert`` calls it.
* Trust: every member and the meta-learner are checked against their recorded
  sha256 before they are opened, file names from the document must be bare
  names inside its folder (no ``..``, no absolute paths, no symbolic links),
  and a pickled meta-learner is opened only with ``allow_pickle=True``.
* Every part is prefit or frozen, so fitting on data learns nothing: it only
  assembles the ensemble (classes, input checks). The data are the ones given,
  else the recorded dataset's split (:func:`ensemble.sources.load_dataset`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["LEGACY_STACK", "LEGACY_STACK_FILE", "LEGACY_WEIGHTS", "convert", "legacy_document"]

LEGACY_WEIGHTS, LEGACY_STACK = "ensemble-blend-weights", "ensemble-stack"
LEGACY_STACK_FILE = "stack.json"


def legacy_document(path) -> tuple[dict, Path] | None:
    """A version 0.1 weights file's or stack folder's document and its folder; None if ``path`` is neither.

    Raises
    ------
    ValueError
        A ``.json`` file (or a folder's ``stack.json``) that is not valid JSON,
        or not a version 0.1 ensemble document.
    """
    path = Path(path)
    file = path / LEGACY_STACK_FILE if path.is_dir() else path
    if not file.is_file() or file.suffix != ".json":
        return None
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{file} is not valid JSON ({exc}); was it truncated?") from exc
    if not isinstance(doc, dict) or doc.get("format") not in (LEGACY_WEIGHTS, LEGACY_STACK):
        raise ValueError(f"{file} is not a saved ensemble nor a version 0.1 ensemble file (format {doc.get('format') if isinstance(doc, dict) else None!r})")
    return doc, file.parent


def _bare_file(base: Path, name, what: str) -> Path:
    """``base / name`` for a bare file name inside ``base``; anything else is refused."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", "..") or Path(name).is_absolute():
        raise ValueError(f"{what} {str(name)[:80]!r} is not a bare file name inside {base}; refusing it")
    path = base / name
    if path.is_symlink():
        raise ValueError(f"{what} {path} is a symbolic link; refusing it")
    return path


def convert(path, out, *, X=None, y=None, dataset: str | None = None, split: str = "validation", trusted: Sequence[str] = (),
            allow_pickle: bool = False, memory=None, progress: bool = True) -> dict:
    """Convert a version 0.1 weights ``.json`` file or stack folder into a saved-ensemble folder.

    Parameters
    ----------
    path : path
        The weights file, or the stack folder holding ``stack.json``.
    out : path
        The saved-ensemble folder to write (see :func:`ensemble.save`).
    X, y : array-like, optional
        Data to assemble the ensemble on; by default ``split`` of ``dataset``.
    dataset : str, optional
        A registered dataset (:mod:`ensemble.sources`); by default the one the
        document records.
    split : str, default="validation"
        The split of ``dataset`` to use.
    trusted : sequence of str
        Further types to trust in ``.skops`` member files.
    allow_pickle : bool, default=False
        Open pickled members and meta-learners (after their sha256 matched).
    memory : path, optional
        Member prediction cache while assembling.
    progress : bool, default=True
        Let member and dataset sources show download progress bars.

    Returns
    -------
    dict
        The metadata saved with the ensemble.

    Raises
    ------
    ValueError
        ``path`` is not a version 0.1 ensemble, a record is malformed, a file
        does not match its sha256 or is not a bare name inside the folder, or
        a pickle would be opened without ``allow_pickle``.
    """
    import ensemble
    from ensemble import sources
    from ensemble.evaluation import check_classes
    from kze.files import sha256_file

    found = legacy_document(path)
    if found is None:
        raise ValueError(f"{path} is neither a version 0.1 weights .json file nor a stack folder holding {LEGACY_STACK_FILE}")
    doc, base = found
    records = doc.get("members")
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{path}: 'members' must be a non-empty list of member records")
    members = []
    for r in records:
        kind, source, sha = r.get("kind"), r.get("source"), r.get("sha256")
        if not all(isinstance(v, str) for v in (kind, source, sha)):
            raise ValueError(f"{path}: member record {str(r)[:80]} needs string kind, source and sha256")
        spec = source if kind == "zoo" else str(_bare_file(base, source, "member file"))
        member = sources.load_member(spec, sha256=sha, trusted=trusted, allow_pickle=allow_pickle, progress=progress)
        member.name = str(r.get("name", member.name))
        members.append(member)
    named = [(m.name, m.estimator) for m in members]
    if doc["format"] == LEGACY_WEIGHTS:
        weights = [r.get("weight") for r in records]
        if not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights):
            raise ValueError(f"{path}: every member needs a numeric weight")
        model = ensemble.BlendClassifier(named, method="mean", weights=weights)
        label = f"{doc.get('method')} blend"
    else:
        meta = doc.get("meta_learner") if isinstance(doc.get("meta_learner"), dict) else {}
        meta_path = _bare_file(base, meta.get("file"), "meta-learner file")
        if not meta_path.is_file():
            raise ValueError(f"stack folder {base} lacks its meta-learner file {meta_path.name}")
        if sha256_file(meta_path) != meta.get("sha256"):
            raise ValueError(f"meta-learner {meta_path} does not match its recorded sha256; refusing to open it")
        if not allow_pickle:
            raise ValueError(f"the meta-learner {meta_path} is a pickle: loading it runs code from the file; pass --allow-pickle if you trust it")
        import joblib
        from sklearn.frozen import FrozenEstimator

        model = ensemble.StackClassifier(named, final_estimator=FrozenEstimator(joblib.load(meta_path)))
        label = f"stack ({meta.get('name')})"
    fitted_on = doc.get("fitted_on") if isinstance(doc.get("fitted_on"), dict) else {}
    if X is None:
        dataset = dataset or fitted_on.get("dataset")
        if not dataset:
            raise ValueError(f"{path} records no dataset; give the data (X and y) or a dataset")
    sources.check_datasets(members, dataset)
    if X is None:
        X, y = sources.load_dataset(dataset, split, progress=progress)
    check_classes(named, y)
    model.set_params(memory=memory).fit(X, y)
    model.set_params(memory=None)
    metadata = {"command": "ensemble convert", "label": label, "converted_from": str(path), "fitted_on": doc.get("fitted_on"),
                "members": [{**m.record(), **{k: v for k, v in r.items() if k in ("validation", "weight")}} for m, r in zip(members, records)]}
    ensemble.save(model, out, metadata=metadata)
    return metadata
