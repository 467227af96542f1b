"""Consent and audit through the live service: enrolling without consent is refused unless flagged, an
unverified identity is marked in the API responses and the stats, expired consent blocks a new swap,
and every step lands in the audit log, whose chain verifies."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streamer.config import InputSpec, ServeConfig
from streamer.governance.audit import audit_path, verify_log
from streamer.governance.consent import ConsentRecord, identity_dir, save_consent
from tests.live_helpers import live_server, wait_for

TOKEN = "operator-secret-token"


def _form(name: str, photo: Path, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("name", name)
    for key, value in fields.items():
        form.add_field(key, value)
    form.add_field("photo", photo.read_bytes(), filename=photo.name, content_type="image/jpeg")
    return form


async def _json(response: aiohttp.ClientResponse) -> Any:
    return json.loads(await response.text())


def test_consent_through_the_api(tmp_path: Path, clips: Path, faces: Path, models_dir: Path) -> None:
    data = tmp_path / "data"
    config = ServeConfig(
        port=0,
        token=TOKEN,
        data_dir=data,
        models_dir=models_dir,
        processor="passthrough",
        inputs=(InputSpec.parse(f"cam={clips / 'd3.mp4'}"),),
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def scenario() -> None:
        async with live_server(config) as server, aiohttp.ClientSession(headers=auth) as http:
            base = server.url
            # 1. no consent, no flag: refused with the reason, nothing enrolled
            async with http.post(f"{base}/api/identities", data=_form("bob", faces / "obama.jpg")) as r:
                assert r.status == 400, await r.text()
                assert "no consent record" in (await _json(r))["error"]
            async with http.get(f"{base}/api/identities") as r:
                assert (await _json(r))["identities"] == []
            # 2. explicitly unverified: enrolled, and marked
            form = _form("bob", faces / "obama.jpg", allow_unverified="true")
            async with http.post(f"{base}/api/identities", data=form) as r:
                assert r.status == 201, await r.text()
                assert (await _json(r))["consent"] == {"status": "unverified", "verified": False}
            # 3. with consent given as fields
            until = (dt.date.today() + dt.timedelta(days=30)).isoformat()
            form = _form(
                "alice",
                faces / "s1.jpg",
                consent_by="Alice Example",
                production="Night Shift",
                valid_until=until,
                document_sha256="ab" * 32,
            )
            async with http.post(f"{base}/api/identities", data=form) as r:
                assert r.status == 201, await r.text()
                body = await _json(r)
                assert body["consent"]["status"] == "verified" and body["consent"]["valid_until"] == until
            async with http.get(f"{base}/api/identities") as r:
                listed = {i["name"]: i["consent"]["status"] for i in (await _json(r))["identities"]}
            assert listed == {"alice": "verified", "bob": "unverified"}

            # 4. swapping in the unverified identity: allowed, marked in the response and in the stats
            assert await wait_for(lambda: server.service.streams.find("cam") is not None, 30)
            async with http.patch(f"{base}/api/streams/cam", json={"identity": "bob"}) as r:
                assert r.status == 200, await r.text()
                stream = await _json(r)
            assert stream["consent"]["identity"] == "bob" and stream["consent"]["status"] == "unverified"
            assert stream["stats"]["consent_status"] == "unverified"
            async with http.ws_connect(f"{base}/ws") as ws:
                for _ in range(10):
                    msg = json.loads((await ws.receive()).data)
                    if msg["type"] == "stats":
                        break
                assert msg["streams"]["cam"]["consent"]["status"] == "unverified"
                assert msg["streams"]["cam"]["stats"]["consent_status"] == "unverified"

            # 5. alice's consent expires: a new swap with her is refused, the stream keeps bob
            expired = ConsentRecord.create(
                "Alice Example", "Night Shift", valid_from="2020-01-01", valid_until="2020-12-31"
            )
            save_consent(identity_dir(data / "identities", "alice"), expired)
            async with http.patch(f"{base}/api/streams/cam", json={"identity": "alice"}) as r:
                assert r.status == 400
                error = (await _json(r))["error"]
            assert "expired on 2020-12-31" in error and "stageswap identities consent alice" in error
            async with http.get(f"{base}/api/streams/cam") as r:
                assert (await _json(r))["settings"]["identity"] == "bob"

            # 6. renewed consent through the API: the swap starts
            renewed = {"consent_by": "Alice Example", "production": "Night Shift S2", "valid_from": "2020-01-01"}
            async with http.put(f"{base}/api/identities/alice/consent", json=renewed) as r:
                assert r.status == 200, await r.text()
                assert (await _json(r))["consent"]["status"] == "verified"
            async with http.put(f"{base}/api/identities/alice/consent", json={"consent_by": "x"}) as r:
                assert r.status == 400 and "production" in (await _json(r))["error"]
            async with http.put(f"{base}/api/identities/nobody/consent", json=renewed) as r:
                assert r.status == 404
            async with http.patch(f"{base}/api/streams/cam", json={"identity": "alice"}) as r:
                assert r.status == 200, await r.text()
                assert (await _json(r))["consent"]["status"] == "verified"
            async with http.patch(f"{base}/api/streams/cam", json={"swap": False}) as r:
                assert r.status == 200
                assert (await _json(r))["consent"] is None
            async with http.delete(f"{base}/api/identities/bob") as r:
                assert r.status == 200

    asyncio.run(scenario())

    log = audit_path(data)
    report = verify_log(log)
    assert report.ok, report
    events = [json.loads(line) for line in log.read_text().splitlines()]
    summary = [(e["event"], e["data"].get("identity"), e["data"].get("stream")) for e in events]
    assert summary == [
        ("identity.enrolled", "bob", None),
        ("identity.enrolled", "alice", None),
        ("swap.started", "bob", "cam"),
        ("consent.recorded", "alice", None),
        ("swap.stopped", "bob", "cam"),
        ("swap.started", "alice", "cam"),
        ("swap.stopped", "alice", "cam"),
        ("identity.removed", "bob", None),
    ]
    assert events[0]["data"]["consent"]["status"] == "unverified"
    assert all(e["data"]["operator"].startswith("tok-") for e in events)
    assert TOKEN not in log.read_text()


def test_serve_identity_photo_needs_consent_or_the_flag(tmp_path: Path, faces: Path, models_dir: Path) -> None:
    from streamer.__main__ import build_parser
    from streamer.commands.serve import build_config
    from streamer.governance.consent import ConsentError

    data = tmp_path / "data"
    base = ["serve", "--data-dir", str(data), "--models", str(models_dir), "--identity", str(faces / "s1.jpg")]
    try:
        build_config(build_parser().parse_args(base))
    except ConsentError as exc:
        assert "--unverified" in str(exc)
    else:
        raise AssertionError("an identity photo was enrolled without consent or --unverified")
    config = build_config(build_parser().parse_args([*base, "--unverified"]))
    assert config.initial_settings.identity == "s1"
    # the photo enrolled again keeps the consent the name has: here an expired one, so serve does not start
    expired = ConsentRecord.create("S One", "Pilot", valid_from="2020-01-01", valid_until="2020-12-31")
    save_consent(identity_dir(data / "identities", "s1"), expired)
    try:
        build_config(build_parser().parse_args(base))
    except ConsentError as exc:
        assert "expired on 2020-12-31" in str(exc)
    else:
        raise AssertionError("serve started swapping an identity whose consent expired")
    events = [json.loads(line) for line in audit_path(data).read_text().splitlines()]
    assert [e["event"] for e in events] == ["identity.enrolled"]  # the second enrollment was refused
    assert events[0]["data"]["consent"]["status"] == "unverified" and events[0]["data"]["operator"].startswith("cli:")


def test_a_new_swap_with_expired_consent_is_refused_wherever_it_starts(
    tmp_path: Path, clips: Path, faces: Path, models_dir: Path
) -> None:
    """A change to an identity whose consent expired is refused; a stream that starts again with it runs
    without the swap (the frames go on, marked refused) until its consent is renewed — one plan, checked once."""
    from engines.identity.store import IdentityStore
    from engines.processor import FaceProcessor
    from streamer.governance.consent import ConsentError, enroll_with_consent
    from streamer.plan import Plan, StoreResolver, make_plan
    from tests.face_helpers import clip_frames

    store = IdentityStore(tmp_path / "identities", models_dir)
    resolver = StoreResolver(store.root, None, store, None)
    enroll_with_consent(store, "s1", [faces / "s1.jpg"], None, allow_unverified=True)
    running = make_plan(Plan(), {"identity": "s1"}, resolver, "cam").plan
    expired = ConsentRecord.create("S One", "Pilot", valid_from="2020-01-01", valid_until="2020-12-31")
    save_consent(identity_dir(store.root, "s1"), expired)
    with pytest.raises(ConsentError, match="expired on 2020-12-31"):
        make_plan(Plan(), {"identity": "s1"}, resolver, "cam")
    proc = FaceProcessor.from_models(models_dir, identities=store)
    frames = clip_frames(clips / "d3.mp4", 2)
    refused = make_plan(running, {}, resolver, "cam", starting=True).plan  # the stream starts again
    assert refused.refused is not None and "expired on 2020-12-31" in refused.refused
    assert refused.consent_view()["status"] == "expired"  # type: ignore[index]
    result = proc.process(frames[0][0], frames[0][1], refused.run_settings)
    assert result.failed_stage is None and len(result.faces) == 1 and "swap" not in result.stage_ms  # not swapped
    renewed = ConsentRecord.create("S One", "Pilot", valid_from="2020-01-01", valid_until="2099-12-31")
    save_consent(identity_dir(store.root, "s1"), renewed)
    again = make_plan(refused, {}, resolver, "cam", starting=True)
    assert again.plan.refused is None and again.events == (("swap.started", {"stream": "cam", "identity": "s1"}),)
    result = proc.process(frames[1][0], frames[1][1], again.plan.run_settings)
    assert result.failed_stage is None and "swap" in result.stage_ms


def test_identities_cli_consent_and_audit(
    tmp_path: Path, faces: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from streamer.__main__ import main

    data = str(tmp_path / "data")
    common = ["--data-dir", data]
    photo = str(faces / "s1.jpg")
    assert main(["identities", "add", "s1", photo, *common, "--models", str(models_dir)]) == 2
    assert "no consent record" in capsys.readouterr().err
    doc = faces / "t1.jpg"  # stands in for the signed release form
    argv = ["identities", "add", "s1", photo, *common, "--models", str(models_dir), "--consent-by", "S One"]
    assert main([*argv, "--production", "Pilot", "--valid-until", "2099-12-31", "--document", str(doc)]) == 0
    assert "consent: verified (S One, Pilot)" in capsys.readouterr().out
    assert main(["identities", "list", *common]) == 0
    assert "verified" in capsys.readouterr().out.splitlines()[1]
    assert main(["identities", "consent", "s1", *common]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "verified" and shown["document_name"] == "t1.jpg" and len(shown["document_sha256"]) == 64
    renew = [
        "--consent-by",
        "S One",
        "--production",
        "Pilot",
        "--valid-from",
        "2020-01-01",
        "--valid-until",
        "2020-06-30",
    ]
    assert main(["identities", "consent", "s1", *common, *renew]) == 0
    assert "recorded: expired" in capsys.readouterr().out
    assert main(["identities", "list", "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out)[0]["consent"]["status"] == "expired"
    assert main(["identities", "consent", "ghost", *common, *renew]) == 2
    assert main(["identities", "remove", "s1", *common]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", *common]) == 0
    events = [json.loads(line) for line in audit_path(Path(data)).read_text().splitlines()]
    assert [e["event"] for e in events] == ["identity.enrolled", "consent.recorded", "identity.removed"]
    assert events[0]["data"]["consent"]["status"] == "verified" and events[1]["data"]["consent"]["status"] == "expired"


def test_process_refuses_an_identity_whose_consent_expired(
    tmp_path: Path, clips: Path, faces: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from engines.identity.store import IdentityStore
    from streamer.__main__ import main
    from streamer.governance.consent import enroll_with_consent

    data = tmp_path / "data"
    store = IdentityStore(data / "identities", models_dir)
    expired = ConsentRecord.create("S One", "Pilot", valid_from="2020-01-01", valid_until="2020-12-31")
    enroll_with_consent(store, "s1", [faces / "s1.jpg"], None, allow_unverified=True)
    save_consent(identity_dir(store.root, "s1"), expired)
    argv = ["process", "-i", str(clips / "d3.mp4"), "-o", str(tmp_path / "o.mp4"), "--identity", "s1"]
    assert main([*argv, "--data-dir", str(data), "--models", str(models_dir), "--no-progress"]) == 2
    assert "expired on 2020-12-31" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()
