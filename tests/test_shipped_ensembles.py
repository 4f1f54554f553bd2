"""The shipped ensembles reproduce the README's search results offline (issue 10, section 5)."""

import json
from pathlib import Path

import pytest

from ensemble.cli import main as ensemble_main

ROOT = Path(__file__).resolve().parents[1]
RESULTS = json.loads((ROOT / "scripts" / "results" / "search_results.json").read_text())


@pytest.mark.parametrize("result", RESULTS["datasets"], ids=lambda r: r["dataset"])
def test_shipped_ensemble_reproduces_its_test_accuracy(result, data_dir, tmp_path, capsys):
    path = ROOT / result["ensemble"]
    code = ensemble_main(["evaluate", str(path), "--split", "test", "--json", "--quiet", "--cache", str(tmp_path / "cache")])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ensemble_scores"]["accuracy"] == pytest.approx(result["test_accuracy"], abs=1e-4)
    assert report["ensemble_scores"]["log_loss"] == pytest.approx(result["test_log_loss"], abs=1e-3)
    by_name = {m["name"]: m for m in report["members"]}
    for member in result["members"]:
        assert by_name[member["name"]]["weight"] == pytest.approx(member["weight"])
        assert by_name[member["name"]]["scores"]["accuracy"] == pytest.approx(member["test_accuracy"], abs=1e-4)
