from __future__ import annotations

import pytest

from engines.errors import InputError
from engines.settings import ProcessSettings, apply_patch


def test_patch_applies_and_returns_new_value() -> None:
    base = ProcessSettings()
    new = apply_patch(
        base, {"identity": "alice", "strength": 0.5, "relight_target": {"mode": "direction", "direction": [0, 0, 2]}}
    )
    assert base.identity is None and new.identity == "alice" and new.strength == 0.5
    assert new.relight_target.mode == "direction" and new.relight_target.direction == (0.0, 0.0, 1.0)


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"strength": 2}, "between 0 and 1"),
        ({"strength": "x"}, "number"),
        ({"swap": 1}, "true or false"),
        ({"nope": 1}, "unknown setting 'nope'"),
        ({"identity": "../etc"}, "invalid identity"),
        ({"relight_target": {"mode": "disco"}}, "must be one of"),
        ({"relight_target": {"mode": "sh"}}, "needs relight_target.sh"),
        ({"relight_target": {"direction": [0, 0, 0]}}, "zero vector"),
        ({"relight_target": {"colour": [1, 2]}}, "list of 3"),
        ([1, 2], "JSON object"),
        ({"morph": float("nan")}, "number"),
    ],
)
def test_bad_patches_are_refused_with_reason(patch: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        apply_patch(ProcessSettings(), patch)
