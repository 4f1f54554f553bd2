"""``ensemble`` command line: fit blend weights, select from a model library or fit a stack on validation
data; evaluate; inspect diversity; convert version 0.1 files; export.

Members are names that plug-ins resolve (zoo model names, through the zoo's
plug-in) or model files: scikit-learn estimators or pipelines saved with
``skops`` (``.skops``, loaded with an allow-list of trusted types), Keras
models (``.keras``, loaded in safe mode), XGBoost model files
(``.json``/``.ubj``; images are flattened) and, only with ``--allow-pickle``,
joblib/pickle files (``.joblib``/``.pkl``: loading them runs code from the
file). ``select`` runs Caruana's ensemble selection (:func:`ensemble.select`)
over the models of a library (``--library``; for the zoo's plug-in a folder
written by ``zoo search``, each model sha256-checked) and any further
members, and saves the members it selects with their weights.
``fit-weights``, ``select`` and ``stack`` write a saved-ensemble folder (see
:mod:`ensemble.persistence`), which ``evaluate`` reads back; ``convert``
turns the files of version 0.1 into that format
(:func:`ensemble.migrations.convert`). ``export`` fuses a saved ensemble into
one model and writes it as a TensorFlow SavedModel
(:func:`ensemble.export_saved_model`). Member predictions are cached (``--cache``,
default ``$ZOO_CACHE_DIR/predictions``). ``refit`` refits a saved ensemble's
scikit-learn members on more data, its weights kept (:func:`ensemble.refit`);
``distill`` trains one student on its soft labels. ``diversity`` compares ``--members``,
the models of a ``--library``, or both. :mod:`ensemble.plots` draws ``--plot``.

Design decisions: this module parses and checks the command line, calls the
library and prints; the work is in public modules — datasets, member names,
libraries and model files in :mod:`ensemble.sources` (filled by plug-ins, so
``ensemble`` imports no ``zoo``; the ``--dataset`` choices are the registered
datasets), scoring and the report in :mod:`ensemble.evaluation`, the version
0.1 conversion in :mod:`ensemble.migrations`, the shared command-line
conventions in :mod:`kze.cli`. Library errors are ``ValueError``s, reported
as one-line input errors (exit code 2). Paths given to ``--out`` and
``--plot`` are checked before any long computation.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from ensemble import evaluation, migrations, sources
from ensemble.stack import meta_learner
from kze.cli import Output, UsageError, escape, fraction, load_npz, make_parser, positive_int, run
from kze.files import cache_dir

# --------------------------------------------------------------------------- members and data


def _members(args, library=()) -> list[sources.Member]:
    return sources.load_members(args.members, library=library, dataset=args.dataset, trusted=args.trust,
                                allow_pickle=args.allow_pickle, progress=not args.quiet)


def _library(args) -> list[sources.Member]:
    try:
        return sources.library_members(args.library, dataset=args.dataset, progress=not args.quiet)
    except sources.LibraryError as exc:
        raise UsageError(f"--library {exc}") from None


def _load_data(args, split: str) -> tuple:
    """The evaluation data: a dataset split or the user's --data file, and a description of it."""
    if args.data:
        X, y = load_npz(args.data)
        return X, y, evaluation.data_record(X, y, data=str(args.data))
    if not args.dataset:
        names = sources.dataset_names() or ["none registered"]
        raise UsageError(f"give --dataset ({' or '.join([', '.join(names[:-1]), names[-1]] if len(names) > 1 else names)}) or --data FILE.npz")
    X, y = sources.load_dataset(args.dataset, split, progress=not args.quiet)
    return X, y, evaluation.data_record(X, y, dataset=args.dataset, split=split)


def _open_xy(args) -> tuple:
    """``--x`` (a memory-mapped .npy array or a text file's lines) and ``--y`` (a memory-mapped .npy array)."""
    if args.data:
        raise UsageError("give --x and --y, or --data, not both")
    if not (args.x and args.y):
        raise UsageError("--x and --y go together: the inputs and their labels")
    X, y = evaluation.open_xy(args.x, args.y)
    return X, y, evaluation.data_record(X, y, x=str(args.x), y=str(args.y))


