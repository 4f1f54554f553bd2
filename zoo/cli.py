"""``zoo`` command line: list, inspect, evaluate, train and run zoo models; search and watch searches.

One subcommand per action. Reading a search's trials is ``zoo history LIB``
(``zoo.search.history`` / ``plot_history``), not ``zoo search --history``:
``search`` requires NAME, ``--library`` and ``--trials`` to run a study, and
its other flags would mean nothing to a read-only listing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from zoo._cli import (
    Output,
    UsageError,
    escape,
    load_npz,
    make_parser,
    positive_int,
    quiet_tensorflow_start,
    run,
    table,
)

def _cmd_list(args):
    import zoo

    if args.library is not None:
        return _list_library(args)
    rows = []
    for name in zoo.list_models(args.pattern, dataset=args.dataset):
        e = zoo.info(name)
        rows.append(
            {
                "name": name,
                "dataset": e["dataset"],
                "parameters": e["parameters"],
                "validation_accuracy": e["metrics"]["validation"]["accuracy"],
                "test_accuracy": e["metrics"]["test"]["accuracy"],
            }
        )
    text = table(
        ["name", "dataset", "parameters", "val acc", "test acc"],
        [[r["name"], r["dataset"], r["parameters"], r["validation_accuracy"], r["test_accuracy"]] for r in rows],
    )
    return Output(rows, text if rows else "no models match")


def _cmd_info(args):
    import io

    import yaml

    import zoo

    registry = _library(args.library) if args.library is not None else None
    entry = zoo.info(args.name, registry=registry)
    if args.plot:
        _check_output_file(args.plot, "--plot")
    _start_tensorflow(args)
    model = zoo.load(args.name, weights=None, registry=registry)
    summary = io.StringIO()
    model.summary(print_fn=lambda line, **_: summary.write(line + "\n"))
    if args.plot:
        _plot_model(model, args.plot)
    text = yaml.safe_dump(entry, sort_keys=False, default_flow_style=None, width=100) + "\n" + summary.getvalue()
    if registry is not None and entry.get("logs"):  # a search trial's CSV and TensorBoard logs
        logs = Path(args.library) / entry["logs"]
        text += f"\ntraining logs: {logs} (tensorboard --logdir {logs / 'tensorboard'})\n"
    return Output(entry, text)


def _check_output_file(path: str, option: str) -> None:
    """A ``UsageError`` naming ``option`` unless ``path`` can be a file name to write."""
    from kze.files import check_file_name

    try:
        check_file_name(path)
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror}") from None


def _check_output_folder(path: str, option: str) -> None:
    """A ``UsageError`` naming ``option`` unless ``path`` is a folder or can be made one."""
    from kze.files import check_file_name

    try:
        if Path(path).is_dir():
            return
        check_file_name(path)
        if Path(path).exists():
            raise UsageError(f"{option} {path}: exists and is not a folder")
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror}") from None


def _plot_model(model, path: str) -> None:
    import shutil

    import keras

    from kze.files import atomic_path

    try:
        import pydot  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs pydot (pip install 'keras-zoo-ensemble[plot]') and Graphviz (e.g. apt install graphviz)") from None
    if shutil.which("dot") is None:
        raise UsageError("--plot needs Graphviz's `dot` program on PATH (e.g. apt install graphviz / brew install graphviz)")
    with atomic_path(path, suffix=Path(path).suffix) as tmp:
        keras.utils.plot_model(model, to_file=str(tmp), show_shapes=True)
    print(f"architecture drawn to {escape(path)}", file=sys.stderr)


def _cmd_evaluate(args):
    import zoo
    from zoo.models import predict_proba, scores
    from zoo.predicting import check_input

    entry = zoo.info(args.name)
    if args.data:
        X, y = load_npz(args.data)
        where = args.data
    else:
        X, y = zoo.datasets.load(entry["dataset"], args.split)
        where = f"{entry['dataset']} {args.split}"
    if args.limit is not None:
        X, y = X[: args.limit], y[: args.limit]
    X = check_input(entry, X, args.data or where)
    _start_tensorflow(args)
    model = zoo.load(args.name)
    measured = scores(y, predict_proba(model, X, verbose=0 if args.quiet else 1))
    recorded = None if args.data else entry["metrics"].get(args.split)
    data = {"name": args.name, "data": where, "n": len(y), "measured": measured, "registry": recorded}
    rows = [["measured now", measured["accuracy"], measured["log_loss"]]]
    if recorded:
        rows.append(["registry", recorded["accuracy"], recorded["log_loss"]])
    return Output(data, f"{args.name} on {where} ({len(y)} examples)\n" + table(["", "accuracy", "log loss"], rows))


def _start_tensorflow(args) -> None:
    """Import TensorFlow, its start-up noise muted, once the inputs are checked (input errors come fast)."""
    if not args.debug:
        quiet_tensorflow_start()


def _cmd_train(args):
    """Train a recipe into ``--library``/``--registry``, the shipped registry only with ``--into-package`` (see ``zoo.training``)."""
    import zoo
    from zoo.recipes import recipe
    from zoo.training import target_registry

    recipe(args.name)  # an unknown name is refused before any folder is made
    if args.out is not None:
        _check_output_folder(args.out, "--out")
    given = [option for option, value in (("--library", args.library), ("--registry", args.registry), ("--into-package", args.into_package)) if value]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)}: give one of --library DIR, --registry FILE and --into-package")
    if args.no_backup and args.backup_dir is not None:
        raise UsageError("--backup-dir and --no-backup: give one of them")
    if args.library is not None:
        _check_output_folder(args.library, "--library")
    if args.registry is not None:
        _check_output_file(args.registry, "--registry")
    registry = target_registry(args.registry, args.library, args.into_package)
    if args.into_package:
        print(f"zoo train: --into-package: overwriting {args.name} in the shipped registry {registry.path} and its weights in {registry.weights_dir}",
              file=sys.stderr)
    _start_tensorflow(args)

    kwargs = {"into_package": True} if args.into_package else {"registry": registry}
    backup = False if args.no_backup else args.backup_dir
    entry = zoo.train(args.name, epochs=args.epochs, run_dir=args.out, subset=args.subset, verbose=0 if args.quiet else 2, backup_dir=backup, **kwargs)
    m = entry["metrics"]
    where = registry.path.parent if registry.path.name == "registry.yaml" else registry.path
    data = {"name": args.name, "registry": str(registry.path), "metrics": m, "training": entry["training"], "weights": entry["weights"]}
    text = (
        f"trained {args.name}: {entry['training']['epochs_run']} epochs in {entry['training']['seconds'] / 60:.1f} min\n"
        f"entry written to {registry.path} (load it with zoo.load({args.name!r}, registry={str(where)!r}))\n"
        + table(["split", "accuracy", "log loss"], [[s, m[s]["accuracy"], m[s]["log_loss"]] for s in ("validation", "test")])
    )
    return Output(data, text)


def _cmd_predict(args):
    import zoo
    from zoo.predicting import open_input, predict_rows, predict_to_file, read_inputs

    entry = zoo.info(args.name)
    if args.out is not None:
        path, X = open_input(entry, args.inputs, before_read=lambda: _check_output_file(args.out, "--out"))
        _start_tensorflow(args)
        data = predict_to_file(args.name, path, X, args.out, chunk_size=args.chunk_size, progress=False if args.quiet else None)
        n, counts = data["n"], data["predicted"]
        return Output(data, f"{n} rows of {args.name} class probabilities written to {escape(str(args.out))}\n"
                      + table(["label", "predicted", "share"], [[c, k, f"{k / n:.2%}"] for c, k in counts.items()]))
    if args.chunk_size is not None:
        raise UsageError("--chunk-size goes with --out (without it, the inputs are predicted in memory)")
    X, names = read_inputs(entry, args.inputs)
    _start_tensorflow(args)
    rows = predict_rows(args.name, X, names)
    return Output(rows, table(["input", "label", "probability"], [[r["input"], r["label"], r["probability"]] for r in rows]))


def build_parser():
    parser, sub, common = make_parser("zoo", "Pretrained Keras models for MNIST, Fashion-MNIST and IMDB.")
    p = sub.add_parser("list", parents=[common], help="list models with their accuracy")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern (default: *)")
    p.add_argument("--dataset", choices=["mnist", "fashion_mnist", "imdb"])
    p.add_argument("--library", metavar="DIR", help="a model library written by `zoo search`, best search objective first")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("info", parents=[common], help="registry entry, model summary and recipe")
    p.add_argument("name")
    p.add_argument("--plot", metavar="FILE.png", help="draw the architecture (needs pydot and Graphviz)")
    p.add_argument("--library", metavar="DIR", help="read the entry from a model library written by `zoo search`")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("evaluate", parents=[common], help="accuracy and log loss measured now, beside the registry's")
    p.add_argument("name")
    p.add_argument("--split", choices=["train", "validation", "test"], default="test")
    p.add_argument("--data", metavar="FILE.npz", help="your own arrays X and y instead of a dataset split")
    p.add_argument("--limit", type=positive_int, help="only the first N examples")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("train", parents=[common], help="re-run the model's recipe into a model library (never the package, unless asked)")
    p.add_argument("name")
    p.add_argument("--epochs", type=positive_int, help="maximum epochs (default: the recipe's)")
    p.add_argument("--out", metavar="DIR", help="run directory for logs and checkpoints (default: runs/NAME-TIMESTAMP)")
    p.add_argument("--subset", type=positive_int, help="train and measure on the first N examples only (a smoke test)")
    p.add_argument("--library", metavar="DIR", help="model library to write the entry and weights into (DIR/registry.yaml, DIR/weights/; "
                   "created if missing). Default: $ZOO_REGISTRY if set, else $ZOO_CACHE_DIR/trained")
    p.add_argument("--registry", metavar="FILE", help="registry file to write the entry into (weights in a weights/ folder beside it; created if missing)")
    p.add_argument("--into-package", action="store_true", help="overwrite the entry and weights shipped in the package (retraining the zoo itself)")
    p.add_argument("--backup-dir", metavar="DIR", help="folder the training backs itself up into after every epoch; the same command run again "
                   "after a crash or kill resumes from the last completed epoch (default: .backups/train_NAME beside the target registry)")
    p.add_argument("--no-backup", action="store_true", help="train without a backup (no resumption)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("predict", parents=[common], help="label and probability for each input")
    p.add_argument("name")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".npy/.npz arrays, PNG images, or text files with one review per line; each is read")
    p.add_argument("--out", metavar="FILE.npy", help="write the class probabilities (one row per input row, one column per class) to this "
                   ".npy file, predicting chunk by chunk: for one input larger than memory (a .npy array or a text file)")
    p.add_argument("--chunk-size", type=positive_int, metavar="N", help="with --out: rows predicted at a time (default: 10000)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("search", parents=[common], help="hyperparameter search (Optuna); every completed trial joins a model library")
    p.add_argument("name", help="a zoo entry (its train split, builder and recipe are the starting point) or a builder name with --data")
    p.add_argument("--library", required=True, metavar="DIR", help="model library folder (registry.yaml, weights/, search.journal); created if missing")
    p.add_argument("--trials", required=True, type=positive_int, metavar="N", help="the study's total number of trials; re-running continues up to it")
    p.add_argument("--data", metavar="FILE.npz", help="your arrays X and y (needed with a builder name)")
    p.add_argument("--storage", metavar="URL", help="an Optuna storage URL, e.g. sqlite:///study.db or postgresql://... "
                   "(default: LIB/search.journal; with --dask: LIB/search.db, for workers on this machine only)")
    p.add_argument("--workers", type=positive_int, metavar="K", help="worker processes on this machine (default: 1)")
    p.add_argument("--dask", metavar="ADDRESS", help="run the trials on a Dask cluster: its scheduler's address, tcp://host:8786 or tls://host:8786 "
                   "(TLS settings from Dask's configuration)")
    p.add_argument("--heartbeat", type=positive_int, metavar="SECONDS", help="with --dask: seconds between heartbeats of a running trial; "
                   "a trial silent for three is run again (default: 20)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="start no trial after this many seconds (running ones finish)")
    p.add_argument("--subset", type=positive_int, metavar="N", help="smoke run: the first N training examples plus an early-stopping slice")
    p.add_argument("--epochs", type=positive_int, metavar="E", help="fix the maximum number of epochs (no longer searched)")
    p.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler, plus an offset of the study name and each trial's number (default: 0)")
    p.add_argument("--space", metavar="FILE.yaml", help="search space laid over the builder's default (see zoo.search_spaces)")
    p.add_argument("--metric", choices=["accuracy", "log_loss"], default="accuracy", help="objective on the early-stopping slice (default: accuracy)")
    p.add_argument("--study", metavar="NAME", help="study name and prefix of the library's entry names (default: NAME)")
    p.add_argument("--trials-per-process", type=positive_int, metavar="M", help="trials a worker process runs before it is replaced (default: 1)")
    p.add_argument("--executor", choices=["worker", "inprocess", "processes"], help="where trials run: one worker process replaced every "
                   "--trials-per-process trials (default, 10), this process, or spawned processes (default with --workers/--trials-per-process)")
    p.add_argument("--no-pruning", action="store_true", help="never prune trials (default: median pruning from the fifth trial, after two epochs)")
    p.add_argument("--no-logs", action="store_true", help="write no CSV or TensorBoard logs (default: each trial's in LIB/runs/ENTRY/)")
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("history", parents=[common], help="the trials of a model library's search studies (and a plot of them)")
    p.add_argument("library", metavar="LIB", help="a model library folder written by `zoo search`")
    p.add_argument("--study", metavar="NAME", help="only this study (default: every study in the library's storage)")
    p.add_argument("--storage", metavar="URL", help="the Optuna storage URL the search used (default: LIB/search.journal, else LIB/search.db)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the study's optimisation history and parameter importances (needs matplotlib)")
    p.set_defaults(func=_cmd_history)
    return parser


def _library(path: str):
    """The registry of a model library folder, or a ``UsageError``."""
    from zoo.registry import Registry

    if not (Path(path) / "registry.yaml").is_file():
        raise UsageError(f"--library {path}: no registry.yaml there (a folder written by `zoo search`)")
    return Registry(Path(path))


def _list_library(args):
    from zoo.library import listing

    rows = listing(_library(args.library), args.pattern, dataset=args.dataset)
    text = table(
        ["name", "builder", "dataset", "trial", "objective", "value", "parameters"],
        [[r["name"], r["builder"], r["dataset"], r["trial"], r["objective"], r["value"], r["parameters"]] for r in rows],
    )
    return Output(rows, text if rows else "no models match")


def _cmd_search(args):
    import zoo

    space = _read_space(args.space) if args.space is not None else None
    pruner = None
    if args.no_pruning:
        import optuna

        pruner = optuna.pruners.NopPruner()
    s = zoo.search(
        args.name, library=args.library, n_trials=args.trials, data=args.data, storage=args.storage, seed=args.seed,
        timeout=args.timeout, subset=args.subset, epochs=args.epochs, space=space, workers=args.workers or 1, metric=args.metric,
        pruner=pruner, study_name=args.study, trials_per_process=args.trials_per_process, progress=not args.quiet, executor=args.executor,
        logs=not args.no_logs, **_cluster_options(args),
    )
    t = s["trials"]
    text = (f"study {s['study']} in {s['library']}: {sum(t.values())} of {s['n_trials']} trials "
            f"({t['complete']} complete, {t['pruned']} pruned, {t['failed']} failed, {t['running']} running elsewhere)"
            f"{', timed out' if s['timed_out'] else ''}; this run took {s['wall_seconds']:.0f} s")
    best = s["best"]
    if best is not None:
        text += (f"\nbest: trial {best['trial']}, early-stopping {s['metric']} {best['value']:.4f}: {best['entry']}"
                 f" (zoo info {best['entry']} --library {args.library})\n")
        text += table(["hyperparameter", "value"], [[k, f"{v:.4g}" if isinstance(v, float) else str(v)] for k, v in best["params"].items()])
    if s["logs"] is not None:
        text += f"\ntrial logs: {s['logs']} (tensorboard --logdir {s['logs']}; zoo history {args.library})"
    return Output(s, text)


def _cmd_history(args):
    from zoo.search import history, plot_history

    if args.plot:
        _check_output_file(args.plot, "--plot")
    h = history(args.library, storage=args.storage, study=args.study)
    parts = []
    for study in h["studies"]:
        trials = study["trials"]
        parts.append(f"study {study['study']} ({study['direction']} {study['metric'] or 'value'}): {len(trials)} trials")
        parts.append(table(
            ["trial", "state", "value", "seconds", "entry", "parameters"],
            [[t["number"], t["state"] + (f" ({t['note']})" if t["note"] else ""), "" if t["value"] is None else f"{t['value']:.4f}",
              "" if t["duration_seconds"] is None else f"{t['duration_seconds']:.1f}", t["entry"] or "",
              ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())] for t in trials],
        ) if trials else "no trials")
    text = "\n".join(parts) if parts else f"no studies in {h['storage']}"
    if args.plot:
        try:
            h["plot"] = plot_history(args.library, args.plot, storage=args.storage, study=args.study)
        except ImportError as exc:
            raise UsageError(f"--plot {args.plot}: {exc}") from None
        drawn = h["plot"]
        text += f"\n{drawn['study']}: optimisation history{' and parameter importances' if 'importances' in drawn['plots'] else ''} drawn into {args.plot}"
        if "importances" not in drawn["plots"]:
            text += f" (no parameter importances: they need 2 complete trials, the study has {drawn['complete']})"
    return Output(h, text)


def _cluster_options(args) -> dict:
    """``zoo.search``'s cluster arguments from ``--dask`` and ``--heartbeat``, or a ``UsageError``."""
    if args.dask is None:
        if args.heartbeat is not None:
            raise UsageError("--heartbeat goes with --dask")
        return {}
    for flag, value in (("--workers", args.workers), ("--trials-per-process", args.trials_per_process)):
        if value is not None:
            raise UsageError(f"{flag} is for one machine: with --dask each worker runs one trial at a time, each in its own process")
    return {"client": args.dask, "heartbeat": args.heartbeat}


def _read_space(path: str) -> dict:
    """A search space from a YAML file, or a ``UsageError``."""
    import yaml

    try:
        space = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"--space {path}: cannot read it as YAML: {exc}") from None
    if not isinstance(space, dict):
        raise UsageError(f"--space {path}: expected a mapping of hyperparameter names, got {type(space).__name__}")
    return space


def main(argv=None) -> int:
    """Entry point of the ``zoo`` command."""
    parser = build_parser()
    return run(lambda args: args.func(args), parser, argv)


if __name__ == "__main__":
    sys.exit(main())
