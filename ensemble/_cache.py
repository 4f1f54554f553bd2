"""Caching of member predictions with ``joblib.Memory``.

A cached prediction is keyed by the member's fingerprint, the prediction
method and ``joblib.hash(X)``; the member and ``X`` themselves are not hashed
by joblib.
"""

import os

import joblib
from sklearn.utils.validation import check_memory

from ensemble._keras import KerasMember


def check_cache(memory):
    """``joblib.Memory`` from ``memory`` (a Memory, a path or None); None if it caches nothing."""
    if memory is None:
        return None
    memory = check_memory(os.fspath(memory) if isinstance(memory, os.PathLike) else memory)
    return None if memory.location is None else memory


def fingerprint(member):
    """What a member's predictions depend on: weights for Keras, the fitted state otherwise."""
    if isinstance(member, KerasMember):
        return member.fingerprint()
    return joblib.hash(member)


def _member_output(fingerprint, method, x_hash, member, X):
    return getattr(member, method)(X)


def cached_output(memory, member, method, X, x_hash=None):
    """``getattr(member, method)(X)``, served from ``memory`` when it holds the result."""
    if memory is None:
        return getattr(member, method)(X)
    func = memory.cache(_member_output, ignore=["member", "X"], verbose=0)
    return func(fingerprint(member), method, x_hash or joblib.hash(X), member, X)
