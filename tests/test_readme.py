"""The README opens with the two commands and its tables are generated, not typed."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_opens_with_setup_and_test_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```\n(.*?)```", readme, re.DOTALL).group(1).strip().splitlines()
    assert len(first_block) == 2
    assert "pip install" in first_block[0] and "scripts/demo.py" in first_block[0]
    assert "pytest" in first_block[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert first_block[1].split("ZOO_DATA_DIR=../shared/data ")[-1] in ci  # CI runs the README's test command


def test_readme_tables_match_the_registry_and_recorded_results():
    update = _load_script("update_readme")
    readme = (ROOT / "README.md").read_text()
    assert update.render(readme) == readme, "run python scripts/update_readme.py"
    for name in __import__("zoo").list_models():
        assert f"`{name}`" in readme
