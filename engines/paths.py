"""Where stageswap keeps its data, the one rule for names that become paths, and the one way a file is written.

The data directory holds enrolled identities, recordings and logs. It is resolved like the models
directory: ``--data-dir DIR``, then ``$STAGESWAP_DATA``, then ``$XDG_DATA_HOME/stageswap`` (default
``~/.local/share/stageswap``). Every name a user or client gives (stream, identity) must match
``NAME_PATTERN`` before it touches the file system, and every path built from one is checked to stay
inside the data directory. Every file that must never be seen half-written (indexes, records, manifests,
keys, stats) is written by ``write_atomic``.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

from engines.errors import InputError

DATA_ENV = "STAGESWAP_DATA"
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
"""Stream and identity names: lower-case letters, digits, '_' and '-', 1 to 64 characters."""


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "stageswap"


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a valid stream/identity name, else raise InputError saying why."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InputError(
            f"invalid {what} {name!r}: use 1-64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"
        )
    return name


def record_folders(root: Path) -> list[Path]:
    """A store's record folders, by name: the visible sub-folders of ``root`` (none when it does not exist yet).
    Hidden ones are a writer's work in progress (``replacing``) or the system's, never a record."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def inside(base: Path, *parts: str) -> Path:
    """``base / parts`` resolved, guaranteed to stay inside ``base`` (raises InputError otherwise)."""
    root = base.resolve()
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        raise InputError(f"path {'/'.join(parts)!r} leaves the data directory")
    return path


@contextlib.contextmanager
def replacing(path: Path, mode: int | None = None, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path in ``path``'s folder to write by any means (an exporter, numpy, a stream); when the
    block ends without an exception it is given ``mode`` (if set) and renamed over ``path`` — a reader sees
    the old file or the new one, never part of one. On an exception it is removed and the error goes on.
    ``suffix`` ends the temporary name (some writers pick a format by it)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes | str, mode: int | None = None, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` through ``replacing``: flushed to disk first unless ``fsync`` is False.
    The temporary file is readable by its owner only until it gets ``mode``. Raises OSError (the temporary
    file removed); callers say what could not be written."""
    payload = data.encode() if isinstance(data, str) else data
    with replacing(path, mode) as tmp, tmp.open("wb") as fh:
        fh.write(payload)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    return path


T = TypeVar("T")


class StampedCache(Generic[T]):
    """What a store read from a file, kept while the file is unchanged (its mtime, size and inode): each record
    is read once per version, and one written again (re-enrolled) is read again. Safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[tuple[int, int, int], T]] = {}

    def get(self, key: str, st: os.stat_result, read: Callable[[], T]) -> T:
        """The value for ``key`` whose file has the status ``st``: the kept one, or ``read()`` (and kept)."""
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            cached = self._items.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        value = read()
        with self._lock:
            self._items[key] = (stamp, value)
        return value

    def pop(self, key: str) -> None:
        """Forget ``key`` (its file was removed or replaced)."""
        with self._lock:
            self._items.pop(key, None)
