"""The zoo's plug-in for ``ensemble``: everything ``zoo`` teaches the general layer, in one module.

Decisions: ``ensemble`` never imports ``zoo``; this module is named in the
``ensemble.plugins`` entry-point group (``pyproject.toml``), so
``ensemble.plugins.load_plugins()`` imports it when a bundle or the command
line needs a zoo kind. Importing it registers the zoo's saved parts (zoo
references, rebuilt zoo architectures, ``ZooClassifier``) and trusted types
(the NB text models), and the command line's sources (dataset names, zoo model
names, library entries).
"""


def _register_parts() -> None:
    """The zoo's saved parts, its top-level class and the types of its estimators that skops may load.

    ``zoo``: a model :func:`zoo.load` returned from the shipped registry, with its pretrained
    weights unchanged, is saved by name and weights sha256 (nothing written) and loaded again
    with :func:`zoo.load`. ``zoo_build``: any other model :func:`zoo.load` returned is saved as
    its builder and hyperparameters (from code) plus its ``.weights.h5`` (and vocabulary),
    counted against each other before anything is built (:func:`zoo.models.build_with_weights`).
    ``ZooClassifier`` saves on its own, and inside ensembles as a skops part (its state is
    builder, hyperparameters and weight arrays), like the NB text models.
    """
    from ensemble.parts import register_estimator, register_part, register_trusted_types
    from zoo.estimator import ZooClassifier

    register_part("zoo", lambda obj: _shipped_origin(obj) is not None, _encode_reference, _decode_reference, packages=("keras",))
    register_part("zoo_build", lambda obj: _origin(obj) is not None, _encode_build, _decode_build, packages=("keras",))
    register_estimator(ZooClassifier)
    register_trusted_types(
        "zoo.estimator.ZooClassifier",  # restores its model from builder code and weight arrays
        "zoo.nbsvm.NBSVMClassifier",  # a compressed JSON vocabulary and weight arrays
        "zoo.nbsvm.NBMLPClassifier",
    )


def _origin(obj):
    """Where :func:`zoo.load` found ``obj`` (:func:`zoo.models.provenance`), or None for anything else."""
    from zoo.models import provenance

    try:
        return provenance(obj)
    except TypeError:  # not weak-referenceable or not hashable: not a model zoo.load returned
        return None


def _shipped_origin(obj):
    """``obj``'s origin if it is a shipped zoo model with its pretrained weights unchanged, else None."""
    origin = _origin(obj)
    if origin is not None and origin["pretrained"] and origin["unchanged"] and _is_shipped(origin["registry"]):
        return origin
    return None


def _is_shipped(registry) -> bool:
    from pathlib import Path

    from zoo.registry import Registry

    try:
        return Path(registry.path).resolve() == Registry().path.resolve()
    except Exception:  # no shipped registry found: nothing is shipped
        return False


def _encode_reference(model, writer):
    origin = _shipped_origin(model)
    return {"name": origin["name"], "weights_sha256": origin["entry"]["weights"]["sha256"]}


def _decode_reference(record, reader):
    import zoo

    name, sha = record["name"], record["weights_sha256"]
    if name not in zoo.Registry():
        raise ValueError(f"zoo model {name!r} is not in this installation's registry")
    now = zoo.info(name)["weights"]["sha256"]
    if now != sha:
        raise ValueError(f"zoo model {name!r} has weights sha256 {now[:12]}…, not the saved {str(sha)[:12]}…; refit the ensemble")
    return zoo.load(name)  # checks the weight file against the registry


def _encode_build(model, writer):
    origin = _origin(model)
    entry = origin["entry"]
    name, path = writer.file(writer.hint, ".weights.h5")
    model.save_weights(path)
    record = {"zoo_name": origin["name"], "builder": entry["builder"], "params": writer.value(entry["params"], writer.hint), "weights": name}
    if origin["vocabulary"] is not None:
        vocab, vpath = writer.file(writer.hint, ".vocab.txt")
        vpath.write_text("".join(f"{token}\n" for token in origin["vocabulary"]), encoding="utf-8")
        record["vocabulary"] = vocab
    return record


def _decode_build(record, reader):
    from zoo.models import build_with_weights, read_vocabulary

    vocabulary = read_vocabulary(reader.path(record["vocabulary"])) if "vocabulary" in record else None
    return build_with_weights(record["builder"], reader.value(record["params"]), reader.path(record["weights"]), vocabulary=vocabulary)


_register_parts()


def _register_sources() -> None:
    """The command line's sources: the zoo's datasets, its model names and `zoo search` libraries."""
    import functools

    from ensemble import sources
    from zoo.datasets import DATASETS

    for name in DATASETS:
        sources.register_dataset(name, functools.partial(_load_split, name), description=f"the zoo's {name} dataset")
    sources.register_member_source(_zoo_member, description="a zoo model (see `zoo list`)", dataset_of=_member_dataset)
    sources.register_library(lambda folder: (folder / "registry.yaml").is_file(), _library_members,
                             description="a folder holding registry.yaml, as `zoo search` writes")
    sources.register_student(_student, _save_student, description="a zoo recipe (its builder, hyperparameters and recipe) or builder")


