"""Helpers shared by the ``zoo`` and ``ensemble`` packages (keras-zoo-ensemble's neutral layer).

``kze`` imports neither package, so both can use it without importing each
other, and each job has one helper: ``kze.files`` (the file digest, the atomic
write of a file or a folder, the lock, the cache folder), ``kze.data`` (the data
hash, reading a user's ``.npz``), ``kze.cli`` (command-line plumbing: one-line
errors, did-you-mean, ``--version``, JSON output) and ``kze.startup`` (a quiet
TensorFlow start).
"""
