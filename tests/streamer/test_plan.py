"""One control path (issue 17): a settings change is validated and its consent checked once, in the stream's
plan; concurrent changes never interleave; the stats show the plan's consent without reading the disk.

The live service runs with the passthrough processor (what is tested is the control path, not the faces);
the identities are really enrolled from the shared photos, once per module."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import re
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import engines.settings
import streamer.governance.consent
from engines.errors import InputError
from engines.settings import TargetRule
from streamer.config import InputSpec, ServeConfig
from streamer.governance.audit import audit_path
from streamer.governance.consent import ConsentRecord, enroll_with_consent, identity_dir, save_consent
from streamer.plan import Plan, PlanConflict, PlanSlot, StoreResolver, make_plan
from tests.live_helpers import live_server, wait_for


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory, faces: Path, models_dir: Path) -> Path:
    """A data directory with alice (consent on record) and bob (unverified) enrolled."""
    from engines.identity.store import IdentityStore

    data = tmp_path_factory.mktemp("plan-data")
    store = IdentityStore(data / "identities", models_dir)
    record = ConsentRecord.create("Alice Example", "Night Shift", valid_from="2020-01-01", valid_until="2099-12-31")
    enroll_with_consent(store, "alice", [faces / "s1.jpg"], record, allow_unverified=False)
    enroll_with_consent(store, "bob", [faces / "obama.jpg"], None, allow_unverified=True)
    return data


@pytest.fixture
def data(enrolled: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(enrolled, copy)
    return copy


def _config(data: Path, clips: Path, models_dir: Path) -> ServeConfig:
    return ServeConfig(
        port=0,
        data_dir=data,
        models_dir=models_dir,
        processor="passthrough",
        inputs=(InputSpec.parse(f"cam={clips / 'd3.mp4'}"),),
    )


def _count_calls(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    """Count every call of ``module.name``, wherever it was imported (each module's own reference patched)."""
    original = getattr(module, name)
    calls: list[int] = []
    lock = threading.Lock()

    def counted(*args: Any, **kwargs: Any) -> Any:
        with lock:
            calls.append(1)
        return original(*args, **kwargs)

    for loaded in list(sys.modules.values()):
        if getattr(loaded, name, None) is original:
            monkeypatch.setattr(loaded, name, counted)
    return calls


def test_a_patch_is_validated_once_and_its_consent_checked_once(
    data: Path, clips: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    validations = _count_calls(monkeypatch, engines.settings, "apply_patch")
    consent_checks = _count_calls(monkeypatch, streamer.governance.consent, "check_swap_allowed")

    async def scenario() -> None:
        async with live_server(_config(data, clips, models_dir)) as server, aiohttp.ClientSession() as http:
            assert await wait_for(lambda: server.service.streams.find("cam") is not None, 30)
            validations.clear()
            consent_checks.clear()
            async with http.patch(f"{server.url}/api/streams/cam", json={"identity": "alice"}) as r:
                assert r.status == 200, await r.text()
                body = await r.json()
            assert len(validations) == 1 and len(consent_checks) == 1, (validations, consent_checks)
            assert body["consent"]["identity"] == "alice" and body["stats"]["consent_status"] == "verified"
            # The same through the WebSocket's control message: the same one path.
            validations.clear()
            consent_checks.clear()
            async with http.ws_connect(f"{server.url}/ws") as ws:
                await ws.send_json({"type": "settings", "stream": "cam", "settings": {"identity": "bob"}, "id": 7})
                while True:
                    msg = json.loads((await ws.receive()).data)
                    if msg.get("id") == 7:
                        break
            assert msg["type"] != "error", msg
            assert len(validations) == 1 and len(consent_checks) == 1, (validations, consent_checks)
            # A change that keeps who is swapped in: validated once, no consent to check.
            validations.clear()
            consent_checks.clear()
            async with http.patch(f"{server.url}/api/streams/cam", json={"strength": 0.5}) as r:
                assert r.status == 200
            assert len(validations) == 1 and consent_checks == []
            # Stats pushes show the plan's consent: no consent read (nor check) per push.
            async with http.ws_connect(f"{server.url}/ws") as ws:
                seen = 0
                while seen < 3:
                    msg = json.loads((await ws.receive()).data)
                    if msg["type"] == "stats":
                        seen += 1
                        assert msg["streams"]["cam"]["consent"]["status"] == "unverified"
            assert consent_checks == [] and len(validations) == 1

    asyncio.run(scenario())


def test_stats_read_no_consent_from_disk(
    data: Path, clips: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream JSON (every stats push) shows the consent the plan carries; reading a record from disk
    there would be a blocking read on the event loop."""

    async def scenario() -> None:
        async with live_server(_config(data, clips, models_dir)) as server, aiohttp.ClientSession() as http:
            assert await wait_for(lambda: server.service.streams.find("cam") is not None, 30)
            async with http.patch(f"{server.url}/api/streams/cam", json={"identity": "alice"}) as r:
                assert r.status == 200
            reads = _count_calls(monkeypatch, streamer.governance.consent, "load_consent")
            for _ in range(5):
                async with http.get(f"{server.url}/api/streams/cam") as r:
                    assert (await r.json())["consent"]["status"] == "verified"
            assert reads == []

    asyncio.run(scenario())


def test_two_concurrent_patches_end_in_one_state_never_a_mix(
    data: Path, clips: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each PATCH sets an identity and a strength; both are planned at the same time from the same version
    (planning is held until both have read it), so one must be planned again on top of the other. The
    stream ends with one of the two, whole, and the audit log holds the swaps of both, in order."""
    import streamer.plan

    arrived = threading.Barrier(2, timeout=60)
    resolve_names = streamer.plan._resolve_names
    held_calls = itertools.count()

    def held(before: Any, after: Any, resolver: Any) -> None:
        # The first two plannings wait for each other: both have read the same version. Counted across
        # threads (the plan made again may run on any of the executor's threads); the timeout only ends a
        # test whose second change never comes, a busy machine must not fail it.
        if next(held_calls) < 2:
            arrived.wait()
        resolve_names(before, after, resolver)

    monkeypatch.setattr(streamer.plan, "_resolve_names", held)
    plans = _count_calls(monkeypatch, streamer.plan, "make_plan")
    a, b = {"identity": "alice", "strength": 0.3}, {"identity": "bob", "strength": 0.7}

    async def scenario() -> dict[str, Any]:
        async with live_server(_config(data, clips, models_dir)) as server, aiohttp.ClientSession() as http:
            assert await wait_for(lambda: server.service.streams.find("cam") is not None, 30)
            await asyncio.sleep(0.2)  # the stream's start-up consent re-check is done
            plans.clear()

            async def patch(body: dict[str, Any]) -> int:
                async with http.patch(f"{server.url}/api/streams/cam", json=body) as r:
                    return r.status

            assert await asyncio.gather(patch(a), patch(b)) == [200, 200]
            async with http.get(f"{server.url}/api/streams/cam") as r:
                return dict(await r.json())

    stream = asyncio.run(scenario())
    assert len(plans) == 3  # two plans made at once, one made again after the other was applied
    end = {"identity": stream["settings"]["identity"], "strength": stream["settings"]["strength"]}
    assert end in (a, b), end
    assert stream["consent"]["identity"] == end["identity"]
    first, last = ("alice", "bob") if end == b else ("bob", "alice")
    events = [json.loads(line) for line in audit_path(data).read_text().splitlines()]
    swaps = [(e["event"], e["data"]["identity"]) for e in events if e["event"].startswith("swap.")]
    assert swaps == [("swap.started", first), ("swap.stopped", first), ("swap.started", last)]


def test_a_plan_is_applied_only_on_the_version_it_was_made_from() -> None:
    slot = PlanSlot(Plan())
    one = Plan(version=1)
    slot.swap(one, expected_version=0)
    with pytest.raises(PlanConflict):
        slot.swap(Plan(version=1), expected_version=0)
    assert slot.value is one


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"identity": "carol"}, "unknown identity 'carol' (enrolled: alice, bob)"),
        ({"swap_model": "nosuch"}, "unknown swap model 'nosuch': the swap models are mesh"),
        ({"relight_target": {"mode": "hdri", "hdri": "stage"}}, "no HDRI named 'stage'"),
        ({"relight_target": {"mode": "hdri", "hdri": "../x"}}, "HDRI name"),
        ({"strength": 2}, "strength must be between 0 and 1"),
    ],
)
def test_every_name_is_checked_when_it_is_set(data: Path, patch: dict[str, Any], message: str) -> None:
    from engines.identity.store import IdentityStore
    from engines.swap.user_models import UserModelStore

    resolver = StoreResolver(
        data / "identities", data / "hdri", IdentityStore(data / "identities"), UserModelStore(data)
    )
    with pytest.raises(InputError, match=re.escape(message)):
        make_plan(Plan(), patch, resolver)


