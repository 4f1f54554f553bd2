"""Shared test setup: real data from $ZOO_DATA_DIR (default ../shared/data), quiet TensorFlow.

Relative ``$ZOO_DATA_DIR``/``$ZOO_CACHE_DIR`` values (the README's command uses
``ZOO_DATA_DIR=../shared/data``) are made absolute here, against the directory
pytest was started from, so subprocesses started elsewhere see the same folders.
"""

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if not os.environ.get("ZOO_DATA_DIR") and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["ZOO_DATA_DIR"] = str(ROOT.parent / "shared" / "data")
for _var in ("ZOO_DATA_DIR", "ZOO_CACHE_DIR"):
    if os.environ.get(_var):
        os.environ[_var] = str(Path(os.environ[_var]).expanduser().absolute())


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The read-only directory of official dataset files."""
    path = Path(os.environ.get("ZOO_DATA_DIR", ""))
    if not (path / "mnist").is_dir():
        pytest.fail(f"ZOO_DATA_DIR={path!s} does not hold the datasets; point it at ../shared/data")
    return path


@pytest.fixture
def http_mirror(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/'mirror'."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
