"""streamer.live.memory: glibc's malloc arenas capped and freed memory trimmed (a long day of
viewers keeps RSS flat)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streamer.live import memory

GLIBC = memory._glibc() is not None


@pytest.mark.skipif(not GLIBC, reason="needs glibc (Linux)")
def test_arenas_capped_in_a_fresh_process_unless_the_operator_chose() -> None:
    code = "from streamer.live.memory import limit_malloc_arenas as f; print(f())"
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    env["MALLOC_ARENA_MAX"] = "4"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # the environment's value stands


@pytest.mark.skipif(not GLIBC, reason="needs glibc (Linux)")
def test_trim_releases_freed_heap_pages() -> None:
    code = """
import ctypes
from streamer.live.memory import trim
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD high: free() alone keeps the pages
libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD high: small blocks on the heap, not mmap
blocks = [libc.malloc(64 * 1024) for _ in range(512)]  # 32 MB on the heap
for b in blocks:
    libc.memset(ctypes.c_void_p(b), 1, 64 * 1024)
for b in blocks:
    libc.free(b)
def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])
before = rss()
released = trim()
print(released, before - rss())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    released, freed_kb = out.stdout.split()
    assert released == "True" and int(freed_kb) > 16 * 1024, out.stdout
