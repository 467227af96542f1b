"""The live service: the aiohttp app factory and its lifecycle.

One asyncio event loop serves HTTP, WebSocket and every WebRTC peer (aiortc runs on asyncio); the
blocking work lives on threads: a worker per stream, an encoder per (stream, view, codec), a reader per
``--input``. ``create_app`` wires the route groups; ``serve`` runs the app until SIGINT/SIGTERM and then
shuts down in order: WebSocket clients and peers closed, then every stream's threads joined.

A new group of routes is one function ``register(app)`` added to ``ROUTE_GROUPS``; it reaches the shared
state through ``app[SERVICE]``. The static client UI is registered after all groups so it never shadows
an API route.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Callable, Sequence

from aiohttp import web

from engines.errors import InputError
from engines.light.hdri import hdri_folder
from engines.paths import inside
from streamer.api import auth, faces, openapi, origin, osc, ratelimit, stage
from streamer.api import models as api_models
from streamer.api import recording as api_recording
from streamer.api import routes as api
from streamer.api import targets as api_targets
from streamer.config import ServeConfig
from streamer.errors import NotFoundError
from streamer.live import sfu, webrtc
from streamer.live.worker import FrameProcessor, PassthroughProcessor, ProcessorFactory
from streamer.service import SERVICE, Service

log = logging.getLogger(__name__)

RouteGroup = Callable[[web.Application], None]
ROUTE_GROUPS: tuple[RouteGroup, ...] = (
    webrtc.register,
    api.register,
    api_models.register,
    faces.register,
    api_targets.register,
    api_recording.register,
    api_recording.register_signing,  # after the recordings: it hooks into them
    sfu.register,
    stage.register,
    openapi.register,
    osc.register,  # OSC messages run the WebSocket control handlers the groups above added
)
"""Each adds its routes (and startup/shutdown hooks) to the app; add a module's ``register`` here."""


def processor_factory(config: ServeConfig, service: Service) -> ProcessorFactory:
    """What each stream's worker thread calls once to build its own processor."""
    if config.processor == "passthrough":
        return PassthroughProcessor

    def make() -> FrameProcessor:
        from engines.compose.watermark import watermark_config
        from engines.processor import FaceProcessor, ProcessorConfig

        processor_config = ProcessorConfig(
            device=config.device,
            watermark=watermark_config(config.watermark_mark, enabled=config.watermark),
            hdri_dir=hdri_folder(config.data_dir),  # where relight_target.hdri names are (checked when set)
        )
        # One IdentityStore for the routes and every stream, so an enrolled identity is usable at once.
        return FaceProcessor.from_models(
            config.models_dir,
            processor_config,
            identities=service.identities(),
            user_models=service.user_models(),
            performers=service.performers(),
        )

    return make


def create_app(
    config: ServeConfig,
    route_groups: Sequence[RouteGroup] = ROUTE_GROUPS,
    make_processor: ProcessorFactory | None = None,
) -> web.Application:
    """The app: middlewares, every route group, the client UI, and the start/stop hooks.

    ``make_processor`` replaces the processor ``config.processor`` names (tests use it to inject faults)."""
    # The largest body any route accepts is an identity upload; the others check their own smaller limits.
    # Errors outermost (every refusal is JSON), then the rate limit (a flood is refused before anything,
    # token guessing included), then cross-origin requests (streamer.api.origin), then the tokens.
    tickets = auth.Tickets()
    app = web.Application(
        middlewares=[
            api.error_middleware,
            ratelimit.middleware(config, auth.PROTECTED_PREFIXES),
            origin.middleware(config),
            auth.middleware(config, tickets),
        ],
        client_max_size=config.upload_max_bytes,
    )
    app[auth.TICKETS] = tickets
    service = Service(config=config, make_processor=PassthroughProcessor)
    service.make_processor = make_processor or processor_factory(config, service)
    app[SERVICE] = service
    for register in route_groups:
        register(app)
    _register_client(app, config)
    app.on_startup.append(_start_inputs)
    app.on_cleanup.append(_close_streams)
    return app


def _register_client(app: web.Application, config: ServeConfig) -> None:
    async def client_file(request: web.Request) -> web.StreamResponse:
        rel = request.match_info.get("path") or "index.html"
        root = config.client_dir
        try:
            path = inside(root, rel)
            if path.is_dir():
                path = path / "index.html"
            found = path.is_file()
        except (InputError, ValueError, OSError) as exc:  # leaves the folder, a NUL byte, a name too long
            raise NotFoundError(f"no page {request.path[:200]!r}") from exc
        if not found:
            where = "" if root.is_dir() else f" (the client UI is not installed at {root})"
            raise NotFoundError(f"no page {request.path!r}{where}")
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", client_file)
    app.router.add_get(r"/{path:(?!api/|whip/|whep/|ws$|metrics$).+}", client_file)


async def _start_inputs(app: web.Application) -> None:
    service = app[SERVICE]
    await service.plan_first_settings()  # before any stream exists: every stream starts from a checked plan
    for spec in service.config.inputs:
        service.streams.create(spec.name, "input", spec)
        log.info("input %s: %s (%s)", spec.name, spec.source, spec.kind)


async def _close_streams(app: web.Application) -> None:
    service = app[SERVICE]
    streams = list(service.streams)
    for stream in streams:
        service.streams.detach(stream.name)
    await asyncio.gather(*(asyncio.to_thread(s.close) for s in streams))


def ssl_context(config: ServeConfig) -> ssl.SSLContext | None:
    if config.cert is None or config.key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(config.cert), str(config.key))
    except (ssl.SSLError, OSError) as exc:
        raise InputError(f"--cert {config.cert} / --key {config.key} cannot be loaded: {exc}") from exc
    return ctx


def make_runner(app: web.Application) -> web.AppRunner:
    """The app's runner with the connection limits of its config: a connection that has not sent a whole
    request head ``header_timeout_s`` after opening (or after its last response) is closed — aiohttp's
    keep-alive timer, which also runs while a head is still arriving, so a client trickling headers a byte
    a second holds nothing for longer than that."""
    config = app[SERVICE].config
    return web.AppRunner(app, handle_signals=False, access_log=None, keepalive_timeout=config.header_timeout_s)


async def serve(
    config: ServeConfig,
    on_ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the service until ``stop`` is set or the process gets SIGINT/SIGTERM; then shut down cleanly."""
    tls = ssl_context(config)
    app = create_app(config)
    runner = make_runner(app)
    await runner.setup()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            pass
    try:
        site = web.TCPSite(runner, config.host, config.port, ssl_context=tls)
        try:
            await site.start()
        except OSError as exc:
            raise InputError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from exc
        if on_ready is not None:
            on_ready(_bound_url(config, runner))
        await stop.wait()
        log.info("shutting down")
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await runner.cleanup()


def _bound_url(config: ServeConfig, runner: web.AppRunner) -> str:
    """The URL to open, with the real port when ``--port 0`` asked for any free one."""
    port = config.port
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            port = int(addr[1])
            break
    return config.url.rsplit(":", 1)[0] + f":{port}/"
