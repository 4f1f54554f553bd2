"""``zoo`` command line: list, inspect, evaluate, train and run zoo models."""

from __future__ import annotations

import sys
from pathlib import Path

from zoo._cli import Output, UsageError, load_npz, make_parser, run, table


def _cmd_list(args):
    import zoo

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

    entry = zoo.info(args.name)
    model = zoo.load(args.name, weights=None)
    summary = io.StringIO()
    model.summary(print_fn=lambda line, **_: summary.write(line + "\n"))
    if args.plot:
        _plot_model(model, args.plot)
    text = yaml.safe_dump(entry, sort_keys=False, default_flow_style=None, width=100) + "\n" + summary.getvalue()
    return Output(entry, text)


def _plot_model(model, path: str) -> None:
    import shutil

    import keras

    try:
        import pydot  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs pydot (pip install 'keras-zoo-ensemble[plot]') and Graphviz (e.g. apt install graphviz)") from None
    if shutil.which("dot") is None:
        raise UsageError("--plot needs Graphviz's `dot` program on PATH (e.g. apt install graphviz / brew install graphviz)")
    keras.utils.plot_model(model, to_file=path, show_shapes=True)
    print(f"architecture drawn to {path}", file=sys.stderr)


def _cmd_evaluate(args):
    import zoo
    from zoo.models import predict_proba, scores

    entry = zoo.info(args.name)
    if args.data:
        X, y = load_npz(args.data)
        where = args.data
    else:
        X, y = zoo.datasets.load(entry["dataset"], args.split)
        where = f"{entry['dataset']} {args.split}"
    if args.limit:
        X, y = X[: args.limit], y[: args.limit]
    model = zoo.load(args.name)
    _check_input(entry, X, args.data or where)
    measured = scores(y, predict_proba(model, X, verbose=0 if args.quiet else 1))
    recorded = None if args.data else entry["metrics"].get(args.split)
    data = {"name": args.name, "data": where, "n": len(y), "measured": measured, "registry": recorded}
    rows = [["measured now", measured["accuracy"], measured["log_loss"]]]
    if recorded:
        rows.append(["registry", recorded["accuracy"], recorded["log_loss"]])
    return Output(data, f"{args.name} on {where} ({len(y)} examples)\n" + table(["", "accuracy", "log loss"], rows))


def _check_input(entry: dict, X, source: str) -> None:
    if entry["input"]["dtype"] == "string":
        if X.ndim != 1 or not all(isinstance(x, str) for x in X[:100]):
            raise UsageError(f"{entry['name']} takes a 1-D array of strings; {source} gives shape {X.shape}, dtype {X.dtype}")
        return
    shape = tuple(entry["input"]["shape"])
    if X.ndim == 3 and tuple(X.shape[1:]) == shape[:2]:
        return
    if tuple(X.shape[1:]) != shape:
        raise UsageError(f"{entry['name']} takes images of shape (n, {', '.join(map(str, shape))}); {source} gives {X.shape}")


def _cmd_train(args):
    import zoo

    entry = zoo.train(args.name, epochs=args.epochs, run_dir=args.out, subset=args.subset, verbose=0 if args.quiet else 2)
    m = entry["metrics"]
    data = {"name": args.name, "metrics": m, "training": entry["training"], "weights": entry["weights"]}
    text = f"trained {args.name}: {entry['training']['epochs_run']} epochs in {entry['training']['seconds'] / 60:.1f} min\n" + table(
        ["split", "accuracy", "log loss"], [[s, m[s]["accuracy"], m[s]["log_loss"]] for s in ("validation", "test")]
    )
    return Output(data, text)