def _memory(args) -> str:
    return str(Path(args.cache) if args.cache else cache_dir() / "predictions")


def _check_out(out: str) -> None:
    """Refuse an output path we could not write, before any long computation."""
    from ensemble.persistence import POINTER
    from kze.files import check_file_name

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder (a saved ensemble is a folder)")
    if path.is_dir() and not (path / POINTER).exists() and any(path.iterdir()):
        raise UsageError(f"--out {out}: a non-empty folder that holds no saved ensemble; choose another path")
    if not path.exists():
        try:
            check_file_name(path)  # the name's length, and a folder to hold it
        except OSError as exc:
            raise UsageError(f"--out {escape(path.name[:40])}…: {exc.strerror}") from None


def _check_plot(args) -> None:
    """Refuse ``--plot`` without matplotlib or with a path we could not write, before any long computation."""
    from ensemble.plots import check_figure_path

    if getattr(args, "plot", None):
        try:
            check_figure_path(args.plot)
        except ImportError:
            raise UsageError("--plot needs matplotlib: pip install 'keras-zoo-ensemble[plot]'") from None
        except ValueError as exc:
            raise UsageError(f"--plot {exc}") from None


def _save_plot(fig, path: str, what: str) -> None:
    from ensemble.plots import save_figure

    save_figure(fig, path)
    print(f"{what} plot written to {escape(str(path))}", file=sys.stderr)


def _plot_weights(rows: list[dict], key: str, title: str, path: str) -> None:
    from ensemble.plots import weights_figure

    accuracies = [r[key]["accuracy"] for r in rows]
    _save_plot(weights_figure([r["name"] for r in rows], [r["weight"] for r in rows], accuracies=accuracies, title=title), path, "weights")


# --------------------------------------------------------------------------- fit-weights / select / stack


def _cmd_fit(args, kind: str):
    """Fit a blend (``fit-weights``), a selection (``select``) or a stack on the data; save it to ``args.out``."""
    import ensemble

    _check_plot(args)
    X, y, where = _load_data(args, args.split)
    _check_out(args.out)
    members = _members(args, _library(args) if kind == "select" else [])
    named = [(m.name, m.estimator) for m in members]
    evaluation.check_classes(named, y)
    memory, verbose = _memory(args), 0 if args.quiet else 1
    probas = evaluation.member_probabilities(named, X, memory, progress=not args.quiet)
    if kind == "select":  # the selected members only, with the weights found; `fitted` covers every candidate
        model, fitted = ensemble.select(
            named, X, y, ensemble_size=args.ensemble_size, n_init=args.init, n_bags=args.bags, bag_fraction=args.bag_fraction,
            n_best=args.prune, scoring=args.scoring, calibrate=args.calibrate, memory=memory, random_state=args.seed,
            return_candidates=True, verbose=verbose,
        )
        label = "caruana selection"
    elif kind == "blend":
        fitted = model = ensemble.BlendClassifier(named, method=args.method, calibrate=args.calibrate, memory=memory,
                                                  random_state=args.seed, verbose=verbose).fit(X, y)
        label = f"{args.method} blend"
    else:
        fitted = model = ensemble.StackClassifier(named, final_estimator=meta_learner(args.meta, args.seed), memory=memory,
                                                  verbose=verbose).fit(X, y)
        label = f"stack ({args.meta})"
    rows, ensemble_scores = evaluation.fit_scores(model, [m.record() for m in members], probas, X, y, candidates=fitted)
    metadata = {"command": f"ensemble {args.command}", "label": label, "fitted_on": where, "members": rows,
                "ensemble": {"validation": ensemble_scores}}
    if kind != "stack":
        metadata["method"] = "caruana" if kind == "select" else args.method
        metric = args.scoring if kind == "select" else "log_loss"
        metadata["metric"] = {"slsqp": metric, "caruana": metric, "nnls": "squared error on one-hot targets"}.get(metadata["method"])
        metadata["calibrate"] = bool(args.calibrate)
        metadata["blend_temperature"] = float(model.blend_temperature_)
    else:
        metadata["meta_learner"] = args.meta
    if kind == "select":
        metadata["selection"] = {"library": str(Path(args.library).resolve()), "candidates": len(members), "selected": len(model.estimators_),
                                 "ensemble_size": args.ensemble_size, "init": args.init, "bags": args.bags,
                                 "bag_fraction": args.bag_fraction, "prune": args.prune, "scoring": args.scoring}
    model.set_params(memory=None, verbose=0)  # the cache and the progress output are settings of this run, not of the model
    ensemble.save(model, args.out, metadata=metadata)
    print(f"{'stack' if kind == 'stack' else 'weights'} written to {args.out}", file=sys.stderr)
    if getattr(args, "plot", None):
        _plot_weights(rows, "validation", f"{label}: weights", args.plot)
    text = evaluation.report(rows, ensemble_scores, "validation", label, weights=kind != "stack")
    return Output({**metadata, "out": str(args.out)}, text)


