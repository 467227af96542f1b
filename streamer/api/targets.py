"""The performers target rules pick, over HTTP: ``GET /api/performers`` (``stageswap performers add`` enrolls them
from footage). The ``targets`` setting itself goes through PATCH/WS/OSC like every setting: its rules are checked by
``engines.settings``, the identities and performers they name and the identities' consent by ``streamer.plan``.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from streamer.service import SERVICE


async def performers_list(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    performers = await asyncio.to_thread(lambda: [p.summary() for p in service.performers().list()])
    return web.json_response({"performers": performers})


def register(app: web.Application) -> None:
    """Route group: the performers target rules pick."""
    app.router.add_get("/api/performers", performers_list)
