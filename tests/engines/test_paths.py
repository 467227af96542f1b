from __future__ import annotations

from pathlib import Path

import pytest

from engines.errors import InputError
from engines.paths import DATA_ENV, check_name, data_dir, inside


@pytest.mark.parametrize("name", ["a", "cam-1", "stage_a", "0" * 64])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "-x", "_x", "a/b", "..", "a b", "x" * 65, "é", "a\x00"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(InputError, match="invalid"):
        check_name(name)


def test_inside_refuses_traversal(tmp_path: Path) -> None:
    assert inside(tmp_path, "identities", "x") == (tmp_path / "identities" / "x").resolve()
    with pytest.raises(InputError):
        inside(tmp_path, "..", "etc")
    with pytest.raises(InputError):
        inside(tmp_path, "/etc/passwd")


def test_data_dir_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    assert data_dir(tmp_path / "x") == tmp_path / "x"
    assert data_dir() == tmp_path / "env"
    monkeypatch.delenv(DATA_ENV)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "stageswap"


def test_a_stamped_cache_reads_a_file_once_per_version(tmp_path: Path) -> None:
    from engines.paths import StampedCache

    path = tmp_path / "record.json"
    path.write_text("one")
    reads: list[str] = []

    def read() -> str:
        reads.append(path.read_text())
        return reads[-1]

    cache: StampedCache[str] = StampedCache()
    assert cache.get("r", path.stat(), read) == "one" and cache.get("r", path.stat(), read) == "one"
    assert reads == ["one"]
    path.write_text("two, longer")  # written again: another size (and mtime)
    assert cache.get("r", path.stat(), read) == "two, longer" and len(reads) == 2
    cache.pop("r")
    assert cache.get("r", path.stat(), read) == "two, longer" and len(reads) == 3
