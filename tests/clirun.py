"""Run the ``zoo`` and ``ensemble`` commands for tests: in this process by default, in a fresh one when needed.

Each command is the real entry point (``zoo.cli.main`` / ``ensemble.cli.main``)
with its real parsing, error handling and output; running it in this process
saves a Python start and a TensorFlow import per call (seconds each), which
dominated the command-line tests. A fresh process is used when a test sets
environment variables or a working directory, asks for one (``fresh=True``:
what a process start itself does, such as not importing TensorFlow), or when
``ZOO_TEST_CLI_SUBPROCESS=1`` runs the whole suite the slow, fully isolated way.
"""

import contextlib
import importlib
import io
import os
import subprocess
import sys
import traceback


def run_command(package, *args, env=None, cwd=None, fresh=False, timeout=600):
    """``subprocess.CompletedProcess`` of ``python -m package *args`` (stdout, stderr as text, returncode)."""
    argv = [str(a) for a in args]
    if fresh or env or cwd is not None or os.environ.get("ZOO_TEST_CLI_SUBPROCESS") == "1":
        return subprocess.run([sys.executable, "-m", package, *argv], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                              env={**os.environ, **(env or {})}, check=False)
    main = importlib.import_module(f"{package}.cli").main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own exits (--help, usage errors)
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception:  # --debug lets the error through: what Python does with an uncaught one
            traceback.print_exc()
            code = 1
    return subprocess.CompletedProcess([package, *argv], code, out.getvalue(), err.getvalue())
