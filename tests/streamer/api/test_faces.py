"""POST /api/faces (the faces of a group photo, as thumbnails to choose from) and an enrollment that names the
chosen face per photo, through the real server and the shared photos."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
from aiohttp import web

from streamer.api.server import create_app, make_runner
from streamer.config import ServeConfig


def _form(*photos: Path, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    for key, value in fields.items():
        form.add_field(key, value)
    for photo in photos:
        form.add_field("photo", photo.read_bytes(), filename=photo.name, content_type="image/jpeg")
    return form


def test_a_group_photo_lists_its_faces_and_enrolls_the_one_chosen(
    tmp_path: Path, faces: Path, models_dir: Path
) -> None:
    group, portrait = faces / "obama_and_biden.jpg", faces / "s1.jpg"

    async def scenario() -> dict[str, Any]:
        app = create_app(ServeConfig(data_dir=tmp_path, processor="passthrough", models_dir=models_dir))
        runner = make_runner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        out: dict[str, Any] = {}
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{base}/api/faces", data=_form(group, portrait)) as r:
                    out["faces"] = (r.status, await r.json())
                async with http.post(f"{base}/api/faces", data=_form(name="x")) as r:
                    out["no_photo"] = (r.status, await r.json())
                fields = {"name": "biden", "allow_unverified": "true"}
                async with http.post(f"{base}/api/identities", data=_form(group, **fields)) as r:
                    out["unchosen"] = (r.status, await r.json())
                async with http.post(f"{base}/api/identities", data=_form(group, portrait, face="1", **fields)) as r:
                    out["one_for_all"] = (r.status, await r.json())
                async with http.post(f"{base}/api/identities", data=_form(group, portrait, face="1,0", **fields)) as r:
                    out["per_photo"] = (r.status, await r.json())
                form = _form(group, face="1,0", replace="true", **fields)
                async with http.post(f"{base}/api/identities", data=form) as r:
                    out["too_many"] = (r.status, await r.json())
        finally:
            await runner.cleanup()
        return out

    out = asyncio.run(scenario())
    status, body = out["faces"]
    assert status == 200, body
    group_entry, portrait_entry = body["photos"]
    image = cv2.imread(str(group))
    assert (group_entry["width"], group_entry["height"]) == (image.shape[1], image.shape[0])
    assert len(group_entry["faces"]) == 3 and len(portrait_entry["faces"]) == 1
    areas = [f["box"][2] * f["box"][3] for f in group_entry["faces"]]
    assert areas == sorted(areas, reverse=True) and [f["index"] for f in group_entry["faces"]] == [0, 1, 2]
    for face in group_entry["faces"]:
        x, y, w, h = face["box"]
        assert x >= 0 and y >= 0 and x + w <= image.shape[1] and y + h <= image.shape[0] and w > 40
        jpeg = base64.b64decode(face["thumbnail"].removeprefix("data:image/jpeg;base64,"))
        thumb = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert thumb.shape[0] == 128 and 0.5 < thumb.shape[1] / 128 < 2  # a head, not a strip
        # The thumbnail is the face in its box: compared with the photo's own crop, shrunk alike.
        crop = image[y : y + h, x : x + w]
        inner = thumb[16:-16, round(thumb.shape[1] * 0.17) : -round(thumb.shape[1] * 0.17)]
        diff = np.abs(cv2.resize(crop, inner.shape[1::-1]).astype(int) - inner.astype(int)).mean()
        assert diff < 25, diff
    assert out["no_photo"][0] == 400 and "photo" in out["no_photo"][1]["error"]
    assert out["unchosen"][0] == 400 and "has 3 faces" in out["unchosen"][1]["error"]
    assert out["one_for_all"][0] == 400 and "no face #1" in out["one_for_all"][1]["error"]
    assert out["per_photo"][0] == 201, out["per_photo"]
    assert out["per_photo"][1]["name"] == "biden"
    assert out["too_many"][0] == 400 and "one face choice per photo" in out["too_many"][1]["error"]
