"""Where stageswap keeps its data, and the one rule for names that become paths.

The data directory holds enrolled identities, recordings and logs. It is resolved like the models
directory: ``--data-dir DIR``, then ``$STAGESWAP_DATA``, then ``$XDG_DATA_HOME/stageswap`` (default
``~/.local/share/stageswap``). Every name a user or client gives (stream, identity) must match
``NAME_PATTERN`` before it touches the file system, and every path built from one is checked to stay
inside the data directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

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


def inside(base: Path, *parts: str) -> Path:
    """``base / parts`` resolved, guaranteed to stay inside ``base`` (raises InputError otherwise)."""
    root = base.resolve()
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        raise InputError(f"path {'/'.join(parts)!r} leaves the data directory")
    return path
