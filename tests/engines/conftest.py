"""Fixtures shared by the engine tests (the shared material's fixtures live in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines.identity.store import IdentityStore
from tests.face_helpers import enrolled_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, faces: Path, models_dir: Path) -> IdentityStore:
    """s1.jpg enrolled, once per test module (a module needing other identities defines its own ``store``)."""
    return enrolled_store(tmp_path_factory.mktemp("ids") / "identities", faces, models_dir, ("s1.jpg",))