# --------------------------------------------------------------------------- evaluate / export / convert / diversity


def _load_ensemble(path: Path, args):
    import ensemble
    from ensemble.persistence import read_manifest

    if migrations.legacy_document(path) is not None:
        raise UsageError(f"{path} is a version 0.1 ensemble file; convert it first: ensemble convert {path} --out NEW_FOLDER")
    manifest, _ = read_manifest(path)
    return ensemble.load(path, trusted=args.trust), manifest.get("metadata") or {}


def _cmd_evaluate(args):
    from sklearn.base import is_classifier

    path = Path(args.path)
    model, metadata = _load_ensemble(path, args)
    if not is_classifier(model):
        raise UsageError(f"{path} holds a {type(model).__name__}; `ensemble evaluate` evaluates classifiers")
    if args.plot and getattr(model, "weights_", None) is None:
        raise UsageError(f"--plot draws blend weights; {escape(str(path))} holds a {type(model).__name__}, which has none")
    _check_plot(args)
    fitted_on = metadata.get("fitted_on") or {}
    if not args.data and not args.dataset:
        args.dataset = fitted_on.get("dataset")
    used = [n for n, est in model.named_estimators_.items() if not isinstance(est, str)]  # "drop" left out
    sources.check_datasets([sources.Member(n, "", "", "", None, d) for n, d in zip(used, sources.member_datasets(model))], args.dataset)
    X, y, where = _open_xy(args) if args.x or args.y else _load_data(args, args.split)
    if where["sha256"] == fitted_on.get("sha256"):
        print("note: these are the data the ensemble was fitted on; its scores here are optimistic", file=sys.stderr)
    recorded = {r.get("name"): r for r in metadata.get("members", []) if isinstance(r, dict)}
    result = evaluation.evaluate(model, X, y, memory=_memory(args), chunk_size=args.chunk_size, progress=not args.quiet, records=recorded)
    label = str(metadata.get("label") or type(model).__name__)
    split = where.get("split", where.get("data", where.get("x")))
    weights = getattr(model, "weights_", None) is not None
    if args.plot:
        _plot_weights(result["members"], "scores", f"{label}: weights on {split}", args.plot)
    text = evaluation.report([{**r, split: r["scores"]} for r in result["members"]], result["ensemble_scores"], split, label, weights=weights)
    return Output({"ensemble": label, "evaluated_on": where, **result}, text)


def _cmd_export(args):
    import ensemble

    path = Path(args.path)
    if not path.is_dir():
        raise UsageError(f"{escape(str(path))} is not a saved-ensemble folder")
    model, _ = _load_ensemble(path, args)
    try:
        out = ensemble.export_saved_model(model, args.out)
    except FileExistsError as exc:
        raise UsageError(f"--out {escape(str(args.out))}: {exc}") from None
    print(f"exported {escape(str(path))} to {escape(str(out))}", file=sys.stderr)
    return Output({"out": str(out), "ensemble": str(path), "format": "tf_saved_model"}, f"exported {path} to {out}")


