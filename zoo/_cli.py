"""The ``zoo`` command's plumbing: :mod:`kze.cli`, with the zoo's download progress bars under ``--quiet``.

Decisions: the parser, error reporting, tables and JSON output live in
:mod:`kze.cli`, shared with the ``ensemble`` command; this module re-exports
them under their old names and adds only what is the zoo's own: :func:`run`
also turns the zoo's download progress bars off with ``--quiet``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from kze.cli import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    Output,
    UsageError,
    escape,
    fraction,
    load_npz,
    make_parser,
    package_version,
    positive_int,
    quiet_tensorflow_start,
    table,
)
from kze.cli import run as _run

__all__ = [
    "EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "Output", "UsageError", "escape", "fraction", "load_npz", "make_parser",
    "package_version", "positive_int", "quiet_tensorflow_start", "run", "table",
]


def run(main: Callable[[argparse.Namespace], object], parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """:func:`kze.cli.run`, with the zoo's download progress bars shown only without ``--quiet``."""
    from zoo._files import progress_bars

    return _run(main, parser, argv, progress=progress_bars)