def _read_inputs(entry: dict, paths: list[str]):
    """Read the inputs of ``zoo predict``: .npy/.npz arrays, PNG images, or a text file of reviews."""
    import numpy as np

    text_model = entry["input"]["dtype"] == "string"
    first = Path(paths[0])
    for p in paths:
        if not Path(p).is_file():
            raise UsageError(f"input file {p} does not exist")
    if first.suffix in (".npy", ".npz"):
        X = _read_array(first)
        names = [f"{first.name}[{i}]" for i in range(len(X))]
    elif first.suffix.lower() == ".png":
        if text_model:
            raise UsageError(f"{entry['name']} is a text model; give a text file with one review per line")
        X = np.stack([_read_png(p, entry["input"]["shape"]) for p in paths])
        names = [Path(p).name for p in paths]
    else:
        if not text_model:
            raise UsageError(f"{entry['name']} is an image model; give .npy/.npz arrays or PNG images, not {first.name}")
        lines = [line for line in first.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not lines:
            raise UsageError(f"{first} holds no reviews (one review per line)")
        X = np.array(lines, dtype=object)
        names = [f"line {i + 1}" for i in range(len(X))]
    if X.dtype.kind == "U":
        X = X.astype(object)
    if not text_model and X.ndim == 3:
        X = X[..., None]
    if not text_model and X.dtype != np.uint8:
        raise UsageError(f"{entry['name']} takes uint8 images (0-255); {first.name} holds {X.dtype}")
    _check_input(entry, X, first.name)
    return X, names


def _read_array(path: Path):
    """The array in a ``.npy`` file, or the ``X`` (or only) array of a ``.npz`` file; no pickle."""
    import zipfile

    import numpy as np

    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as npz:
            key = "X" if "X" in npz.files else npz.files[0] if len(npz.files) == 1 else None
            if key is None:
                raise UsageError(f"{path} holds arrays {npz.files}; name the input array X")
            return npz[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc


def _read_png(path: str, shape):
    import numpy as np
    from PIL import Image

    try:
        image = Image.open(path).convert("L")
    except OSError as exc:
        raise UsageError(f"cannot read {path} as an image: {exc}") from exc
    if image.size != (shape[1], shape[0]):
        image = image.resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)[..., None]


def _cmd_predict(args):
    import zoo

    entry = zoo.info(args.name)
    X, names = _read_inputs(entry, args.inputs)
    proba = zoo.predict_proba(zoo.load(args.name), X)
    classes = entry["classes"]
    rows = [
        {"input": n, "label": classes[int(p.argmax())], "class_index": int(p.argmax()), "probability": float(p.max()), "probabilities": p.tolist()}
        for n, p in zip(names, proba)
    ]
    return Output(rows, table(["input", "label", "probability"], [[r["input"], r["label"], r["probability"]] for r in rows]))


def build_parser():
    parser, sub, common = make_parser("zoo", "Pretrained Keras models for MNIST, Fashion-MNIST and IMDB.")
    p = sub.add_parser("list", parents=[common], help="list models with their accuracy")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern (default: *)")
    p.add_argument("--dataset", choices=["mnist", "fashion_mnist", "imdb"])
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("info", parents=[common], help="registry entry, model summary and recipe")
    p.add_argument("name")
    p.add_argument("--plot", metavar="FILE.png", help="draw the architecture (needs pydot and Graphviz)")
    p.set_defaults(func=_cmd_info, needs_tensorflow=True)

    p = sub.add_parser("evaluate", parents=[common], help="accuracy and log loss measured now, beside the registry's")
    p.add_argument("name")
    p.add_argument("--split", choices=["train", "validation", "test"], default="test")
    p.add_argument("--data", metavar="FILE.npz", help="your own arrays X and y instead of a dataset split")
    p.add_argument("--limit", type=int, help="only the first N examples")
    p.set_defaults(func=_cmd_evaluate, needs_tensorflow=True)

    p = sub.add_parser("train", parents=[common], help="re-run the model's recipe and update the registry")
    p.add_argument("name")
    p.add_argument("--epochs", type=int, help="maximum epochs (default: the recipe's)")
    p.add_argument("--out", metavar="DIR", help="run directory for logs and checkpoints (default: runs/NAME-TIMESTAMP)")
    p.add_argument("--subset", type=int, help="train and measure on the first N examples only (a smoke test)")
    p.set_defaults(func=_cmd_train, needs_tensorflow=True)

    p = sub.add_parser("predict", parents=[common], help="label and probability for each input")
    p.add_argument("name")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".npy/.npz array, PNG image(s), or a text file with one review per line")
    p.set_defaults(func=_cmd_predict, needs_tensorflow=True)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``zoo`` command."""
    parser = build_parser()
    return run(lambda args: args.func(args), parser, argv)


if __name__ == "__main__":
    sys.exit(main())
