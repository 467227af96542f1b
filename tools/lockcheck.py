"""Compare what is installed with a lock file (requirements/cpu.txt or cuda.txt), and a lock with pyproject.

    python tools/lockcheck.py requirements/cpu.txt            # exit 1 and list every difference
    python tools/lockcheck.py requirements/cpu.txt --report   # list packages newer/older than the lock, exit 0

`make setup` runs the first form after installing, so a venv that does not hold exactly the locked versions
is reported at once; `make test-latest` runs the second to say which packages it upgraded. Only the standard
library and ``packaging`` (which pip vendors, and every venv made by ``make setup`` holds) are used.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


@dataclass(frozen=True)
class Pin:
    name: str
    """Canonical name (PEP 503)."""
    version: str
    hashes: int


def read_lock(path: Path) -> dict[str, Pin]:
    """The ``name==version`` pins of a pip-compile lock, with how many ``--hash`` lines each carries."""
    pins: dict[str, Pin] = {}
    current: str | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            pins[current] = Pin(current, match.group(2), 0)
        elif current is not None and line.startswith("--hash="):
            pin = pins[current]
            pins[current] = Pin(pin.name, pin.version, pin.hashes + line.count("--hash=sha256:"))
        else:
            current = None  # a comment or a blank line ends a pin's hashes
    return pins


def installed() -> dict[str, str]:
    """Canonical name → version of every distribution in this interpreter's environment."""
    return {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}


def project_requirements(pyproject: Path, extras: tuple[str, ...] = ("dev",)) -> list[Requirement]:
    """The project's dependencies and the named extras' (pyproject.toml, [project])."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    reqs = [Requirement(r) for r in project.get("dependencies", [])]
    for extra in extras:
        reqs += [Requirement(r) for r in project.get("optional-dependencies", {}).get(extra, [])]
    return reqs


def lock_problems(lock: dict[str, Pin], reqs: list[Requirement]) -> list[str]:
    """What makes a lock stale or unsafe against the project's ranges: a dependency it does not pin, a pin
    outside the range, a pin without hashes."""
    problems = []
    for req in reqs:
        pin = lock.get(canonicalize_name(req.name))
        if pin is None:
            problems.append(f"{req.name}: in pyproject.toml but not in the lock")
        elif not req.specifier.contains(Version(pin.version), prereleases=True):
            problems.append(f"{req.name}: the lock pins {pin.version}, outside pyproject.toml's {req.specifier}")
    problems += [f"{p.name}=={p.version}: no --hash" for p in lock.values() if p.hashes == 0]
    return problems


def differences(lock: dict[str, Pin], have: dict[str, str]) -> list[tuple[str, str, str | None]]:
    """(name, locked, installed or None) for every locked package not installed at its locked version."""
    return [(name, pin.version, have.get(name)) for name, pin in sorted(lock.items()) if have.get(name) != pin.version]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lock", type=Path)
    parser.add_argument("--report", action="store_true", help="list what differs from the lock, exit 0")
    parser.add_argument("--pyproject", type=Path, default=Path(__file__).resolve().parent.parent / "pyproject.toml")
    args = parser.parse_args(argv)
    lock = read_lock(args.lock)
    diffs = differences(lock, installed())
    if args.report:
        if not diffs:
            print(f"lockcheck: every package is at the version {args.lock} pins")
        for name, locked, have in diffs:
            if have is None:
                print(f"  {name}: locked {locked}, not installed")
            else:
                direction = "upgraded" if Version(have) > Version(locked) else "downgraded"
                print(f"  {name}: {direction} {locked} -> {have}")
        moved = sum(1 for _, locked, have in diffs if have is not None and Version(have) > Version(locked))
        print(f"lockcheck: {moved} package(s) newer than {args.lock} pins")
        return 0
    problems = lock_problems(lock, project_requirements(args.pyproject))
    problems += [f"{n}: locked {v}, installed {h or 'nothing'}" for n, v, h in diffs]
    for problem in problems:
        print(f"lockcheck: {problem}", file=sys.stderr)
    if problems:
        print(f"lockcheck: this environment does not match {args.lock} (make lock, then make setup)", file=sys.stderr)
        return 1
    print(f"lockcheck: {len(lock)} packages installed exactly as {args.lock} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
