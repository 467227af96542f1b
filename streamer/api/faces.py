"""``POST /api/faces``: the faces in uploaded photos, so the page can let the operator pick one to enroll.

A group photo cannot be enrolled without saying whose face it is; the CLI takes ``--face N``, the page shows
each face found as a thumbnail and sends the one clicked as the enrollment's ``face`` (one choice per photo:
``"2,0"``). The body is the enrollment's multipart upload (``photo`` files; other fields are ignored). Answer:
``{"photos": [{"label", "width", "height", "faces": [{"index", "box": [x, y, w, h], "score", "thumbnail"}]}]}``,
faces largest first (``index`` is what ``face`` counts), boxes in the photo's own pixels, each thumbnail a
JPEG data URL of the face with a margin, 128 px high. Nothing is stored.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import cv2
import numpy as np
from aiohttp import web

from engines.errors import InputError
from engines.face.detect import Detection
from engines.identity.photos import Photo
from streamer.api.routes import check_photo_pixels, read_upload
from streamer.service import SERVICE

THUMBNAIL_PX = 128
MARGIN = 0.25
"""Of the face box's size, on every side: the thumbnail shows the head, not only the detector's box."""


def thumbnail(image: np.ndarray, box: np.ndarray, height: int = THUMBNAIL_PX) -> str:
    """A JPEG data URL of ``box`` (x1, y1, x2, y2) in ``image`` with a margin, ``height`` pixels high."""
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * MARGIN, (y2 - y1) * MARGIN
    h, w = image.shape[:2]
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    crop = image[top:bottom, left:right]
    if crop.size == 0:
        raise InputError("a face box lies outside its photo")
    scale = height / crop.shape[0]
    crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), height), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise InputError("could not make a thumbnail of a face")
    return "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii")


def describe(photo: Photo, faces: list[Detection]) -> dict[str, Any]:
    """One photo's entry in the answer (blocking: encodes thumbnails)."""
    to_original = 1.0 / photo.scale if photo.scale > 0 else 1.0
    width, height = photo.original_size
    listed = []
    for index, det in enumerate(faces):
        x1, y1, x2, y2 = (float(v) * to_original for v in det.box)
        box = [round(x1), round(y1), round(x2 - x1), round(y2 - y1)]
        listed.append(
            {"index": index, "box": box, "score": round(det.score, 3), "thumbnail": thumbnail(photo.image, det.box)}
        )
    return {"label": photo.label, "width": width, "height": height, "faces": listed}


async def faces_post(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    _fields, photos = await read_upload(request, service.config.upload_max_bytes)
    if not photos:
        raise InputError("send at least one photo file (field 'photo')")
    await asyncio.to_thread(check_photo_pixels, photos, service.config.upload_max_pixels)

    def find() -> list[dict[str, Any]]:
        return [describe(photo, faces) for photo, faces in service.identities().find_faces(photos)]

    return web.json_response({"photos": await asyncio.to_thread(find)})


def register(app: web.Application) -> None:
    app.router.add_post("/api/faces", faces_post)
