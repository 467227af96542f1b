"""aiortc's and aioice's internals are touched in the modules ``streamer.live.aiortc_hooks`` lists, and only
there (read from the source), and every such hook fits the installed releases."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import aioice
import aiortc

from streamer.live.aiortc_hooks import HOOK_MODULES, hooks_missing
from tests.conftest import REPO


def _private_names(package: str) -> set[str]:
    """The private attribute and method names a package's classes define (``__x`` as Python mangles it)."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None
    names: set[str] = set()
    for path in Path(spec.origin).parent.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r"self\.(_[A-Za-z]\w*)", text)) | set(re.findall(r"def (_[A-Za-z]\w*)", text))
        for cls in re.findall(r"^class (\w+)", text, re.MULTILINE):
            names |= {f"_{cls}__{n}" for n in re.findall(r"self\.__([A-Za-z]\w*)", text)}
    return {n for n in names if not n.endswith("__")}


def _uses(path: Path, names: set[str]) -> set[str]:
    """The names of ``names`` that ``path`` reaches on something other than its own object: as an attribute
    (``x._name``) or as a string (``getattr(x, "_name")``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr in names:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
            found.add(node.value)
    return found


def test_every_hook_fits_the_installed_aiortc() -> None:
    assert hooks_missing() == [], f"aiortc {aiortc.__version__}, aioice {aioice.__version__}: {hooks_missing()}"


def test_only_the_listed_modules_touch_aiortc_internals() -> None:
    names = _private_names("aiortc") | _private_names("aioice")
    allowed = {Path(m.__file__ or "").resolve() for m in HOOK_MODULES}
    uses = {
        path: found
        for path in sorted([*(REPO / "streamer").rglob("*.py"), *(REPO / "engines").rglob("*.py")])
        if (found := _uses(path, names))
    }
    wrong = sorted(
        f"{p.relative_to(REPO)}: {', '.join(sorted(n))}" for p, n in uses.items() if p.resolve() not in allowed
    )
    assert not wrong, (
        "aiortc/aioice internals used outside the modules streamer/live/aiortc_hooks.py lists (use the public "
        "API, or add a hook module that says why and which version it was checked against):\n" + "\n".join(wrong)
    )
    # The check can fail: it sees the hooks where they are.
    seen = {p.resolve(): n for p, n in uses.items()}
    assert "_send_keyframe" in seen[Path(HOOK_MODULES[3].__file__ or "").resolve()]
    assert {"_handle_rtcp_packet", "_handle_rtp_packet"} <= seen[Path(HOOK_MODULES[1].__file__ or "").resolve()]
