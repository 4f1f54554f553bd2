"""Starting TensorFlow quietly, for commands and worker processes (``zoo``, ``ensemble``, search workers)."""

from __future__ import annotations

import os
import sys

__all__ = ["quiet_tensorflow_start"]


def quiet_tensorflow_start() -> None:
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
