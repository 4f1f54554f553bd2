"""Helpers shared by the ``zoo`` and ``ensemble`` packages (keras-zoo-ensemble's neutral layer).

``kze`` imports neither package, so both can use it without importing each
other: ``kze.files`` holds the one file digest, the one atomic write and the
one lock.
"""
