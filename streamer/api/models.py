"""Swap models over HTTP: what a stream can swap with, and the checks a ``swap_model`` setting needs.

- ``GET /api/models`` — ``{"models": [...]}``: the built-in ``mesh`` swap first, then every model registered
  with ``stageswap models add`` (``engines.swap.user_models``): name, kind (``mesh``, ``inswapper``, ``dfm``,
  ``arcface``), resolution, sha256, the declared licence and its flag (``research_only``, ``licence_flag``:
  ``"research-only"`` or ``"undeclared"``), so every control surface can warn before a restricted model is
  used on a production; for a DFM (an identity of its own) its ``consent`` summary (``status``: verified,
  unverified, pending, expired, as for identities; ``null`` for the other kinds). Models are registered from
  the command line only (they are files on the server). ``"training"``: the swap models being trained (or
  trained) on this server with ``stageswap train`` (``engines.train.workspace.list_trainings``): name, state
  (running, stopped, finished, interrupted), iteration, losses, iterations/s, ETA; a finished one is
  registered and listed with the models.

A ``swap_model`` change is checked when it is made (``streamer.plan.check_swap_model``): an unknown model, a
recogniser named as a swap model, or an inswapper-style swap to an identity without an embedding is a 400
with the fix, not frames passed through unprocessed.
``embed_enrolled`` gives a freshly enrolled identity its embeddings (``engines.identity.recognition``).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from engines.errors import StageswapError
from engines.swap.user_models import MESH
from streamer.governance.consent import model_consent_summary
from streamer.service import SERVICE, Service

log = logging.getLogger(__name__)

MESH_ENTRY: dict[str, Any] = {
    "name": MESH,
    "kind": "mesh",
    "builtin": True,
    "licence": "Apache-2.0",
    "research_only": False,
    "licence_flag": None,
    "consent": None,
    "description": "the built-in mesh swap of an enrolled identity (no learned weights)",
}


def models_summary(service: Service) -> list[dict[str, Any]]:
    """The built-in swap and every registered model, as ``GET /api/models`` lists them (blocking: file reads)."""
    return [
        MESH_ENTRY,
        *({**m.summary(), "consent": model_consent_summary(m), "builtin": False} for m in service.user_models().list()),
    ]


def embed_enrolled(service: Service, name: str, photos: list[bytes]) -> tuple[list[str], list[str]]:
    """(recognisers used, warnings) after enrolling ``name`` from ``photos`` (blocking). A recogniser that
    fails is a warning: the identity is enrolled and the mesh swap works without an embedding."""
    from engines.identity.recognition import embed_identity

    try:
        return embed_identity(service.user_models(), Path(service.identities().root), name, photos), []
    except StageswapError as exc:
        log.warning("identity %s: no embedding for inswapper-style models: %s", name, exc)
        return [], [f"no embedding for inswapper-style models: {exc}"]


def trainings_summary(service: Service) -> list[dict[str, Any]]:
    """The trainings in the data directory (``stageswap train``), newest first (blocking: file reads)."""
    from engines.train.workspace import list_trainings

    return list_trainings(service.user_models().data_dir)


async def models_list(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    models = await asyncio.to_thread(models_summary, service)
    return web.json_response({"models": models, "training": await asyncio.to_thread(trainings_summary, service)})


def register(app: web.Application) -> None:
    """Route group: the swap models."""
    app.router.add_get("/api/models", models_list)
