"""``ensemble`` command line: fit blend weights or a stack on validation data, evaluate, inspect diversity.

Members are zoo model names or paths to saved models: scikit-learn estimators
or pipelines saved with joblib (``.joblib``/``.pkl``), or XGBoost model files
(``.json``/``.ubj``, numeric inputs only; images are flattened). Member
predictions are cached (``--cache``, default ``$ZOO_CACHE_DIR/predictions``),
so refitting on the same data does not re-run the members.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo._cli import Output, UsageError, load_npz, make_parser, run, table

_WEIGHTS_FORMAT = "ensemble-blend-weights"
_STACK_FORMAT = "ensemble-stack"
_STACK_FILE, _META_FILE = "stack.json", "meta_learner.joblib"


@dataclass
class _Member:
    name: str
    kind: str  # "zoo", "sklearn" or "xgboost"
    source: str  # zoo name, or the file's path
    sha256: str
    estimator: object

    def record(self, base: Path) -> dict:
        source = self.source if self.kind == "zoo" else os.path.relpath(Path(self.source).resolve(), base.resolve())
        return {"name": self.name, "kind": self.kind, "source": source, "sha256": self.sha256}


# --------------------------------------------------------------------------- members and data


def _load_member(spec: str, dataset: str | None) -> _Member:
    import zoo
    from zoo._files import sha256_file

    if spec in zoo.Registry():
        entry = zoo.info(spec)
        if dataset is not None and entry["dataset"] != dataset:
            raise UsageError(f"member {spec} is a model for {entry['dataset']}; the data are {dataset}")
        from ensemble import KerasMember

        model = zoo.load(spec)  # checks the weights' sha256
        return _Member(spec, "zoo", spec, entry["weights"]["sha256"], KerasMember(model, classes=np.arange(len(entry["classes"]))))
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"member {spec!r} is neither a zoo model (see `zoo list`) nor an existing file")
    digest = sha256_file(path)
    from sklearn.frozen import FrozenEstimator

    if path.suffix in (".json", ".ubj"):
        return _Member(path.stem, "xgboost", str(path), digest, FrozenEstimator(_xgboost_file(path)))
    if path.suffix in (".joblib", ".pkl", ".pickle"):
        import joblib

        try:
            estimator = joblib.load(path)
        except Exception as exc:  # unpickling can fail in many ways; all mean "not a usable model file"
            raise UsageError(f"cannot load member {path}: {type(exc).__name__}: {exc}") from exc
        if not hasattr(estimator, "predict"):
            raise UsageError(f"member {path} holds a {type(estimator).__name__}, not a fitted estimator")
        return _Member(path.stem, "sklearn", str(path), digest, FrozenEstimator(estimator))
    raise UsageError(f"member {path}: unknown model file type {path.suffix!r}; use .joblib/.pkl (scikit-learn) or .json/.ubj (XGBoost)")


def _flatten(X):
    return np.asarray(X).reshape(len(X), -1)


def _xgboost_file(path: Path):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from xgboost import XGBClassifier
    from xgboost.core import XGBoostError

    model = XGBClassifier()
    try:
        model.load_model(path)
    except XGBoostError as exc:
        raise UsageError(f"cannot load XGBoost model {path}: {str(exc).splitlines()[0]}") from exc
    return make_pipeline(FunctionTransformer(_flatten), model)


def _load_members(specs: list[str], dataset: str | None) -> list[_Member]:
    members = [_load_member(s, dataset) for s in specs]
    names = [m.name for m in members]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"members named more than once: {', '.join(duplicates)}")
    return members


def _load_data(args, split: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """The evaluation data: a dataset split or the user's --data file, and a description of it."""
    if args.data:
        X, y = load_npz(args.data)
        where = {"data": str(args.data)}
    else:
        if not args.dataset:
            raise UsageError("give --dataset (mnist, fashion_mnist or imdb) or --data FILE.npz")
        import zoo

        X, y = zoo.datasets.load(args.dataset, split)
        where = {"dataset": args.dataset, "split": split}
    where.update(n=len(y), sha256=_data_sha256(X, y))
    return X, y, where


