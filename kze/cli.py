"""Command-line plumbing shared by the ``zoo`` and ``ensemble`` commands.

Conventions: results go to stdout (a table, or JSON with ``--json``); progress
and messages go to stderr. Exit code 0 on success, 2 on a usage or input
error (one line, no traceback; ``--debug`` shows it), 1 on an unexpected error.
A command-line error (an unknown or mistyped flag, a bad value, a missing
argument) is reported by the sub-command it concerns, still in one line: the
message, "did you mean --xyz?" when a flag or choice is close to a known one
(``difflib``), then that sub-command's usage in parentheses (not a second line:
scripts and tests read one line). ``--version`` (before the sub-command)
prints the package version on stdout and exits 0.
Warnings are one line each; control characters in names and messages are
escaped, never written raw to the terminal; ``--quiet`` hides progress bars.

Decisions: this module imports neither ``zoo`` nor ``ensemble``, so both
commands share it without importing each other. An input error is recognised
by its base class (``ValueError``, ``KeyError``, ``FileNotFoundError``, ...,
and ``OSError`` about a path): the packages' own errors (a registry, checksum
or missing-data error) subclass those. What ``--quiet`` must also silence
beyond Keras (the zoo's download bars) is the caller's: :func:`run` takes a
``progress`` context-manager factory.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import json
import math
import os
import sys
import unicodedata
import warnings
from collections.abc import Callable, Sequence

from kze.data import load_npz
from kze.startup import quiet_tensorflow_start

__all__ = [
    "EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "Output", "Parser", "UsageError", "escape", "fraction", "load_npz",
    "make_parser", "package_version", "positive_int", "quiet_tensorflow_start", "run", "table",
]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with the command line or its inputs; reported in one line with exit code 2."""


# the zoo's RegistryError and ChecksumError are ValueErrors, its DataUnavailableError a FileNotFoundError
_INPUT_ERRORS = (UsageError, FileNotFoundError, IsADirectoryError, PermissionError, ValueError, KeyError)


# OS errors about a path the user gave (missing, a folder, too long, not writable): input errors, exit 2
_PATH_ERRNOS = {errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG, errno.EEXIST, errno.EACCES, errno.EPERM, errno.EROFS, errno.ELOOP}


def _is_input_error(exc: BaseException) -> bool:
    return isinstance(exc, _INPUT_ERRORS) or (isinstance(exc, OSError) and exc.errno in _PATH_ERRNOS)


class Parser(argparse.ArgumentParser):
    """``argparse`` with errors in one line: the message, a "did you mean" where one is close, the (sub)command's usage."""

    def error(self, message):  # argparse exits 2 itself; one line, as every input error
        usage = " ".join(self.format_usage().split()).removeprefix("usage: ")
        self.exit(EXIT_USAGE, f"{self.prog}: error: {escape(message)} (usage: {escape(usage)})\n")

    def parse_args(self, args=None, namespace=None):
        """Parse; an unrecognised flag is reported by the sub-command it was given to, with the closest of its flags."""
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = self._command_parser(namespace)
            parser.error(f"unrecognized arguments: {' '.join(extras)}{_did_you_mean_flag(parser, extras)}")
        return namespace

    def _command_parser(self, namespace) -> argparse.ArgumentParser:
        """The parser of the sub-command chosen in ``namespace`` (this one if none)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(namespace, action.dest, None) or "")
                if isinstance(chosen, Parser):
                    return chosen._command_parser(namespace)
        return self

    def _check_value(self, action, value):  # an invalid choice (a command, --split ...) names the closest one
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as exc:
            close = difflib.get_close_matches(str(value), [str(c) for c in action.choices or ()], n=1)
            if not close:
                raise
            raise argparse.ArgumentError(action, f"{exc.message}; did you mean {close[0]!r}?") from None


def _did_you_mean_flag(parser: argparse.ArgumentParser, extras: Sequence[str]) -> str:
    """``"; did you mean --xyz?"`` for the flags among ``extras`` close to one of ``parser``'s, else ``""``."""
    flags = [option for option in parser._option_string_actions if option.startswith("--")]
    close = []
    for extra in extras:
        if extra.startswith("--"):
            close += [c for c in difflib.get_close_matches(extra.split("=", 1)[0], flags, n=1) if c not in close]
    return f"; did you mean {', '.join(close)}?" if close else ""


