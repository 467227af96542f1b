"""Who target rules swap in, as governance sees it (issue 22): every rule's identity for consent, provenance
(process outputs, and recordings from their sidecar's settings dict) and the audit log's events."""

from __future__ import annotations

import dataclasses

from engines.settings import ProcessSettings, apply_patch
from streamer.governance.audit import SWAP_STARTED, SWAP_STOPPED, TARGETS_CHANGED, target_events
from streamer.governance.likeness import Likeness, swapped_in_all

RULES = [{"match": "lead", "identity": "ada"}, {"match": "id:3", "identity": None}, {"match": "any", "identity": "bo"}]


def test_every_rule_identity_is_swapped_in_from_settings_or_their_dict() -> None:
    settings = apply_patch(ProcessSettings(identity="cy"), {"targets": RULES})
    expected = (Likeness("identity", "ada"), Likeness("identity", "bo"))
    assert swapped_in_all(settings, None) == expected  # the stream's own identity is not on any face
    assert swapped_in_all(settings.to_dict(), None) == expected  # a recording's sidecar holds the dict form
    assert swapped_in_all(dataclasses.replace(settings, swap=False), None) == ()
    assert swapped_in_all(ProcessSettings(identity="cy"), None) == (Likeness("identity", "cy"),)  # no rules


def test_rule_changes_are_audited_with_the_identities_they_start_and_stop() -> None:
    before = apply_patch(ProcessSettings(), {"targets": RULES[:1]})
    after = apply_patch(ProcessSettings(), {"targets": [{"match": "lead", "identity": "bo"}]})
    events = target_events("cam", before, after)
    assert events[0] == (
        TARGETS_CHANGED,
        {
            "stream": "cam",
            "before": [{"match": "lead", "identity": "ada"}],
            "after": [{"match": "lead", "identity": "bo"}],
        },
    )
    assert events[1:] == [
        (SWAP_STOPPED, {"stream": "cam", "identity": "ada"}),
        (SWAP_STARTED, {"stream": "cam", "identity": "bo"}),
    ]
    assert target_events("cam", after, after) == []
    # the stream's own likeness has its events from swap_events: not twice
    same = target_events("cam", ProcessSettings(identity="bo"), after, (Likeness("identity", "bo"), None))
    assert [e[0] for e in same] == [TARGETS_CHANGED, SWAP_STARTED]