def _cmd_convert(args):
    if migrations.legacy_document(args.path) is None:
        raise UsageError(f"{args.path} is neither a version 0.1 weights .json file nor a stack folder holding {migrations.LEGACY_STACK_FILE}")
    _check_out(args.out)
    X, y = load_npz(args.data) if args.data else (None, None)
    metadata = migrations.convert(args.path, args.out, X=X, y=y, dataset=args.dataset, split=args.split, trusted=args.trust,
                                  allow_pickle=args.allow_pickle, memory=_memory(args), progress=not args.quiet)
    print(f"converted {escape(str(args.path))} to {escape(str(args.out))}", file=sys.stderr)
    return Output({"out": str(args.out), **metadata}, f"converted {args.path} to {args.out}")


def _cmd_diversity(args):
    import ensemble

    if not args.members and not args.library:
        raise UsageError("give the members to compare: --members M [M ...], --library LIB, or both")
    _check_plot(args)
    X, y, where = _load_data(args, args.split)
    members = _members(args, _library(args) if args.library else [])
    named, memory = [(m.name, m.estimator) for m in members], _memory(args)
    evaluation.member_probabilities(named, X, memory, progress=not args.quiet)  # fills the cache, with a progress bar
    report = ensemble.diversity(named, X, y, memory=memory)
    if args.plot:
        from ensemble.plots import diversity_figure

        _save_plot(diversity_figure(report), args.plot, "diversity")
    return Output({"data": where, **report.to_dict()}, str(report))


# --------------------------------------------------------------------------- parser


def _cmd_distill(args):
    import ensemble

    X, _, where = _load_data(args, args.split)
    X = X if args.subset is None else X[: args.subset]
    name = args.name or f"{args.dataset or Path(args.data).stem}_student"
    data = f"--dataset {args.dataset} --split {args.split}" if args.dataset else f"--data {args.data}"
    command = (f"ensemble distill {args.path} --student {args.student} {data} --out {args.out} --name {name} "
               f"--temperature {args.temperature:g} --seed {args.seed}" + ("" if args.epochs is None else f" --epochs {args.epochs}")
               + ("" if args.subset is None else f" --subset {args.subset}"))
    if args.no_backup and args.backup_dir is not None:
        raise UsageError("--backup-dir and --no-backup: give one of them")
    backup = None if args.no_backup else (args.backup_dir or Path(args.out) / ".backups" / f"distill_{name}")
    result = ensemble.distill_into(args.path, X, args.student, args.out, name=name, dataset=args.dataset, temperature=args.temperature,
                                   epochs=args.epochs, seed=args.seed, trusted=args.trust, progress=not args.quiet, command=command,
                                   backup_dir=backup)
    return Output({**result, "data": where}, f"{result['name']} written to {result['library']}: distilled in {result['seconds']} s, "
                  f"early-stopping slice {result['metrics']['early_stopping']}")


def _cmd_refit(args):
    """Refit the members of a saved ensemble on more data (:func:`ensemble.refit`), keeping its weights; save the result.

    The new bundle's metadata is the old one's, with ``command``, a ``label``
    ending in ``, refit`` and a ``refit`` record (the folder refit from, the
    data, the members refit and kept); the member rows (validation scores of
    the members as first fitted) are kept, those of refit members marked
    ``"refit": true``.
    """
    import numpy as np

    import ensemble

    path = Path(args.path)
    _check_out(args.out)
    if Path(args.out).resolve() == path.resolve():
        raise UsageError(f"--out {escape(str(args.out))} is the ensemble being refit; write the refit ensemble to another folder")
    if args.data or args.split != "train+validation":
        X, y, where = _load_data(args, args.split)
    else:
        (X1, y1, _), (X2, y2, _) = _load_data(args, "train"), _load_data(args, "validation")
        X, y = np.concatenate([X1, X2]), np.concatenate([y1, y2])
        where = evaluation.data_record(X, y, dataset=args.dataset, split=args.split)
    model, metadata = _load_ensemble(path, args)
    refit = ensemble.refit(model, X, y, verbose=0 if args.quiet else 1)
    done, kept = refit.refit_["members"], refit.refit_["kept"]
    rows = [{**r, "refit": True} if isinstance(r, dict) and r.get("name") in done else r for r in metadata.get("members", [])]
    record = {"from": str(path.resolve()), "on": where, "members": done, "kept": kept}
    label = f"{metadata.get('label') or type(model).__name__}, refit"
    ensemble.save(refit, args.out, metadata={**metadata, "command": "ensemble refit", "label": label, "members": rows, "refit": record})
    print(f"refit ensemble written to {escape(str(args.out))}", file=sys.stderr)
    text = "\n".join([
        f"refit on {where['n']} examples: {', '.join(done) or 'none'}",
        *(f"kept {name}: {reason}" for name, reason in kept.items()),
        f"written to {args.out}",
    ])
    return Output({"out": str(args.out), "refit": record}, text)