def test_an_hdri_that_is_there_is_accepted(data: Path) -> None:
    (data / "hdri").mkdir()
    (data / "hdri" / "stage.png").write_bytes(b"")  # the relighting reads (and judges) the image when it runs
    resolver = StoreResolver(data / "identities", data / "hdri", None, None)
    patch = {"relight_target": {"mode": "hdri", "hdri": "stage"}}
    assert make_plan(Plan(), patch, resolver).plan.settings.relight_target.hdri == "stage"


def test_renewed_consent_reaches_the_running_streams(
    data: Path, clips: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Consent recorded through the API updates the plans that show the identity (no disk read per push)."""
    expired = ConsentRecord.create("Bob", "Night Shift", valid_from="2020-01-01", valid_until="2020-12-31")

    async def scenario() -> None:
        async with live_server(_config(data, clips, models_dir)) as server, aiohttp.ClientSession() as http:
            assert await wait_for(lambda: server.service.streams.find("cam") is not None, 30)
            async with http.patch(f"{server.url}/api/streams/cam", json={"identity": "bob"}) as r:
                assert (await r.json())["consent"]["status"] == "unverified"
            body = expired.to_json()
            async with http.put(f"{server.url}/api/identities/bob/consent", json=body) as r:
                assert r.status == 200, await r.text()
            async with http.get(f"{server.url}/api/streams/cam") as r:
                stream = await r.json()
            # Recorded as expired: shown at once; the running swap is not cut off mid-take.
            assert stream["consent"]["status"] == "expired" and stream["settings"]["identity"] == "bob"

    asyncio.run(scenario())


def test_a_stream_that_starts_again_checks_its_consent_again(data: Path) -> None:
    from engines.identity.store import IdentityStore

    resolver = StoreResolver(data / "identities", None, IdentityStore(data / "identities"), None)
    alice = make_plan(Plan(), {"identity": "alice"}, resolver, "cam").plan
    assert alice.restarted().refused is None
    save_consent(
        identity_dir(data / "identities", "alice"),
        ConsentRecord.create("Alice Example", "Night Shift", valid_from="2020-01-01", valid_until="2020-12-31"),
    )
    assert alice.restarted().refused is None  # the record in memory still holds...
    checked = make_plan(alice.restarted(), {}, resolver, "cam", starting=True)  # ...the one on disk does not
    assert checked.plan.refused is not None and "expired on 2020-12-31" in checked.plan.refused
    assert checked.plan.run_settings.swap is False and checked.events == (
        ("swap.stopped", {"stream": "cam", "identity": "alice"}),
    )


def test_the_identities_target_rules_put_on_faces_are_checked_once_too(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A target rule swaps its identity onto a face as the stream's identity is: an unknown name is refused
    when it is set, a new one's consent is checked once (not per frame), one already running not again."""
    from engines.identity.store import IdentityStore

    resolver = StoreResolver(data / "identities", None, IdentityStore(data / "identities"), None)
    with pytest.raises(InputError, match=re.escape("unknown identity 'carol' (enrolled: alice, bob)")):
        make_plan(Plan(), {"targets": [{"match": "largest", "identity": "carol"}]}, resolver)
    checks = _count_calls(monkeypatch, streamer.governance.consent, "check_swap_allowed")
    alice = make_plan(Plan(), {"targets": [{"match": "largest", "identity": "alice"}]}, resolver, "cam").plan
    assert len(checks) == 1
    save_consent(
        identity_dir(data / "identities", "bob"),
        ConsentRecord.create("Bob", "Night Shift", valid_from="2020-01-01", valid_until="2020-12-31"),
    )
    both = {"targets": [{"match": "leftmost", "identity": "alice"}, {"match": "rightmost", "identity": "bob"}]}
    checks.clear()
    with pytest.raises(InputError, match="expired on 2020-12-31"):
        make_plan(alice, both, resolver, "cam")
    assert len(checks) == 1  # bob's, the new one; alice's rule was running already
    checks.clear()
    assert make_plan(alice, {"strength": 0.5}, resolver, "cam").plan.settings.targets == alice.settings.targets
    assert checks == []
    # A stream that starts again with a rule whose consent no longer holds runs without the swap.
    with_bob = dataclasses.replace(
        alice, settings=dataclasses.replace(alice.settings, targets=(TargetRule("any", "bob"),))
    )
    restarted = make_plan(with_bob, {}, resolver, "cam", starting=True).plan
    assert restarted.refused is not None and "expired on 2020-12-31" in restarted.refused
    assert restarted.run_settings.swap is False
