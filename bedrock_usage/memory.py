"""Giving freed memory back to the operating system.

A year of a region arrives as pages of up to 100,800 data points, which botocore parses
into Python objects (≈15 MB a page) before we keep them as arrays. glibc keeps the
freed pages of each thread's arena mapped, so four regions read at the same time would
leave their pages' peak resident for the rest of the run; trimming after each page keeps
the run's memory at what it holds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import cache


@cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        return None


def release_freed_memory() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def release_garbage() -> None:
    """Collect reference cycles, then give the freed memory back. A region's boto3 client
    and session form cycles that hold botocore's parsed service data (≈8 MB); left to
    Python's rare full collection they stay resident through the store and the rebuild.
    A full collection here takes ≈0.1 s."""
    gc.collect()
    release_freed_memory()