def _data_sha256(X, y) -> str:
    digest = hashlib.sha256()
    if X.dtype == object:
        for text in X:
            digest.update(str(text).encode("utf-8") + b"\0")
    else:
        digest.update(str(X.shape).encode() + np.ascontiguousarray(X).tobytes())
    digest.update(np.asarray(y).astype(str).tobytes())
    return digest.hexdigest()


def _memory(args):
    from zoo.datasets import cache_dir

    return str(Path(args.cache) if args.cache else cache_dir() / "predictions")


def _member_probabilities(members: list[_Member], X, memory, quiet: bool) -> list[np.ndarray]:
    """Each member's class probabilities on X, through the prediction cache, with a progress bar."""
    from tqdm.auto import tqdm

    from ensemble._cache import check_cache
    from ensemble._members import check_keras_inputs, predict_members

    check_keras_inputs([m.name for m in members], [m.estimator for m in members], X)
    out = []
    for m in tqdm(members, desc="member predictions", unit="member", disable=quiet, file=sys.stderr):
        (proba,) = predict_members([m.name], [m.estimator], X, "predict_proba", memory=check_cache(memory))
        out.append(np.asarray(proba, dtype=np.float64))
    return out


def _scores(y_index: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    from zoo.models import scores

    return scores(y_index, proba)


def _classes_and_index(members: list[_Member], estimators, y):
    """The members' common classes, and y as column indices into them."""
    classes = np.asarray(estimators[0].classes_)
    for member, est in zip(members[1:], estimators[1:]):
        if not np.array_equal(np.asarray(est.classes_), classes):
            raise UsageError(f"members disagree on the classes: {members[0].name} has {classes.tolist()}, {member.name} has {np.asarray(est.classes_).tolist()}")
    unknown = sorted(set(np.unique(y).tolist()) - set(classes.tolist()))
    if unknown:
        raise UsageError(f"labels {unknown[:5]} of the data are not among the members' classes {classes.tolist()[:10]}")
    return classes, np.searchsorted(classes, y)


def _versions() -> dict[str, str]:
    import sklearn
    import xgboost

    import zoo

    versions = {"python": sys.version.split()[0], "numpy": np.__version__, "scikit-learn": sklearn.__version__, "xgboost": xgboost.__version__, "zoo": zoo.__version__}
    for name in ("keras", "tensorflow"):
        if name in sys.modules:
            versions[name] = sys.modules[name].__version__
    return versions


def _write_json(path: Path, doc: dict) -> None:
    from zoo._files import atomic_write_text

    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")


# --------------------------------------------------------------------------- fit-weights / stack


def _cmd_fit_weights(args):
    from ensemble import BlendClassifier

    X, y, where = _load_data(args, args.split)
    members = _load_members(args.members, args.dataset)
    memory = _memory(args)
    probas = _member_probabilities(members, X, memory, args.quiet)
    blend = BlendClassifier([(m.name, m.estimator) for m in members], method=args.method, memory=memory, random_state=args.seed)
    blend.fit(X, y)
    classes, y_index = _classes_and_index(members, blend.estimators_, y)
    ensemble_proba = sum(w * p for w, p in zip(blend.weights_, probas))
    out = Path(args.out)
    doc = {
        "format": _WEIGHTS_FORMAT,
        "format_version": 1,
        "method": args.method,
        "metric": "log_loss" if args.method in ("slsqp", "caruana") else ("squared error on one-hot targets" if args.method == "nnls" else None),
        "fitted_on": where,
        "classes": classes.tolist(),
        "members": [
            {**m.record(out.parent), "weight": float(w), "validation": _scores(y_index, p)} for m, w, p in zip(members, blend.weights_, probas)
        ],
        "ensemble": {"validation": _scores(y_index, ensemble_proba)},
        "versions": _versions(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    _write_json(out, doc)
    print(f"weights written to {out}", file=sys.stderr)
    return _report(doc["members"], doc["ensemble"]["validation"], "validation", f"{args.method} blend", weights=True, data=doc)


def _cmd_stack(args):
    import joblib

    from ensemble import StackClassifier
    from zoo._files import atomic_path, sha256_file

    X, y, where = _load_data(args, args.split)
    members = _load_members(args.members, args.dataset)
    memory = _memory(args)
    probas = _member_probabilities(members, X, memory, args.quiet)
    stack = StackClassifier([(m.name, m.estimator) for m in members], final_estimator=_meta_learner(args.meta, args.seed), memory=memory)
    stack.fit(X, y)
    classes, y_index = _classes_and_index(members, stack.estimators_, y)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / _META_FILE, suffix=".joblib") as tmp:
        joblib.dump(stack.final_estimator_, tmp)
    doc = {
        "format": _STACK_FORMAT,
        "format_version": 1,
        "meta_learner": {"name": args.meta, "class": type(stack.final_estimator_).__name__, "file": _META_FILE, "sha256": sha256_file(out / _META_FILE)},
        "fitted_on": where,
        "classes": classes.tolist(),
        "members": [{**m.record(out), "validation": _scores(y_index, p)} for m, p in zip(members, probas)],
        "ensemble": {"validation": _scores(y_index, stack.predict_proba(X))},
        "versions": _versions(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    _write_json(out / _STACK_FILE, doc)
    print(f"stack written to {out}", file=sys.stderr)
    return _report(doc["members"], doc["ensemble"]["validation"], "validation", f"stack ({args.meta})", data=doc)


def _meta_learner(name: str, seed: int):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from xgboost import XGBClassifier

    return {
        "logreg": lambda: LogisticRegression(max_iter=2000),
        "rf": lambda: RandomForestClassifier(n_estimators=300, min_samples_leaf=3, n_jobs=-1, random_state=seed),
        "xgboost": lambda: XGBClassifier(n_estimators=300, learning_rate=0.05, max_depth=4, tree_method="hist", n_jobs=2, random_state=seed),
    }[name]()


# --------------------------------------------------------------------------- evaluate


def _read_document(path: Path) -> tuple[dict, Path]:
    """Read a weights file or a stack directory's stack.json, checking its format."""
    file = path / _STACK_FILE if path.is_dir() else path
    if not file.is_file():
        raise UsageError(f"{path} is neither a weights .json file nor a stack directory holding {_STACK_FILE}")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{file} is not valid JSON ({exc}); was it truncated?") from exc
    expected = _STACK_FORMAT if path.is_dir() else _WEIGHTS_FORMAT
    if not isinstance(doc, dict) or doc.get("format") != expected:
        raise UsageError(f"{file} is not an {expected} file (format {doc.get('format') if isinstance(doc, dict) else None!r})")
    missing = [k for k in ("members", "classes", "fitted_on") if k not in doc]
    if missing:
        raise UsageError(f"{file} lacks {', '.join(missing)}")
    return doc, file.parent


def _reload_members(doc: dict, base: Path, dataset: str | None) -> list[_Member]:
    """Load the recorded members, refusing any whose sha256 changed since fitting."""
    import zoo

    members = []
    for record in doc["members"]:
        try:
            kind, source, sha = record["kind"], record["source"], record["sha256"]
        except (KeyError, TypeError) as exc:
            raise UsageError(f"member record {record!r} lacks {exc}") from None
        if kind == "zoo":
            if source not in zoo.Registry():
                raise UsageError(f"member {source} is no longer in the zoo registry")
            now = zoo.info(source)["weights"]["sha256"]
            if now != sha:
                raise UsageError(f"member {source}: weights sha256 {now[:12]}… no longer matches the recorded {sha[:12]}…; refit the ensemble")
            member = _load_member(source, dataset)
        else:
            path = (base / source).resolve()
            member = _load_member(str(path), dataset)
            if member.sha256 != sha:
                raise UsageError(f"member {record.get('name', source)}: file {path} has sha256 {member.sha256[:12]}…, not the recorded {sha[:12]}…; refit the ensemble")
        member.name = record.get("name", member.name)
        members.append(member)
    return members


def _cmd_evaluate(args):
    from sklearn.frozen import FrozenEstimator

    from ensemble import BlendClassifier, StackClassifier

    path = Path(args.path)
    doc, base = _read_document(path)
    if not args.data and not args.dataset:
        args.dataset = doc["fitted_on"].get("dataset")
    X, y, where = _load_data(args, args.split)
    if where["sha256"] == doc["fitted_on"].get("sha256"):
        print("note: these are the data the ensemble was fitted on; its scores here are optimistic", file=sys.stderr)
    members = _reload_members(doc, base, args.dataset)
    memory = _memory(args)
    probas = _member_probabilities(members, X, memory, args.quiet)
    named = [(m.name, m.estimator) for m in members]
    if path.is_dir():
        meta = _load_meta_learner(doc, base)
        # every part is prefit or frozen, so fit() learns nothing from y: it only assembles the stack
        model = StackClassifier(named, final_estimator=FrozenEstimator(meta), memory=memory).fit(X, y)
        label = f"stack ({doc['meta_learner']['name']})"
    else:
        weights = [float(m["weight"]) for m in doc["members"]]
        model = BlendClassifier(named, method="mean", weights=weights, memory=memory).fit(X, y)
        label = f"{doc.get('method')} blend"
    classes, y_index = _classes_and_index(members, model.estimators_, y)
    if classes.tolist() != doc["classes"]:
        raise UsageError(f"members now give classes {classes.tolist()[:10]}, the ensemble was fitted with {doc['classes'][:10]}")
    rows = [{**m.record(base), "weight": r.get("weight"), "scores": _scores(y_index, p)} for m, r, p in zip(members, doc["members"], probas)]
    ensemble_scores = _scores(y_index, model.predict_proba(X))
    split = where.get("split", where.get("data"))
    data = {"ensemble": label, "evaluated_on": where, "members": rows, "ensemble_scores": ensemble_scores}
    best = max(r["scores"]["accuracy"] for r in rows)
    data["gain_over_best_member_points"] = round(100 * (ensemble_scores["accuracy"] - best), 4)
    return _report([{**r, split: r["scores"]} for r in rows], ensemble_scores, split, label, weights=not path.is_dir(), data=data)


def _load_meta_learner(doc: dict, base: Path):
    import joblib

    from zoo._files import sha256_file

    meta = doc.get("meta_learner") or {}
    path = base / str(meta.get("file", _META_FILE))
    if not path.is_file():
        raise UsageError(f"stack directory {base} lacks its meta-learner file {path.name}")
    if sha256_file(path) != meta.get("sha256"):
        raise UsageError(f"meta-learner {path} does not match its recorded sha256; refusing to unpickle it")
    return joblib.load(path)


def _report(member_rows, ensemble_scores, split, label, *, data, weights=False):
    best = max(r[split]["accuracy"] for r in member_rows)
    headers = ["model", *(["weight"] if weights else []), "accuracy", "log loss"]
    rows = [[r["name"], *([float(r["weight"])] if weights else []), r[split]["accuracy"], r[split]["log_loss"]] for r in member_rows]
    rows.append([label, *([1.0] if weights else []), ensemble_scores["accuracy"], ensemble_scores["log_loss"]])
    gain = 100 * (ensemble_scores["accuracy"] - best)
    text = f"{label} on {split}\n" + table(headers, rows) + f"\n\ngain over the best member: {gain:+.2f} accuracy points"
    return Output(data, text)


# --------------------------------------------------------------------------- diversity


def _cmd_diversity(args):
    import ensemble

    X, y, where = _load_data(args, args.split)
    members = _load_members(args.members, args.dataset)
    memory = _memory(args)
    _member_probabilities(members, X, memory, args.quiet)  # fills the cache, with progress
    report = ensemble.diversity([(m.name, m.estimator) for m in members], X, y, memory=memory)
    if args.plot:
        _plot_diversity(report, args.plot)
    return Output({"data": where, **report.to_dict()}, str(report))


def _plot_diversity(report, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'keras-zoo-ensemble[plot]'") from None
    d = report.to_dict()
    names = [m["name"] for m in d["members"]]
    k = len(names)
    corr = np.eye(k)
    for p in d["pairs"]:
        i, j = names.index(p["a"]), names.index(p["b"])
        corr[i, j] = corr[j, i] = p["error_correlation"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(6 + 0.6 * k, 3 + 0.4 * k), gridspec_kw={"width_ratios": [3, 2]})
    image = ax1.imshow(corr, vmin=-1, vmax=1, cmap="RdBu_r")
    ax1.set_xticks(range(k), names, rotation=60, ha="right", fontsize=8)
    ax1.set_yticks(range(k), names, fontsize=8)
    for i in range(k):
        for j in range(k):
            ax1.text(j, i, f"{corr[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax1.set_title("error correlation")
    fig.colorbar(image, ax=ax1, fraction=0.046)
    ax2.barh(names, [m["accuracy"] for m in d["members"]])
    ax2.set_xlim(min(m["accuracy"] for m in d["members"]) - 0.02, 1.0)
    ax2.set_title("accuracy")
    ax2.tick_params(labelsize=8)
    fig.tight_layout()
    from zoo._files import atomic_path

    with atomic_path(path, suffix=Path(path).suffix) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    print(f"diversity plot written to {path}", file=sys.stderr)


# --------------------------------------------------------------------------- parser


def build_parser():
    parser, sub, common = make_parser("ensemble", "Blend and stack zoo models and saved scikit-learn/XGBoost models.")

    def data_args(p, default_split):
        p.add_argument("--dataset", choices=["mnist", "fashion_mnist", "imdb"], help="dataset whose split to use")
        p.add_argument("--split", choices=["train", "validation", "test"], default=default_split)
        p.add_argument("--data", metavar="FILE.npz", help="your own arrays X and y instead of a dataset split")
        p.add_argument("--cache", metavar="DIR", help="member prediction cache (default: $ZOO_CACHE_DIR/predictions)")
        p.add_argument("--seed", type=int, default=0, help="random seed (Caruana bagging, random-forest meta-learner)")

    p = sub.add_parser("fit-weights", parents=[common], help="fit blend weights on validation data; write them as JSON")
    p.add_argument("--members", nargs="+", required=True, metavar="M", help="zoo names or saved model files")
    p.add_argument("--method", choices=["mean", "slsqp", "nnls", "caruana"], default="slsqp")
    p.add_argument("--out", required=True, metavar="weights.json")
    data_args(p, "validation")
    p.set_defaults(func=_cmd_fit_weights)

    p = sub.add_parser("stack", parents=[common], help="fit a stacking meta-learner on validation data; write it to a directory")
    p.add_argument("--members", nargs="+", required=True, metavar="M")
    p.add_argument("--meta", choices=["logreg", "rf", "xgboost"], default="logreg")
    p.add_argument("--out", required=True, metavar="DIR")
    data_args(p, "validation")
    p.set_defaults(func=_cmd_stack)

    p = sub.add_parser("evaluate", parents=[common], help="members vs ensemble on a split (weights.json or a stack DIR)")
    p.add_argument("path", metavar="WEIGHTS_OR_DIR")
    data_args(p, "test")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("diversity", parents=[common], help="member accuracy, log loss and pairwise diversity")
    p.add_argument("--members", nargs="+", required=True, metavar="M")
    p.add_argument("--plot", metavar="FILE.png", help="draw the error-correlation heatmap and accuracies (matplotlib)")
    data_args(p, "validation")
    p.set_defaults(func=_cmd_diversity)
    for action in sub.choices.values():
        action.set_defaults(needs_tensorflow=True)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``ensemble`` command."""
    return run(lambda args: args.func(args), build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
