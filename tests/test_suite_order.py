"""The suite's file order (tests/conftest.py, ``WALL_S``): `make test` gives the longest files to its workers first."""

from __future__ import annotations

from tests.conftest import REPO, WALL_S


def test_every_file_the_order_names_exists() -> None:
    # A moved or renamed file would silently fall back to the end of the queue (and the tail of the suite).
    missing = [name for name in WALL_S if not (REPO / name).is_file()]
    assert not missing, f"tests/conftest.py WALL_S names files that are not there: {missing}"


def test_the_longest_files_come_first_and_each_file_keeps_its_order() -> None:
    from tests.conftest import pytest_collection_modifyitems

    class Item:
        def __init__(self, nodeid: str) -> None:
            self.nodeid = nodeid

    names = ["tests/a_test_short.py::t1", "tests/streamer/test_api.py::t1", "tests/a_test_short.py::t2"]
    names += ["tests/streamer/test_browser_operator.py::t1", "tests/streamer/test_api.py::t2"]
    items = [Item(n) for n in names]
    pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == [
        "tests/streamer/test_browser_operator.py::t1",
        "tests/streamer/test_api.py::t1",
        "tests/streamer/test_api.py::t2",
        "tests/a_test_short.py::t1",
        "tests/a_test_short.py::t2",
    ]
