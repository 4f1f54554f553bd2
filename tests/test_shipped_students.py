"""The shipped students reproduce their recorded accuracy offline, and name the shipped ensemble they were distilled from
(issue "Serve", item 2)."""

from pathlib import Path

import pytest

import zoo
from ensemble.persistence import MANIFEST, read_manifest
from kze.files import sha256_file

ROOT = Path(__file__).resolve().parents[1]
STUDENTS = [("fashion_mnist", "fashion_mnist_student"), ("imdb", "imdb_student")]


@pytest.mark.parametrize(("dataset", "name"), STUDENTS, ids=[d for d, _ in STUDENTS])
def test_shipped_student_reproduces_its_recorded_test_accuracy(dataset, name, data_dir):
    library = zoo.Registry(ROOT / "students" / dataset)
    entry = library.entry(name)  # zoo.load checks the weights' sha256 against this entry
    measured = zoo.evaluate(name, split="test", registry=library)
    assert measured["accuracy"] == pytest.approx(entry["metrics"]["test"]["accuracy"], abs=1e-4)
    assert measured["log_loss"] == pytest.approx(entry["metrics"]["test"]["log_loss"], abs=1e-3)


@pytest.mark.parametrize(("dataset", "name"), STUDENTS, ids=[d for d, _ in STUDENTS])
def test_shipped_student_names_the_shipped_ensemble_it_was_distilled_from(dataset, name):
    entry = zoo.Registry(ROOT / "students" / dataset).entry(name)
    _, folder = read_manifest(ROOT / "ensembles" / dataset)
    provenance = entry["distilled_from"]
    assert provenance["teacher_sha256"] == sha256_file(folder / MANIFEST)
    assert provenance["n_examples"] == entry["training"]["fit_examples"] + entry["training"]["early_stopping_examples"]
    assert entry["dataset"] == dataset and entry["training"]["command"].startswith("ensemble distill ensembles/")
