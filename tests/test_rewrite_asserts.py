"""tools/rewrite_asserts.py: `make bytecode` caches pytest's rewritten test modules ahead of the workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_the_cache_it_writes_is_the_one_pytest_reads_and_a_stale_one_is_replaced(tmp_path: Path) -> None:
    from _pytest.assertion import rewrite

    tests = tmp_path / "tests"
    tests.mkdir()
    module = tests / "test_sample.py"
    module.write_text("def test_sample():\n    x = 2\n    assert x == 3\n")
    (tests / "helper.py").write_text("X = 1\n")  # not a test module: pytest leaves it alone, and so does the tool
    tool = [sys.executable, str(REPO / "tools" / "rewrite_asserts.py"), str(tests)]
    subprocess.run(tool, check=True, capture_output=True)
    pyc = rewrite.get_cache_dir(module) / ("test_sample" + rewrite.PYC_TAIL)
    cached = rewrite._read_pyc(module, pyc)
    assert cached is not None and cached == rewrite._rewrite_test(module, None)[1]  # type: ignore[arg-type]
    assert not list((tests / "__pycache__").glob("helper*"))

    # pytest runs the cached module: the rewritten assert explains itself.
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "assert 2 == 3" in run.stdout, run.stdout

    # An edited module's cache no longer matches its source: the tool writes it again.
    module.write_text("def test_sample():\n    assert 1 == 1\n")
    assert rewrite._read_pyc(module, pyc) is None
    out = subprocess.run(tool, check=True, capture_output=True, text=True).stdout
    assert rewrite._read_pyc(module, pyc) == rewrite._rewrite_test(module, None)[1]  # type: ignore[arg-type]
    assert "rewritten for pytest" in out