def build_parser():
    parser, sub, common = make_parser("ensemble", "Blend and stack zoo models and saved scikit-learn/XGBoost models.")
    datasets = sources.dataset_names()  # registered by the plug-ins

    def data_args(p, default_split):
        p.add_argument("--dataset", choices=datasets or None, help="dataset whose split to use")
        p.add_argument("--split", choices=["train", "validation", "test"], default=default_split)
        p.add_argument("--data", metavar="FILE.npz", help="your own arrays X and y instead of a dataset split")
        p.add_argument("--cache", metavar="DIR", help="member prediction cache (default: $ZOO_CACHE_DIR/predictions)")
        p.add_argument("--seed", type=int, default=0, help="random seed (Caruana bagging, random-forest meta-learner, a distilled student)")

    def member_args(p, required=True):
        p.add_argument("--members", nargs="+", required=required, default=[], metavar="M", help="zoo names or model files (.skops, .keras, .json/.ubj)")
        trust_args(p)

    def trust_args(p):
        p.add_argument("--trust", action="append", default=[], metavar="TYPE",
                       help="trust this type or function (module.Name) in .skops files; repeat for several")
        p.add_argument("--allow-pickle", action="store_true",
                       help="accept .joblib/.pkl files: loading them RUNS CODE from the file, only for files you trust")

    p = sub.add_parser("fit-weights", parents=[common], help="fit blend weights on validation data; save the blend to a folder")
    member_args(p)
    p.add_argument("--method", choices=["mean", "slsqp", "nnls", "caruana"], default="slsqp")
    p.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=False,
                   help="temperature-scale each member, then the blend, on the same data (default: off)")
    p.add_argument("--out", required=True, metavar="DIR", help="saved-ensemble folder to write (replaced atomically)")
    data_args(p, "validation")
    p.set_defaults(func=functools.partial(_cmd_fit, kind="blend"))

    p = sub.add_parser("select", parents=[common], help="Caruana's ensemble selection from a model library on validation data; save the blend")
    p.add_argument("--library", required=True, metavar="LIB", help="model library folder (LIB/registry.yaml, as `zoo search` writes)")
    p.add_argument("--members", nargs="+", default=[], metavar="M", help="more candidates: zoo names or model files")
    trust_args(p)
    p.add_argument("--ensemble-size", type=positive_int, default=50, metavar="N", help="selections, with replacement (default: 50)")
    p.add_argument("--init", type=positive_int, default=1, metavar="N", help="sorted initialisation: start from the N best (default: 1)")
    p.add_argument("--bags", type=positive_int, default=1, metavar="B", help="bagged selection: average B selections (default: 1)")
    p.add_argument("--bag-fraction", type=fraction, default=0.5, metavar="F", help="fraction of the candidates in each bag (default: 0.5)")
    p.add_argument("--prune", type=positive_int, metavar="K", help="library pruning: only the K candidates best alone (default: all)")
    p.add_argument("--scoring", choices=["log_loss", "accuracy"], default="log_loss", help="what the selection optimises (default: log_loss)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the weight of each candidate (matplotlib)")
    p.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=True,
                   help="temperature-scale each candidate before selecting, then the blend (default: on)")
    p.add_argument("--out", required=True, metavar="DIR", help="saved-ensemble folder to write (replaced atomically)")
    data_args(p, "validation")
    p.set_defaults(func=functools.partial(_cmd_fit, kind="select"))

    p = sub.add_parser("stack", parents=[common], help="fit a stacking meta-learner on validation data; save the stack to a folder")
    member_args(p)
    p.add_argument("--meta", choices=["logreg", "rf", "xgboost"], default="logreg")
    p.add_argument("--out", required=True, metavar="DIR", help="saved-ensemble folder to write (replaced atomically)")
    data_args(p, "validation")
    p.set_defaults(func=functools.partial(_cmd_fit, kind="stack"))

    p = sub.add_parser("evaluate", parents=[common], help="members vs ensemble on a split (a saved-ensemble folder)")
    p.add_argument("path", metavar="DIR")
    trust_args(p)
    data_args(p, "test")
    p.add_argument("--x", metavar="X.npy|TEXT", help="inputs larger than memory: a .npy array (memory-mapped) or a UTF-8 text file, one review per line")
    p.add_argument("--y", metavar="Y.npy", help="the labels of --x, a .npy array (memory-mapped)")
    p.add_argument("--chunk-size", type=positive_int, default=10_000, metavar="N", help="rows predicted at a time (default: 10000)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the blend weight of each member, with its accuracy (matplotlib)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("convert", parents=[common], help="convert a version 0.1 weights.json or stack folder to a saved-ensemble folder")
    p.add_argument("path", metavar="WEIGHTS_JSON_OR_STACK_DIR")
    p.add_argument("--out", required=True, metavar="DIR")
    trust_args(p)
    data_args(p, "validation")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("export", parents=[common], help="fuse a saved ensemble into one model; write it as a TensorFlow SavedModel")
    p.add_argument("path", metavar="DIR")
    p.add_argument("--out", required=True, metavar="PATH", help="SavedModel folder to create (refused if it exists and is not empty)")
    trust_args(p)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("distill", parents=[common], help="train a student (a zoo recipe or builder) on a saved ensemble's soft labels")
    p.add_argument("path", metavar="DIR")
    p.add_argument("--student", required=True, metavar="NAME", help="a zoo recipe (fashion_mnist_bn_cnn: its augmentation, schedule), a library entry LIB/ENTRY, or a builder")
    p.add_argument("--out", required=True, metavar="LIB", help="model library to write the student into (created if missing)")
    p.add_argument("--name", metavar="ENTRY", help="the student's entry name (default: <dataset or data>_student)")
    p.add_argument("--temperature", type=float, default=1.0, help="soft labels p**(1/T), renormalised (default: 1)")
    p.add_argument("--epochs", type=positive_int, metavar="N", help="override the student's epochs")
    p.add_argument("--subset", type=positive_int, metavar="N", help="distil on the first N examples only (a smoke run)")
    p.add_argument("--backup-dir", metavar="DIR", help="folder the student's training backs itself up into after every epoch; the same "
                   "command run again after a crash or kill resumes from the last completed epoch (default: LIB/.backups/distill_ENTRY)")
    p.add_argument("--no-backup", action="store_true", help="train the student without a backup (no resumption)")
    trust_args(p)
    data_args(p, "train")
    p.set_defaults(func=_cmd_distill)

    p = sub.add_parser("diversity", parents=[common], help="member accuracy, log loss and pairwise diversity")
    member_args(p, required=False)
    p.add_argument("--library", metavar="LIB", help="also compare the models of this library (LIB/registry.yaml, as `zoo search` writes)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the error-correlation heatmap and accuracies (matplotlib)")
    data_args(p, "validation")
    p.set_defaults(func=_cmd_diversity)

    p = sub.add_parser("refit", parents=[common], help="refit a saved ensemble's scikit-learn members on more data, keeping its weights")
    p.add_argument("path", metavar="DIR")
    p.add_argument("--out", required=True, metavar="DIR2", help="saved-ensemble folder to write (replaced atomically)")
    p.add_argument("--dataset", choices=datasets or None, help="dataset whose split to use")
    p.add_argument("--split", choices=["train", "validation", "test", "train+validation"], default="train+validation",
                   help="split to refit on (default: train+validation, the two concatenated)")
    p.add_argument("--data", metavar="FILE.npz", help="your own arrays X and y instead of a dataset split")
    trust_args(p)
    p.set_defaults(func=_cmd_refit)
    for action in sub.choices.values():
        action.set_defaults(needs_tensorflow=True)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``ensemble`` command."""
    return run(lambda args: args.func(args), build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