def _load_split(name, split, *, progress=True):
    from zoo import datasets
    from zoo._files import progress_bars

    with progress_bars(progress):
        return datasets.load(name, split)


def _zoo_member(spec, *, sha256=None, progress=True):
    """A zoo model named ``spec`` as an ensemble member, or None if the zoo has no such name."""
    import numpy as np

    import zoo
    from ensemble import KerasMember
    from ensemble.sources import Member
    from zoo._files import progress_bars

    if spec not in zoo.Registry():
        return None
    entry = zoo.info(spec)
    if sha256 is not None and entry["weights"]["sha256"] != sha256:
        raise ValueError(f"member {spec}: the zoo's weights changed since the ensemble was fitted; refit it")
    with progress_bars(progress):
        model = zoo.load(spec)  # checks the weights' sha256
    member = KerasMember(model, classes=np.arange(len(entry["classes"])))
    return Member(spec, "zoo", spec, entry["weights"]["sha256"], member, entry["dataset"])


def _library_members(folder, *, dataset=None, progress=True):
    """The models of the `zoo search` library ``folder`` (those of ``dataset``), sha256-checked on load."""
    import zoo
    from ensemble import KerasMember
    from ensemble.sources import Member
    from zoo._files import progress_bars

    library = zoo.Registry(folder)
    names = [n for n in library.names() if dataset is None or library.entry(n).get("dataset") == dataset]
    members = []
    for name in names:
        entry = library.entry(name)
        with progress_bars(progress):
            model = zoo.load(name, registry=library)  # checks the weights' sha256
        member = KerasMember(model, classes=_entry_classes(entry))
        members.append(Member(name, "library", name, entry["weights"]["sha256"], member, entry.get("dataset")))
    return members


def _entry_classes(entry):
    """A registry entry's classes as labels of the data: indices of a dataset's class names, else as recorded."""
    import numpy as np

    from zoo.datasets import class_names

    classes = entry["classes"]
    if entry.get("dataset"):
        names = class_names(entry["dataset"])
        if all(c in names for c in classes):
            return np.array([names.index(c) for c in classes])
    return np.asarray(classes)


def _member_dataset(estimator):
    """The zoo dataset of a member that :func:`zoo.load` returned (trained further or not), else None."""
    from ensemble import KerasMember
    from zoo.models import provenance

    origin = provenance(estimator.model) if isinstance(estimator, KerasMember) else None
    return origin["entry"].get("dataset") if origin else None




def _student(name, *, epochs=None, seed=0, examples=None):
    """An unfitted ``ZooClassifier``: a zoo recipe's (its augmentation and schedule), a model-library entry's
    (``LIB/ENTRY``: the entry's architecture and recipe) or a builder's defaults; None for other names.

    On fewer examples than four times the recipe's early-stopping slice, the
    slice is a quarter of them (at least 32), as for ``zoo train --subset``.
    """
    from zoo.estimator import ZooClassifier
    from zoo.recipes import RECIPES
    from zoo.registry import BUILDER_KINDS

    params = {"random_state": seed} if epochs is None else {"random_state": seed, "epochs": int(epochs)}
    if name in RECIPES:
        student = ZooClassifier.from_zoo(name, **params)
    elif name in BUILDER_KINDS:
        student = ZooClassifier(name, **params)
    elif _library_entry(name) is not None:
        registry, entry = _library_entry(name)
        student = ZooClassifier.from_zoo(entry, registry=registry, **params)
    else:
        return None
    size = student.early_stopping_size
    if examples is not None and isinstance(size, int) and size * 4 > examples:  # a fraction or None fits any size
        student.set_params(early_stopping_size=max(examples // 4, 32))
    return student


def _library_entry(name):
    """``(registry path, entry)`` for ``LIB/ENTRY`` naming an entry of the model library ``LIB``; None otherwise."""
    from pathlib import Path

    from zoo.library import open_library

    folder, _, entry = str(name).rstrip("/").rpartition("/")
    if not folder or not (Path(folder) / "registry.yaml").is_file():
        return None
    library = open_library(folder)
    return (library.path, entry) if entry in library else None


def _save_student(student, out, *, name, dataset, seconds, examples, command):
    """Write a distilled student into the model library ``out`` (created if missing); its entry records ``distilled_from``."""
    from zoo.library import open_library, split_metrics, write_model

    library = open_library(out)
    metrics = {"early_stopping": {k: round(float(v), 6) for k, v in student.early_stopping_scores_.items()}}
    metrics.update(split_metrics(student.predict_proba, dataset, student.distilled_from_["classes"]))
    entry = write_model(student, library.weights_dir, name, dataset=dataset, seconds=seconds, examples=examples, metrics=metrics,
                        command=command, distilled_from=student.distilled_from_)
    library.put(entry)
    return {"name": name, "library": str(library.path.parent), "parameters": entry["parameters"], "metrics": metrics}


_register_sources()