class _Version(argparse.Action):
    """``--version``: print ``PROG VERSION`` on stdout and exit 0 (the version is read only when asked for)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help="print the version and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        sys.stdout.write(f"{parser.prog} {package_version()}\n")
        sys.stdout.flush()
        parser.exit(EXIT_OK)


def package_version() -> str:
    """The installed version of ``keras-zoo-ensemble``; ``"unknown"`` when it is not installed (a bare source tree)."""
    from importlib import metadata

    try:
        return metadata.version("keras-zoo-ensemble")
    except metadata.PackageNotFoundError:
        return "unknown"


def positive_int(text: str) -> int:
    """``argparse`` type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def fraction(text: str) -> float:
    """``argparse`` type: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def escape(text: str) -> str:
    """``text`` with control characters (including newlines and bidirectional overrides) as escapes.

    Names and messages may come from files and arguments; printed raw, escape
    sequences in them would drive the terminal.
    """
    if text.isprintable():
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch
        for ch in text
    )


def make_parser(prog: str, description: str) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction, argparse.ArgumentParser]:
    """A parser with sub-commands, and a parent parser holding the common flags."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    common.add_argument("--quiet", action="store_true", help="no progress output")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    parser = Parser(prog=prog, description=description)
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    return parser, sub, common


def run(main: Callable[[argparse.Namespace], object], parser: argparse.ArgumentParser, argv: Sequence[str] | None,
        *, progress: Callable[[bool], contextlib.AbstractContextManager] | None = None) -> int:
    """Parse ``argv``, call ``main(args)`` with stdout routed to stderr, print its result.

    Parameters
    ----------
    main : callable
        Takes the parsed arguments; returns None, a string (printed as is), an
        :class:`Output`, or a JSON-able object (printed with ``--json``).
    parser : argparse.ArgumentParser
        From :func:`make_parser`.
    argv : sequence of str or None
        The arguments (None: ``sys.argv[1:]``).
    progress : callable, optional
        ``progress(enabled)`` returns a context manager around ``main`` that
        shows the caller's own progress bars only if ``enabled`` (not ``--quiet``).

    Returns
    -------
    int
        The exit code: 0, 1 (an unexpected error) or 2 (a usage or input error).
    """
    progress_bars = progress or (lambda enabled: contextlib.nullcontext())
    args = parser.parse_args(argv)
    if not args.debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    stdout = sys.stdout
    prefix = f"{parser.prog} {args.command}"
    try:
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings(), progress_bars(not args.quiet):
            # Keras progress bars print to stdout; warnings become one line each
            warnings.showwarning = lambda message, category, *rest, **kw: print(
                f"{prefix}: warning: {_first_line(message) or category.__name__}", file=sys.stderr
            )
            if getattr(args, "needs_tensorflow", False) and not args.debug:
                quiet_tensorflow_start()
            result = main(args)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        kind = "error" if _is_input_error(exc) else "unexpected error"
        if isinstance(exc, KeyError) and exc.args:
            message = _first_line(exc.args[0])
        elif isinstance(exc, OSError) and exc.filename and exc.strerror:
            message = _first_line(f"{exc.filename}: {exc.strerror}")
        else:
            message = _first_line(exc) or type(exc).__name__
        hint = "" if kind == "error" else " (run with --debug for the traceback)"
        print(f"{prefix}: {kind}: {message}{hint}", file=sys.stderr)
        return EXIT_USAGE if kind == "error" else EXIT_FAILURE
    if result is None:
        return EXIT_OK
    if args.json:
        payload = _finite(result.data if isinstance(result, Output) else result)
        stdout.write(json.dumps(payload, indent=2, default=_json_default, allow_nan=False) + "\n")
    else:
        stdout.write("\n".join(escape(line) for line in str(result).rstrip("\n").split("\n")) + "\n")
    stdout.flush()
    return EXIT_OK


def _first_line(obj) -> str:
    """The first line of ``str(obj)``, its control characters escaped."""
    return escape(str(obj).strip().split("\n")[0])


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
    """Render a plain-text table, right-aligning numbers; control characters in cells are escaped."""
    headers = [escape(str(h)) for h in headers]
    cells = [[floats.format(c) if isinstance(c, float) else ("" if c is None else escape(str(c))) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) and bool(rows) for i in range(len(headers))]

    def fmt(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in cells)])


