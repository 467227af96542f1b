"""A DFM model has a person's identity trained in, so it needs consent like an enrolled identity (issue 9 for
issue 7's models): registering one without a consent record or ``--unverified`` is refused and nothing is
stored; an unverified DFM is marked in the CLI, ``GET /api/models``, the stream JSON and ``/ws`` stats, and
a recording's sidecar and C2PA manifest; expired or pending consent stops new swaps (PATCH, ``stageswap
process``, a stream starting again: the plan, ``streamer.plan``) but not a running one; ``models consent``
renews it; every step is in the audit log, whose chain verifies. The DFMs are generated with the real
signature (``tests.onnx_models``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engines.errors import InputError
from engines.settings import ProcessSettings
from engines.swap.user_models import UserModel, UserModelStore
from streamer.__main__ import main
from streamer.governance.audit import audit_path, swap_events, verify_log
from streamer.governance.consent import ConsentError, ConsentRecord, add_model, model_consent, model_consent_summary
from streamer.governance.consent import set_model_consent as set_consent
from streamer.governance.likeness import Likeness, swapped_in
from streamer.plan import Plan, StoreResolver, make_plan
from tests import onnx_models as om

PAINT_BGR = (0.2, 0.8, 0.3)
EXPIRED = ("--valid-from", "2020-01-01", "--valid-until", "2020-12-31")
RENEWED = ("--valid-from", "2020-01-01", "--valid-until", "2099-12-31")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("dfm-files")
    rng = np.random.default_rng(0)
    return {
        "dfm": om.dfm(d / "Jane_Doe.dfm", 128, gain=0.0, bias=PAINT_BGR, morph=False),
        "inswapper": om.inswapper(d / "insw.onnx", rng.standard_normal((512, 3)).astype(np.float32), om.random_emap()),
        "arcface": om.arcface(d / "arc.onnx"),
    }


def _record(until: str = "2099-12-31", start: str = "2020-01-01", who: str = "Jane Doe") -> ConsentRecord:
    return ConsentRecord.create(who, "Night Shift", valid_from=start, valid_until=until)


def _events(data: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in audit_path(data).read_text().splitlines()]


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], *messages: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("stageswap: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for message in messages:
        assert message in err, (message, err)


# ---- registering ------------------------------------------------------------------------------------------


def test_registering_a_dfm_needs_consent_or_the_flag(
    files: dict[str, Path], faces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    common = ["--data-dir", str(data)]
    add = ["models", "add", str(files["dfm"]), "--name", "jane", *common]
    # Neither consent nor the flag, declared or detected: refused with why and how, nothing stored.
    for extra in (["--kind", "dfm"], []):
        _refused(capsys, [*add, *extra], "DFM model 'jane'", "no consent record", "--consent-by", "--unverified")
    # Consent already expired, or half given: refused the same way.
    who = ["--consent-by", "Jane Doe"]
    _refused(capsys, [*add, *who, "--production", "Night Shift", *EXPIRED], "already expired on 2020-12-31")
    _refused(capsys, [*add, *who], "--production")
    # inswapper and arcface models are not identities: consent options do not apply to them.
    for key in ("inswapper", "arcface"):
        argv = ["models", "add", str(files[key]), *common]
        _refused(capsys, [*argv, "--unverified"], "has no identity of its own", "stageswap identities consent")
        _refused(capsys, [*argv, "--consent-by", "A", "--production", "P"], "has no identity of its own")
    assert not (data / "models.json").exists() and not list((data / "models").glob("*"))
    assert not audit_path(data).exists()

    # With consent: verified, the document only as its sha256.
    doc = faces / "t1.jpg"  # stands in for the signed release form
    consent = ["--consent-by", "Jane Doe", "--production", "Night Shift", "--valid-until", "2099-12-31"]
    assert main([*add, *consent, "--document", str(doc), "--licence", "Studio X contract"]) == 0
    out = capsys.readouterr().out
    assert "consent: verified (Jane Doe, Night Shift)" in out and "CONSENT" not in out
    entry = json.loads((data / "models.json").read_text())["models"][0]
    assert entry["consent"]["document_sha256"] == hashlib.sha256(doc.read_bytes()).hexdigest()
    assert entry["consent"]["document_name"] == "t1.jpg" and entry["consent"]["valid_until"] == "2099-12-31"
    # From a consent file, and explicitly unverified.
    consent_file = tmp_path / "kate.json"
    consent_file.write_text(json.dumps({"consent_by": "Kate", "production": "Pilot", "valid_from": "2020-01-01"}))
    dfm = str(files["dfm"])
    assert main(["models", "add", dfm, "--name", "kate", "--consent", str(consent_file), *common]) == 0
    assert "consent: verified (Kate, Pilot)" in capsys.readouterr().out
    assert main(["models", "add", dfm, "--name", "anon", "--unverified", *common]) == 0
    out = capsys.readouterr().out
    assert "consent: none recorded (unverified)" in out and "warning: CONSENT UNVERIFIED" in out
    assert main(["models", "add", str(files["inswapper"]), "--name", "swapper", *common]) == 0
    capsys.readouterr()

    # Listed with their status: the table, the warning under it, and --json.
    assert main(["models", "list", *common]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line[:1].isalpha()}
    assert rows["jane"].split()[4] == "verified" and rows["anon"].split()[4] == "unverified"
    assert rows["swapper"].split()[4] == "-"
    assert main(["models", "list", "--json", *common]) == 0
    listed = {m["name"]: m["consent"] for m in json.loads(capsys.readouterr().out)["user_models"]}
    assert listed["jane"]["status"] == "verified" and listed["jane"]["consent_by"] == "Jane Doe"
    assert listed["anon"] == {"status": "unverified", "verified": False} and listed["swapper"] is None

    # Shown, recorded (expired: the record is what was signed; the status says so), renewed.
    assert main(["models", "consent", "anon", *common]) == 0
    assert "anon: no consent recorded (unverified)" in capsys.readouterr().out
    assert main(["models", "consent", "jane", *common]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "verified" and shown["document_name"] == "t1.jpg"
    assert main(["models", "consent", "anon", "--consent-by", "Anon", "--production", "Pilot", *EXPIRED, *common]) == 0
    assert "recorded: expired" in capsys.readouterr().out
    assert main(["models", "list", *common]) == 0
    assert "CONSENT EXPIRED on 2020-12-31" in capsys.readouterr().out
    _refused(capsys, ["models", "consent", "swapper", "--consent-by", "A", "--production", "P", *common], "no identity")
    _refused(capsys, ["models", "consent", "ghost", *common], "no registered model named 'ghost'")
    # Registering again (--replace) without new consent keeps the record on file.
    assert main(["models", "add", dfm, "--name", "jane", "--replace", *common]) == 0
    assert "consent: verified (Jane Doe, Night Shift)" in capsys.readouterr().out
    assert main(["models", "remove", "anon", *common]) == 0
    capsys.readouterr()

    # The audit log: registrations with their consent summary, the consent recorded, the removal; it verifies.
    assert main(["audit", "verify", *common]) == 0
    events = _events(data)
    summary = [(e["event"], e["data"].get("model"), (e["data"].get("consent") or {}).get("status")) for e in events]
    assert summary == [
        ("model.registered", "jane", "verified"),
        ("model.registered", "kate", "verified"),
        ("model.registered", "anon", "unverified"),
        ("model.registered", "swapper", None),
        ("consent.recorded", "anon", "expired"),
        ("model.registered", "jane", "verified"),
        ("model.removed", "anon", None),
    ]
    assert events[0]["data"]["consent"]["document_sha256"] == entry["consent"]["document_sha256"]
    assert "consent" not in events[3]["data"] and all(e["data"]["operator"].startswith("cli:") for e in events)


def test_the_record_lives_in_the_model_entry(files: dict[str, Path], tmp_path: Path) -> None:
    store = UserModelStore(tmp_path / "data")
    # One record, compared with itself read back: a second _record() is stamped when it is made, and on a busy
    # machine the second had ticked over (recorded_at 23:47:19 against 23:47:20 in a 4-worker suite at load 15).
    record = _record()
    jane = add_model(store, files["dfm"], name="jane", consent=record)
    again = UserModelStore(tmp_path / "data").get("jane")  # another process reads it back
    assert again.consent == jane.consent and model_consent_summary(again)["status"] == "verified"
    assert model_consent(again) == record and UserModel.from_json(jane.to_json()).consent == jane.consent
    # Renewing changes the record, not the model: a running processor does not reload it.
    renewed = set_consent(store, "jane", _record(until="2100-01-01"))
    assert renewed == jane and model_consent(renewed).valid_until == dt.date(2100, 1, 1)  # type: ignore[union-attr]
    assert store.get("jane").consent == renewed.consent
    swapper = store.add(files["inswapper"], name="swapper")
    with pytest.raises(InputError, match="no identity of its own"):
        set_consent(store, "swapper", _record())
    with pytest.raises(ValueError, match="no consent record of its own"):
        UserModel.from_json({**swapper.to_json(), "consent": _record().to_json()})
    with pytest.raises(ConsentError, match="no consent record"):
        add_model(store, files["dfm"], name="other")
    with pytest.raises(ConsentError, match="already expired on 2020-12-31"):
        add_model(store, files["dfm"], name="other", consent=_record(until="2020-12-31"))
    # The store never judges consent itself: a record without governance's check is refused.
    with pytest.raises(InputError, match="needs the consent check"):
        store.add(files["dfm"], name="other", consent=_record().to_json())
    assert store.names() == ["jane", "swapper"]


# ---- what a swap puts on the actor -------------------------------------------------------------------------


def test_a_dfm_swap_is_the_models_likeness(files: dict[str, Path], tmp_path: Path) -> None:
    store = UserModelStore(tmp_path / "data")
    add_model(store, files["dfm"], name="jane", unverified=True)
    store.add(files["inswapper"], name="swapper")
    alice = ProcessSettings(identity="alice")
    assert swapped_in(alice, store) == Likeness("identity", "alice")
    assert swapped_in(ProcessSettings(identity="alice", swap_model="jane"), store) == Likeness("dfm", "jane")
    assert swapped_in(ProcessSettings(swap_model="jane"), store) == Likeness("dfm", "jane")
    assert swapped_in(ProcessSettings(identity="alice", swap_model="swapper"), store) == Likeness("identity", "alice")
    assert swapped_in(ProcessSettings(swap_model="swapper"), store) is None
    assert swapped_in(ProcessSettings(swap=False, swap_model="jane"), store) is None
    assert swapped_in({"swap": True, "swap_model": "jane", "identity": None}, store) == Likeness("dfm", "jane")
    assert swapped_in(ProcessSettings(swap_model="removed", identity="bob"), store) == Likeness("identity", "bob")
    jane = ProcessSettings(swap_model="jane")
    assert swap_events("cam", swapped_in(alice, store), swapped_in(jane, store)) == [
        ("swap.stopped", {"stream": "cam", "identity": "alice"}),
        ("swap.started", {"stream": "cam", "model": "jane"}),
    ]
    jane_bob = ProcessSettings(swap_model="jane", identity="bob")
    assert swap_events("cam", swapped_in(jane, store), swapped_in(jane_bob, store)) == []
    # The plan carries the DFM's consent; a new swap with expired or pending consent is refused.
    resolver = StoreResolver(tmp_path / "data" / "identities", None, None, store)
    plan = make_plan(Plan(), {"swap_model": "jane"}, resolver, "cam")
    assert plan.plan.consent_view() == {"model": "jane", "status": "unverified", "verified": False}
    assert plan.events == (("swap.started", {"stream": "cam", "model": "jane"}),)
    set_consent(store, "jane", _record(until="2020-12-31"))
    with pytest.raises(ConsentError, match=r"DFM model 'jane'.*expired on 2020-12-31.*stageswap models consent jane"):
        make_plan(Plan(), {"swap_model": "jane"}, resolver)
    set_consent(store, "jane", _record(start="2099-01-01", until="2099-12-31"))
    with pytest.raises(ConsentError, match=r"valid only from 2099-01-01.*stageswap models consent jane"):
        make_plan(Plan(), {"swap_model": "jane"}, resolver)


def test_the_plan_refuses_a_new_dfm_swap_but_does_not_cut_a_running_one(
    files: dict[str, Path], clips: Path, models_dir: Path, tmp_path: Path
) -> None:
    """Whatever starts a swap (the API, a stream starting again, a batch run), its plan checks the consent once;
    the FaceProcessor runs what the plan says (the model's face shows, or the swap is off)."""
    from engines.processor import FaceProcessor
    from tests.face_helpers import clip_frames

    store = UserModelStore(tmp_path / "data")
    add_model(store, files["dfm"], name="jane", consent=_record())
    resolver = StoreResolver(tmp_path / "data" / "identities", None, None, store)
    proc = FaceProcessor.from_models(models_dir, user_models=store)
    frames = clip_frames(clips / "d3.mp4", 4)
    jane = {"swap_model": "jane", "relight": False}
    paint = np.array(PAINT_BGR) * 255

    def painted(image: np.ndarray) -> float:
        """Share of the frame in the model's colour (its face)."""
        return float((np.abs(image.astype(np.float64) - paint).max(axis=2) < 20).mean())

    base = max(painted(image) for image, _ in frames)
    running = make_plan(Plan(), jane, resolver, "cam").plan  # consent holds: the swap starts
    assert painted(proc.process(*frames[0], running.run_settings).image) > base + 0.02
    set_consent(store, "jane", _record(until="2020-12-31"))  # it expires mid-take: a change keeping jane goes on
    kept = make_plan(running, {"strength": 0.9}, resolver, "cam")
    assert kept.events == () and kept.plan.swapping == Likeness("dfm", "jane")
    assert painted(proc.process(*frames[1], kept.plan.run_settings).image) > base + 0.02
    stopped = make_plan(kept.plan, {"swap_model": "mesh"}, resolver, "cam")  # the swap stops...
    assert stopped.events == (("swap.stopped", {"stream": "cam", "model": "jane"}),)
    with pytest.raises(ConsentError, match="expired on 2020-12-31"):  # ...and a new one is refused
        make_plan(stopped.plan, jane, resolver, "cam")
    # A stream starting again with jane: its record is read again (off the loop), the swap is refused and off,
    # the frames go on.
    refusal = make_plan(kept.plan.restarted(), {}, resolver, "cam", starting=True)
    assert refusal.events == (("swap.stopped", {"stream": "cam", "model": "jane"}),)
    restarted = refusal.plan
    assert restarted.refused is not None and "expired on 2020-12-31" in restarted.refused
    assert restarted.run_settings.swap is False and restarted.settings.swap_model == "jane"
    assert restarted.consent_view()["status"] == "expired"  # type: ignore[index]
    result = proc.process(*frames[2], restarted.run_settings)
    assert result.failed_stage is None and len(result.faces) == 1 and painted(result.image) < base + 0.002
    set_consent(store, "jane", _record())  # renewed (say from the command line): read again when it starts
    rechecked = make_plan(restarted, {}, resolver, "cam", starting=True)
    assert rechecked.plan.refused is None and rechecked.events == (
        ("swap.started", {"stream": "cam", "model": "jane"}),
    )
    assert painted(proc.process(*frames[3], rechecked.plan.run_settings).image) > base + 0.02


def test_process_refuses_a_dfm_whose_consent_expired_or_is_pending(
    files: dict[str, Path], clips: Path, models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import itertools

    from streamer.record.media import VideoReader
    from tests.face_helpers import write_video

    clip = tmp_path / "short.mp4"
    with VideoReader(clips / "d3.mp4") as reader:
        write_video(clip, ((f.image, f.pts) for f in itertools.islice(reader.frames(), 4)), reader.info)
    data = tmp_path / "data"
    common = ["--data-dir", str(data)]
    store = UserModelStore(data)
    add_model(store, files["dfm"], name="jane", consent=_record())
    consent = ["--consent-by", "Jane Doe", "--production", "Night Shift"]
    assert main(["models", "consent", "jane", *consent, *EXPIRED, *common]) == 0
    out = tmp_path / "out.mp4"
    run = ["process", "-i", str(clip), "-o", str(out), "--swap-model", "jane", "--no-progress", *common]
    run += ["--models", str(models_dir)]
    capsys.readouterr()
    _refused(capsys, run, "DFM model 'jane'", "expired on 2020-12-31", "stageswap models consent jane")
    assert not out.exists()
    assert main(["models", "consent", "jane", *consent, "--valid-from", "2099-01-01", *common]) == 0
    _refused(capsys, run, "valid only from 2099-01-01")
    assert main(["models", "consent", "jane", *consent, *RENEWED, *common]) == 0  # renewal unblocks
    assert main(run) == 0, capsys.readouterr().err
    assert "unverified" not in capsys.readouterr().out and out.is_file()
    add_model(store, files["dfm"], name="anon", unverified=True)
    assert main(["anon" if arg == "jane" else arg for arg in run]) == 0
    assert "warning: DFM model 'anon' is swapped in unverified (no consent record)" in capsys.readouterr().out


# ---- the live service ---------------------------------------------------------------------------------------


def test_live_service_marks_gates_and_records_a_dfm(
    files: dict[str, Path], clips: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import aiohttp

    from streamer.config import InputSpec, ServeConfig
    from streamer.governance.provenance import create_trial_credentials, verify_file
    from tests.live_helpers import live_server, wait_for

    data = tmp_path / "data"
    create_trial_credentials(data / "keys")
    store = UserModelStore(data)
    add_model(store, files["dfm"], name="jane", unverified=True)
    add_model(store, files["dfm"], name="kate", consent=_record(who="Kate"))
    set_consent(store, "kate", _record(until="2020-12-31", who="Kate"))
    token = "operator-secret-token"
    config = ServeConfig(
        port=0,
        token=token,
        data_dir=data,
        processor="passthrough",
        inputs=(InputSpec.parse(f"cam={clips / 'd3.mp4'}"),),
    )
    sidecar: dict[str, Any] = {}

    async def scenario() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with live_server(config) as server, aiohttp.ClientSession(headers=headers) as http:
            base = server.url

            async def patch(body: dict[str, Any]) -> tuple[int, Any]:
                async with http.patch(f"{base}/api/streams/cam", json=body) as r:
                    return r.status, await r.json()

            async def frames_later(count: int) -> None:
                stream = server.service.streams.get("cam")
                done = stream.stats.snapshot()["frames_processed"]
                assert await wait_for(lambda: stream.stats.snapshot()["frames_processed"] > done + count, 45)

            async with http.get(f"{base}/api/models") as r:
                models = {m["name"]: m for m in (await r.json())["models"]}
            assert models["jane"]["consent"] == {"status": "unverified", "verified": False}
            assert models["kate"]["consent"]["status"] == "expired" and models["mesh"]["consent"] is None
            assert await wait_for(lambda: server.service.streams.find("cam") is not None, 30)

            # An unverified DFM: allowed, marked in the response, the stream JSON and the /ws stats.
            status, body = await patch({"swap_model": "jane"})
            assert status == 200, body
            assert body["consent"] == {"model": "jane", "status": "unverified", "verified": False}
            assert body["stats"]["consent_status"] == "unverified"
            async with http.ws_connect(f"{base}/ws") as ws:
                for _ in range(10):
                    msg = json.loads((await ws.receive()).data)
                    if msg["type"] == "stats":
                        break
            assert msg["streams"]["cam"]["consent"]["model"] == "jane"
            assert msg["streams"]["cam"]["stats"]["consent_status"] == "unverified"

            # Expired consent: a new swap with kate is refused with the date and the fix; jane goes on.
            status, body = await patch({"swap_model": "kate"})
            assert status == 400
            assert "DFM model 'kate'" in body["error"] and "expired on 2020-12-31" in body["error"]
            assert "stageswap models consent kate" in body["error"]
            async with http.get(f"{base}/api/streams/cam") as r:
                assert (await r.json())["settings"]["swap_model"] == "jane"
            renew = ["models", "consent", "kate", "--consent-by", "Kate", "--production", "Night Shift", *RENEWED]
            assert await asyncio.to_thread(main, [*renew, "--data-dir", str(data)]) == 0

            # A recording during which jane (unverified) and then kate (renewed) are swapped in.
            async with http.post(f"{base}/api/streams/cam/recording", json={"container": "mp4"}) as r:
                assert r.status == 201, await r.text()
                rec_id = (await r.json())["id"]
            await frames_later(10)
            status, body = await patch({"swap_model": "kate"})
            assert status == 200 and body["consent"]["model"] == "kate" and body["consent"]["status"] == "verified"
            await frames_later(10)
            async with http.delete(f"{base}/api/streams/cam/recording") as r:
                assert r.status == 200, await r.text()
            sidecar.update(json.loads((data / "recordings" / f"{rec_id}.json").read_text()))
            status, body = await patch({"swap": False})
            assert status == 200 and body["consent"] is None and body["stats"]["consent_status"] is None

    asyncio.run(scenario())
    capsys.readouterr()

    # The sidecar and the signed manifest: the DFMs as swapped-in likenesses, the unverified one marked.
    facts = sidecar["provenance"]["processed"]
    assert sidecar["consent_unverified"] is True and facts["consent_unverified"] is True
    assert facts["synthetic_faces"] is True
    assert [(u["name"], u["kind"], u["consent"]["status"]) for u in facts["identities"]] == [
        ("jane", "dfm", "unverified"),
        ("kate", "dfm", "verified"),
    ]
    assert facts["identities"][1]["consent"]["consent_by"] == "Kate"
    rec = data / "recordings" / sidecar["files"]["processed"]
    report = verify_file(rec, data / "keys" / "trust.pem")
    assert report.ok and report.facts == facts, report.summary()
    assert any("DFM model jane" in (a.get("description") or "") for a in report.actions)
    assert main(["verify", str(rec), "--data-dir", str(data), "--no-watermark"]) == 0
    out = capsys.readouterr().out
    assert "DFM model jane: consent unverified" in out and "DFM model kate: consent verified" in out

    # The audit log: every swap names the DFM, the renewal is there, and the chain verifies.
    assert verify_log(audit_path(data)).ok
    events = _events(data)
    swaps = [(e["event"], e["data"].get("model")) for e in events if e["event"].startswith(("swap.", "consent."))]
    assert swaps == [
        ("swap.started", "jane"),
        ("consent.recorded", "kate"),
        ("swap.stopped", "jane"),
        ("swap.started", "kate"),
        ("swap.stopped", "kate"),
    ]
    finished = next(e for e in events if e["event"] == "recording.finished")
    assert finished["data"]["identities"] == [
        {"name": "jane", "kind": "dfm", "consent": "unverified"},
        {"name": "kate", "kind": "dfm", "consent": "verified"},
    ]
