#!/usr/bin/env python
"""Measure the shipped search results: each dataset's studies, library and selected ensemble.

For each dataset with a saved ensemble ``ensembles/<dataset>`` (written by
``ensemble select`` / ``fit-weights``) and a model library
``libraries/<dataset>`` (written by ``zoo search``):

* per study of the library's journal: trials completed, pruned and failed,
  wall time (the sum of the finished trials' durations: the trials of these
  searches ran one after another on a 2-core machine), and the best trial's
  validation accuracy against the hand-made recipe of the same builder
  (the zoo entry ``<dataset>_<builder>``);
* the ensemble: members with their weights (fitted on the validation split),
  test accuracy and log loss, the gain over the best single candidate (the
  candidate with the best validation accuracy, measured on test), and the
  predict time on the test split of the ensemble against that candidate's.

Results go to ``scripts/results/search_results.json``; ``scripts/update_readme.py``
renders them in the README. Member predictions come from the prediction cache,
so a re-run takes about a minute per dataset, most of it the timing.

Usage: ``ZOO_DATA_DIR=../shared/data python scripts/search_results.py [fashion_mnist] [imdb] [--no-timing]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "scripts" / "results" / "search_results.json"


def studies(library: Path) -> list[dict]:
    """Per study of ``library``'s journal: trial counts, wall time, best trial."""
    journal = library / "search.journal"
    if not journal.is_file():
        return []
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    from optuna.trial import TrialState

    from zoo.library import entry_name

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(journal)))
    rows = []
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        count = {s: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        seconds = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials if t.datetime_complete and t.datetime_start)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        best = max(complete, key=lambda t: t.value) if complete else None
        rows.append({
            "study": summary.study_name,
            "complete": count[TrialState.COMPLETE],
            "pruned": count[TrialState.PRUNED],
            "failed": count[TrialState.FAIL],
            "wall_seconds": round(seconds, 1),
            "best_trial": None if best is None else best.number,
            "best_entry": None if best is None else entry_name(summary.study_name, best.number),
            "best_objective": None if best is None else best.value,
        })
    return rows


def hand_recipe(dataset: str, builder: str) -> dict | None:
    """The shipped zoo entry ``<dataset>_<builder>``: its name and validation accuracy."""
    import zoo

    name = f"{dataset}_{builder}"
    if name not in zoo.list_models():
        return None
    return {"name": name, "validation_accuracy": zoo.info(name)["metrics"]["validation"]["accuracy"]}


