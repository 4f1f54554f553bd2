"""The README's builder reference is generated from ``zoo.architectures`` and kept current.

``scripts/update_readme.py`` takes each hyperparameter's default from the
builder's signature and its meaning from the builder's numpydoc
``Parameters`` section; these tests fail when a builder gains, loses or
renames a hyperparameter, changes a default its docstring states, or when the
README's table was not regenerated.
"""

import ast
import importlib.util
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def update_readme():
    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "scripts" / "update_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def builders():
    from zoo.architectures import BUILDERS

    return BUILDERS


def test_readme_builder_table_is_current(update_readme):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- builder-table:start -->\n(.*?)\n<!-- builder-table:end -->", readme, re.DOTALL)
    assert found, "README.md lacks the builder-table markers"
    assert found.group(1) == update_readme.builder_table(), "run python scripts/update_readme.py"


def test_every_builder_hyperparameter_is_in_the_table(update_readme, builders):
    table = update_readme.builder_table()
    rows = [tuple(cell.strip(" `") for cell in line.strip("|").split("|")[:2]) for line in table.splitlines()[2:]]
    expected = [(b, p) for b, fn in builders.items() for p in inspect.signature(fn).parameters]
    assert rows == expected


def test_docstrings_document_exactly_the_signature_with_its_defaults(update_readme, builders):
    for builder, fn in builders.items():
        signature = inspect.signature(fn).parameters
        documented = update_readme._docstring_parameters(fn)
        assert list(documented) == list(signature), builder
        assert all(documented.values()), f"{builder}: a hyperparameter without a meaning"
        for match in re.finditer(r"^(\w+) : .*, default (.+)$", inspect.getdoc(fn), re.MULTILINE):
            name, default = match.groups()
            assert ast.literal_eval(default) == signature[name].default, f"{builder}.{name}: docstring says {default}"


def test_an_undocumented_hyperparameter_is_named(update_readme):
    def builder(units=16, dropout=0.5):
        """A builder whose docstring forgets ``dropout``.

        Parameters
        ----------
        units : int, default 16
            Width of the hidden layer,
            on two lines.

        Returns
        -------
        keras.Model
        """

    assert update_readme._docstring_parameters(builder) == {"units": "Width of the hidden layer, on two lines."}
    assert "dropout" not in update_readme._docstring_parameters(builder)
