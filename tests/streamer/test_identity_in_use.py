"""Deleting an identity that a stream uses (issue 18).

It used to answer 200, then every frame failed ("no identity named ...") while the stream still said the
identity was swapped in; and a PATCH racing the DELETE kept the deleted identity (5 of 5). Now a DELETE of
an identity a stream has selected is refused (409) naming the streams, and one that races a PATCH selecting
it ends in a state that holds: either the PATCH won (the identity stays, the DELETE is refused) or the
DELETE won (the PATCH is refused as naming an unknown identity). Through the real server, with identities
really enrolled from the shared photos.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streamer.config import InputSpec, ServeConfig
from tests.live_helpers import LiveServer, live_server, wait_for


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory, faces: Path, models_dir: Path) -> Path:
    """A data directory with alice and bob enrolled (unverified: consent is not what is tested)."""
    from engines.identity.store import IdentityStore
    from streamer.governance.consent import enroll_with_consent

    data = tmp_path_factory.mktemp("in-use")
    store = IdentityStore(data / "identities", models_dir)
    enroll_with_consent(store, "alice", [faces / "s1.jpg"], None, allow_unverified=True)
    enroll_with_consent(store, "bob", [faces / "obama.jpg"], None, allow_unverified=True)
    return data


def _config(enrolled: Path, tmp_path: Path, clips: Path, models_dir: Path) -> ServeConfig:
    data = tmp_path / "data"
    shutil.copytree(enrolled, data)
    return ServeConfig(
        port=0,
        data_dir=data,
        models_dir=models_dir,
        processor="passthrough",
        inputs=(InputSpec.parse(f"cam={clips / 'd3.mp4'}"), InputSpec.parse(f"cam2={clips / 'd3.mp4'}")),
    )


async def _identities(srv: LiveServer, http: aiohttp.ClientSession) -> list[str]:
    async with http.get(f"{srv.url}/api/identities") as r:
        return sorted(i["name"] for i in (await r.json())["identities"])


async def _stream(srv: LiveServer, http: aiohttp.ClientSession, name: str = "cam") -> dict[str, Any]:
    async with http.get(f"{srv.url}/api/streams/{name}") as r:
        return dict(await r.json())


async def _started(srv: LiveServer) -> None:
    assert await wait_for(lambda: all(srv.service.streams.find(n) is not None for n in ("cam", "cam2")), 40)


def test_deleting_an_identity_a_stream_uses_is_refused_with_the_streams(
    enrolled: Path, tmp_path: Path, clips: Path, models_dir: Path
) -> None:
    async def scenario() -> None:
        async with live_server(_config(enrolled, tmp_path, clips, models_dir)) as srv, aiohttp.ClientSession() as http:
            await _started(srv)
            for stream, body in (("cam", {"identity": "alice"}), ("cam2", {"identity": "alice", "swap": False})):
                async with http.patch(f"{srv.url}/api/streams/{stream}", json=body) as r:
                    assert r.status == 200, await r.text()
            async with http.delete(f"{srv.url}/api/identities/alice") as r:
                reason = (await r.json())["error"]
                assert r.status == 409, reason
                assert "in use by streams cam, cam2" in reason, reason  # cam2 has it selected, swap off
            assert await _identities(srv, http) == ["alice", "bob"]
            assert (await _stream(srv, http))["settings"]["identity"] == "alice"
            # Once no stream names it, it goes.
            for stream in ("cam", "cam2"):
                async with http.patch(f"{srv.url}/api/streams/{stream}", json={"identity": "bob"}) as r:
                    assert r.status == 200, await r.text()
            async with http.delete(f"{srv.url}/api/identities/alice") as r:
                assert r.status == 200, await r.text()
            assert await _identities(srv, http) == ["bob"]
            # A name set with the swap off is looked up when the swap goes on (it may be gone by then).
            async with http.patch(f"{srv.url}/api/streams/cam", json={"identity": "alice", "swap": False}) as r:
                assert r.status == 200, await r.text()
            async with http.patch(f"{srv.url}/api/streams/cam", json={"swap": True}) as r:
                assert r.status == 400 and "unknown identity 'alice'" in (await r.json())["error"]
            assert (await _stream(srv, http))["settings"]["swap"] is False

    asyncio.run(scenario())


def test_a_patch_racing_the_delete_never_keeps_a_deleted_identity(
    enrolled: Path, tmp_path: Path, clips: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PATCH is planned (bob is there) and held until the DELETE has answered: the interleaving that
    kept a deleted identity every time. Five rounds, each with bob enrolled again."""
    import streamer.plan

    resolve_names = streamer.plan._resolve_names
    hold = threading.Event()
    deleted = threading.Event()

    def held(before: Any, after: Any, resolver: Any) -> None:
        resolve_names(before, after, resolver)  # bob is enrolled: the plan names him
        if hold.is_set():
            hold.clear()
            assert deleted.wait(20), "the DELETE never answered"

    monkeypatch.setattr(streamer.plan, "_resolve_names", held)

    async def scenario() -> None:
        async with live_server(_config(enrolled, tmp_path, clips, models_dir)) as srv, aiohttp.ClientSession() as http:
            await _started(srv)
            bob = srv.service.config.data_dir / "identities" / "bob"
            saved = tmp_path / "bob-saved"
            shutil.copytree(bob, saved)
            for round_ in range(5):
                async with http.patch(f"{srv.url}/api/streams/cam", json={"identity": "alice"}) as r:
                    assert r.status == 200, await r.text()
                if not bob.exists():
                    shutil.copytree(saved, bob)
                hold.set()
                deleted.clear()

                async def patch() -> tuple[int, str]:
                    async with http.patch(f"{srv.url}/api/streams/cam", json={"identity": "bob"}) as r:
                        return r.status, await r.text()

                async def delete() -> int:
                    await asyncio.sleep(0.2)  # the PATCH is being planned
                    async with http.delete(f"{srv.url}/api/identities/bob") as r:
                        deleted.set()
                        return r.status

                (patched, text), removed = await asyncio.gather(patch(), delete())
                identity = (await _stream(srv, http))["settings"]["identity"]
                enrolled_now = "bob" in await _identities(srv, http)
                outcome = (patched, removed, identity, enrolled_now)
                # Either the PATCH won (bob stays, the DELETE is refused) or the DELETE did (the PATCH is
                # refused: bob is not enrolled any more). Never both.
                assert outcome in ((200, 409, "bob", True), (400, 200, "alice", False)), (round_, outcome, text)
                if patched == 400:
                    assert "unknown identity 'bob'" in text, text

    asyncio.run(scenario())
