"""Keeping a long-running server's resident memory flat: glibc's malloc arenas and trimming.

glibc gives each thread that allocates its own malloc arena (up to 8 per core). The service runs many
short-lived and long-lived threads (a worker per stream, codec threads, aiortc's encoders, the recorder),
and memory freed in one arena is not reused by another: on the soak, every WHEP viewer that came and went
left about 0.5 MB of resident memory behind, 0.13 MB with two arenas (``benchmarks/soak.py``; README,
Security and limits). ``limit_malloc_arenas`` caps the arenas before the threads start, and
``trim`` hands freed heap pages back to the system after a session ends.

Both are no-ops where the C library is not glibc (macOS, musl) and when ``MALLOC_ARENA_MAX`` is already
set in the environment (the operator's choice wins).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from functools import cache

M_ARENA_MAX = -8
"""``mallopt`` parameter number of ``M_ARENA_MAX`` in glibc's malloc.h."""

DEFAULT_ARENAS = 2


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        gnu_get_libc_version = libc.gnu_get_libc_version  # glibc only (musl has no such function)
    except (OSError, AttributeError):
        return None
    gnu_get_libc_version.restype = ctypes.c_char_p
    return libc


def limit_malloc_arenas(arenas: int = DEFAULT_ARENAS) -> bool:
    """Cap glibc's malloc arenas (call before the service starts its threads). True when applied."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, int(arenas)))  # silent: it runs before logging is configured


def trim() -> bool:
    """Return freed heap memory to the system (``malloc_trim(0)``); True when some was released."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))
