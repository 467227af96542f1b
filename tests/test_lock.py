"""The locks (requirements/cpu.txt, cuda.txt) against pyproject.toml: every dependency pinned inside its range,
every pin hash-checked, the CPU lock on torch's CPU build and the CUDA lock on PyPI's. A dependency added to
pyproject.toml without `make lock` fails here, before a fresh machine installs something nobody tested."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO
from tools.lockcheck import Pin, differences, lock_problems, project_requirements, read_lock

LOCKS = {"cpu": REPO / "requirements" / "cpu.txt", "cuda": REPO / "requirements" / "cuda.txt"}


@pytest.mark.parametrize("kind", sorted(LOCKS))
def test_the_lock_pins_every_dependency_inside_its_range_with_hashes(kind: str) -> None:
    lock = read_lock(LOCKS[kind])
    reqs = project_requirements(REPO / "pyproject.toml")
    assert lock_problems(lock, reqs) == []
    for build in ("setuptools", "wheel", "pip"):  # the editable install is built from the lock, not fetched
        assert build in lock, f"{build} is not in the {kind} lock"
    torch = lock["torch"].version
    assert torch.startswith("2.13.0"), torch
    assert torch.endswith("+cpu") == (kind == "cpu"), torch
    nvidia = [name for name in lock if name.startswith("nvidia-")]
    assert bool(nvidia) == (kind == "cuda"), nvidia


def test_lockcheck_finds_a_dependency_missing_from_the_lock_or_outside_its_range(tmp_path: Path) -> None:
    lock_path = tmp_path / "lock.txt"
    lock_path.write_text(
        "numpy==1.20.0 \\\n    --hash=sha256:" + "0" * 64 + "\n    # via stageswap\nav==18.1.0\n    # via stageswap\n",
        encoding="utf-8",
    )
    lock = read_lock(lock_path)
    assert lock == {"numpy": Pin("numpy", "1.20.0", 1), "av": Pin("av", "18.1.0", 0)}
    problems = lock_problems(lock, project_requirements(REPO / "pyproject.toml"))
    assert any(p.startswith("numpy: the lock pins 1.20.0, outside") for p in problems), problems
    assert "av==18.1.0: no --hash" in problems
    assert any(p.startswith("aiortc: in pyproject.toml but not in the lock") for p in problems), problems
    assert differences(lock, {"numpy": "1.20.0", "av": "19.0"}) == [("av", "18.1.0", "19.0")]


def test_the_installer_is_pinned_by_version_and_hashes() -> None:
    """`make setup` installs uv from requirements/bootstrap.txt with --require-hashes (pip refuses a file whose
    hash is not listed there), then the lock with it, hashes required too."""
    pins = read_lock(REPO / "requirements" / "bootstrap.txt")
    assert list(pins) == ["uv"], pins
    assert pins["uv"].hashes >= 1 and pins["uv"].version.count(".") == 2, pins["uv"]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "--require-hashes --no-deps --target $(VENV)/bootstrap -r requirements/bootstrap.txt" in makefile
    assert "$(UV) pip install --quiet --python $(BIN)/python --require-hashes --no-deps" in makefile