def evaluate(path: Path, split: str) -> dict:
    """``ensemble evaluate PATH --split SPLIT --json`` (cached member predictions)."""
    done = subprocess.run(
        [sys.executable, "-m", "ensemble", "evaluate", str(path), "--split", split, "--json", "--quiet"],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"ensemble evaluate {path} --split {split} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def predict_seconds(path: Path, dataset: str, member: str) -> dict:
    """Seconds to predict the test split: the ensemble (no cache) against one member."""
    import ensemble
    from zoo import datasets
    from kze.startup import quiet_tensorflow_start

    quiet_tensorflow_start()
    X, _ = datasets.load(dataset, "test")
    model = ensemble.load(path).set_params(memory=None)
    single = model.named_estimators_[member]
    model.predict_proba(X[:64])  # builds the predict functions of every member
    single.predict_proba(X[:64])
    out = {}
    for label, fn in (("ensemble", model.predict_proba), ("best_member", single.predict_proba)):
        started = time.perf_counter()
        fn(X)
        out[label] = round(time.perf_counter() - started, 2)
    return out


def measure(dataset: str, timing: bool) -> dict:
    from ensemble.persistence import read_manifest

    path = ROOT / "ensembles" / dataset
    library = ROOT / "libraries" / dataset
    manifest, _ = read_manifest(path)
    metadata = manifest.get("metadata") or {}
    fitted = {m["name"]: m for m in metadata.get("members", [])}
    test = evaluate(path, "test")
    members = []
    for row in test["members"]:
        record = fitted.get(row["name"], {})
        members.append({
            "name": row["name"],
            "kind": row.get("kind"),
            "weight": row.get("weight"),
            "temperature": record.get("temperature"),
            "validation_accuracy": (record.get("validation") or {}).get("accuracy"),
            "test_accuracy": row["scores"]["accuracy"],
            "test_log_loss": row["scores"]["log_loss"],
        })
    candidates = metadata.get("members", [])  # every candidate, selected or not, with its validation scores
    best_name = max(candidates, key=lambda m: m["validation"]["accuracy"])["name"] if candidates else members[0]["name"]
    best = next((m for m in members if m["name"] == best_name), None) or _candidate(best_name, dataset, library)
    found = studies(library)
    validation = {m["name"]: m["validation_accuracy"] for m in members}
    for study in found:
        study["best_validation_accuracy"] = validation.get(study["best_entry"])
        builder = _builder(library, study["best_entry"])
        study["hand_recipe"] = hand_recipe(dataset, builder) if builder else None
    result = {
        "dataset": dataset,
        "ensemble": str(path.relative_to(ROOT)),
        "label": test["ensemble"],
        "studies": found,
        "members": members,
        "best_candidate": best["name"],
        "test_accuracy": test["ensemble_scores"]["accuracy"],
        "test_log_loss": test["ensemble_scores"]["log_loss"],
        "gain_points": round(100 * (test["ensemble_scores"]["accuracy"] - best["test_accuracy"]), 2),
    }
    if timing and best["name"] in {m["name"] for m in members}:
        result["predict_seconds"] = predict_seconds(path, dataset, best["name"])
    return result


def _candidate(name: str, dataset: str, library: Path) -> dict:
    """Test scores of a candidate the selection left out (a zoo or library model)."""
    import numpy as np
    from sklearn.metrics import accuracy_score, log_loss

    import zoo
    from zoo import datasets

    registry = None if name in zoo.list_models() else library
    X, y = datasets.load(dataset, "test")
    proba = zoo.predict_proba(zoo.load(name, registry=registry), X)
    labels = np.arange(proba.shape[1])
    return {"name": name, "test_accuracy": float(accuracy_score(y, proba.argmax(1))), "test_log_loss": float(log_loss(y, proba, labels=labels))}


def _builder(library: Path, entry: str | None) -> str | None:
    """The builder of library entry ``entry``."""
    if entry is None or not (library / "registry.yaml").is_file():
        return None
    from zoo.library import open_library

    registry = open_library(library)
    return registry.entry(entry)["builder"] if entry in registry else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="*", default=["fashion_mnist", "imdb"])
    parser.add_argument("--no-timing", action="store_true", help="skip the predict-time measurement")
    args = parser.parse_args()
    import keras
    import sklearn

    previous = json.loads(OUT.read_text()) if OUT.exists() else {"datasets": []}
    kept = [d for d in previous["datasets"] if d["dataset"] not in args.datasets]
    for d in kept:  # each dataset keeps the run that measured it (files written before this field: the file's run)
        d.setdefault("measured_by", {"command": previous.get("command"), "date": previous.get("date")})
    command = "python scripts/search_results.py " + " ".join(args.datasets)
    measured = [{**measure(ds, not args.no_timing), "measured_by": {"command": command, "date": dt.date.today().isoformat()}}
                for ds in args.datasets if (ROOT / "ensembles" / ds).is_dir()]
    results = {
        "command": command,
        "date": dt.date.today().isoformat(),
        "versions": f"keras {keras.__version__}, scikit-learn {sklearn.__version__}",
        "datasets": sorted(kept + measured, key=lambda d: d["dataset"]),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(OUT)
    for d in measured:
        print(f"{d['dataset']}: {d['label']} test {d['test_accuracy']:.2%} (log loss {d['test_log_loss']:.4f}), "
              f"best candidate {d['best_candidate']} -> gain {d['gain_points']:+.2f} pts; predict {d.get('predict_seconds')}")
        for s in d["studies"]:
            print(f"  study {s['study']}: {s['complete']} complete, {s['pruned']} pruned, {s['failed']} failed, {s['wall_seconds'] / 60:.0f} min")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
