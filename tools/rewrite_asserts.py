"""Pytest's rewritten modules (the test modules, conftests and pytest plugins) cached ahead, on every core.

Why: pytest rewrites the asserts of every test module, conftest and pytest plugin module it imports and keeps
the result in its own cache file beside the bytecode. In a fresh clone the cache is empty, and `make test`'s
xdist workers all collect the whole suite at the same moment: each one rewrites the same ~120 test modules
and ~360 plugin modules and writes the same files. Measured on the 2-core VM (load ~11, one process
collecting the default suite): 13.9 s of CPU with no cache, 7.7 s with it — 3.5 s of it the plugins', 5.5 s
the test modules'; four workers pay it four times. `make bytecode` runs this once before the suite.

The files are pytest's own: its rewriter, its file name and format (a hash-checked pyc: pytest uses it only
when its source's hash matches, so a stale or foreign file is rewritten again as before). The rewriter is not
public API (pytest 9.x): where it has moved this says so and does nothing, and the workers rewrite as they did.

Usage: python tools/rewrite_asserts.py [TEST_DIR ...]   (default: tests)
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import time
import types
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def test_files(roots: list[Path]) -> list[Path]:
    """What pytest rewrites in the suite: its default ``python_files`` (test_*.py, *_test.py) and conftests."""
    found: list[Path] = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if path.name == "conftest.py" or path.name.startswith("test_") or path.name.endswith("_test.py"):
                found.append(path.resolve())  # pytest's code objects name the absolute path
    return found


def plugin_files() -> list[Path]:
    """Every module of the installed pytest plugins' packages (pytest marks those for rewriting)."""
    from _pytest.config import _iter_rewritable_modules

    found: list[Path] = []
    for dist in importlib.metadata.distributions():
        if not any(ep.group == "pytest11" for ep in dist.entry_points):
            continue
        files = [str(f) for f in dist.files or []]
        names = set(_iter_rewritable_modules(files))
        for f in files:
            parts = f[:-3].split("/") if f.endswith(".py") else []
            if not parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts and any(".".join(parts) == n or ".".join(parts).startswith(n + ".") for n in names):
                found.append(Path(str(dist.locate_file(f))))
    return [p.resolve() for p in found if p.is_file()]


def _rewrite(paths: list[Path]) -> int:
    """Rewrite and cache each of ``paths`` unless a current cache is there; the number written."""
    from _pytest.assertion import rewrite

    state = types.SimpleNamespace(trace=lambda _message: None)
    written = 0
    for path in paths:
        cache_dir = rewrite.get_cache_dir(path)
        pyc = cache_dir / (path.name[:-3] + rewrite.PYC_TAIL)
        if rewrite._read_pyc(path, pyc) is not None:
            continue
        if not rewrite.try_makedirs(cache_dir):
            continue
        try:
            source_hash, code = rewrite._rewrite_test(path, None)  # type: ignore[arg-type]
        except SyntaxError:
            continue  # pytest reports it when it imports the module
        written += bool(rewrite._write_pyc(state, code, source_hash, pyc))  # type: ignore[arg-type]
    return written


def main(argv: list[str]) -> int:
    start = time.monotonic()
    roots = [Path(a) for a in argv] or [Path("tests")]
    try:
        from _pytest.assertion import rewrite

        for name in ("get_cache_dir", "PYC_TAIL", "_read_pyc", "try_makedirs", "_rewrite_test", "_write_pyc"):
            getattr(rewrite, name)
        files = test_files(roots) + plugin_files()
    except (ImportError, AttributeError) as exc:
        print(
            f"rewrite_asserts: pytest's rewriter has moved ({exc}); the test workers rewrite their modules themselves"
        )
        return 0
    workers = max(1, os.cpu_count() or 1)
    chunks = [files[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        written = sum(pool.map(_rewrite, chunks))
    print(
        f"rewrite_asserts: {written} of {len(files)} modules rewritten for pytest in {time.monotonic() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
