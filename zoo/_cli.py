"""Shared command-line plumbing for the ``zoo`` and ``ensemble`` commands.

Conventions: results go to stdout (a table, or JSON with ``--json``); progress
and messages go to stderr. Exit code 0 on success, 2 on a usage or input
error (one line, no traceback; ``--debug`` shows it), 1 on an unexpected error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Sequence

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with the command line or its inputs; reported in one line with exit code 2."""


def _input_errors() -> tuple[type[BaseException], ...]:
    from zoo._files import ChecksumError, DataUnavailableError
    from zoo.registry import RegistryError

    return (UsageError, RegistryError, ChecksumError, DataUnavailableError, FileNotFoundError, IsADirectoryError, PermissionError, ValueError, KeyError)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2 itself; keep its one-line format
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def make_parser(prog: str, description: str) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction, argparse.ArgumentParser]:
    """A parser with sub-commands, and a parent parser holding the common flags."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    common.add_argument("--quiet", action="store_true", help="no progress output")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    parser = _Parser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    return parser, sub, common


def run(main: Callable[[argparse.Namespace], object], parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv``, call ``main(args)`` with stdout routed to stderr, print its result.

    ``main`` returns either a string (printed as is) or a JSON-able object
    with a ``"text"`` rendering under ``args.json`` == False.
    """
    args = parser.parse_args(argv)
    if not args.debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    stdout = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Keras progress bars print to stdout
            if getattr(args, "needs_tensorflow", False) and not args.debug:
                _quiet_tensorflow_start()
            result = main(args)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        kind = "error" if isinstance(exc, _input_errors()) else "unexpected error"
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, KeyError) and exc.args:
            message = str(exc.args[0])
        hint = "" if kind == "error" else " (run with --debug for the traceback)"
        print(f"{parser.prog} {args.command}: {kind}: {message}{hint}", file=sys.stderr)
        return EXIT_USAGE if kind == "error" else EXIT_FAILURE
    if result is None:
        return EXIT_OK
    if args.json:
        payload = _finite(result.data if isinstance(result, Output) else result)
        stdout.write(json.dumps(payload, indent=2, default=_json_default, allow_nan=False) + "\n")
    else:
        stdout.write(str(result).rstrip("\n") + "\n")
    stdout.flush()
    return EXIT_OK


def _quiet_tensorflow_start() -> None:
    """Import TensorFlow and initialise its devices with file descriptor 2 muted.

    TensorFlow's C++ runtime logs start-up notices (oneDNN, CUDA probing) to
    stderr before any log level applies; they are noise for a command-line user.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_logical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class Output:
    """A command's result: ``data`` for ``--json``, ``text`` for people."""

    def __init__(self, data, text: str):
        self.data, self.text = data, text

    def __str__(self) -> str:
        return self.text


def _finite(obj):
    """Replace NaN and infinities (not valid JSON) by None, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], floats: str = "{:.4f}") -> str:
    """Render a plain-text table, right-aligning numbers."""
    cells = [[floats.format(c) if isinstance(c, float) else ("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) and bool(rows) for i in range(len(headers))]

    def fmt(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in cells)])


def load_npz(path: str) -> tuple:
    """Read ``X`` and ``y`` from a user's ``.npz`` file (no pickle)."""
    import zipfile

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = {"X", "y"} - set(npz.files)
            if missing:
                raise UsageError(f"{path} lacks array(s) {', '.join(sorted(missing))}; expected arrays named X and y")
            X, y = npz["X"], npz["y"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(f"cannot read {path} as .npz: {exc}") from exc
    if len(X) != len(y):
        raise UsageError(f"{path}: X has {len(X)} rows but y has {len(y)}")
    if X.dtype.kind == "U":
        X = X.astype(object)
    return X, y
