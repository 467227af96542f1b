"""Per-stream state: the ring, the worker, the fan-out, the plan and the stats of one named stream.

A stream exists while something feeds it or watches it: a WHIP publisher, an ``--input`` source, or WHEP
viewers waiting for the publisher to come back (they keep the last frame and resume when it does). It is
created by the first publisher (or at start for ``--input``) and removed, threads joined, when the last
of them is gone. ``StreamRegistry`` enforces the stream limit (one processing thread per core by default).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import numpy as np

from engines.errors import InputError
from engines.paths import check_name
from engines.settings import ProcessSettings
from streamer.config import InputSpec, ServeConfig
from streamer.errors import CapacityError, ConflictError, NotFoundError
from streamer.governance.consent import ConsentRecord
from streamer.governance.likeness import Likeness
from streamer.live.audio import AudioChunk
from streamer.live.decode_backlog import DecodeBacklog
from streamer.live.fanout import VIEWS, EncoderSettings, OutputFanout, View
from streamer.live.health import stream_health
from streamer.live.metrics import StreamStats
from streamer.live.ndi import NdiReader, NdiSender, RateEstimator
from streamer.live.ring import FrameMeta, FrameRing
from streamer.live.ring_choice import make_ring
from streamer.live.sources import SourceReader
from streamer.live.worker import ProcessorFactory, Worker
from streamer.plan import Plan, PlanConflict, PlanSlot

log = logging.getLogger(__name__)

StreamKind = Literal["whip", "input"]
REMEMBERED_STREAMS = 256
StatusProvider = Callable[[str], Any]
"""Adds one key to the stream JSON: called with the stream's name, returns JSON-ready data (or None).
Other parts of the service register theirs in ``StreamRegistry.status_providers`` (e.g. ``recording``)."""


class Stream:
    """One named stream. Created and removed by ``StreamRegistry``; ``close`` joins its threads."""

    def __init__(
        self,
        name: str,
        kind: StreamKind,
        config: ServeConfig,
        make_processor: ProcessorFactory,
        input_spec: InputSpec | None = None,
        ring: FrameRing | None = None,
        status_providers: Mapping[str, StatusProvider] | None = None,
        plan: Plan | None = None,
        settings_providers: Mapping[str, StatusProvider] | None = None,
    ) -> None:
        self.name = check_name(name, "stream name")
        self.kind: StreamKind = kind
        self.config = config
        self.created_s = time.monotonic()
        self.ring: FrameRing = ring or make_ring(config.ring_device or config.device)
        """Where ingest leaves frames for the worker: on the GPU with ``--device cuda`` (``make_ring``)."""
        self._plan = PlanSlot(plan if plan is not None else Plan(config.initial_settings))
        self._apply_lock = threading.Lock()
        self.stats = StreamStats(window_s=config.stats_window_s)
        self.fanout = OutputFanout(
            name,
            EncoderSettings(
                bitrate=config.video_bitrate, keyframe_interval_s=config.keyframe_interval_s, badge=config.badge
            ),
        )
        slot = self._plan  # the worker reads the plan through this, never through the stream
        self.worker = Worker(
            name,
            self.ring,
            make_processor,
            lambda: slot.value.run_settings,
            self.fanout,
            self.stats,
            max_fps=config.max_process_fps,
        )
        self.publisher: str | None = None
        """Session id of the WHIP publisher feeding the stream, if any."""
        self.viewers: set[str] = set()
        """Session ids of the WHEP viewers."""
        self.source: SourceReader | NdiReader | None = None
        if input_spec is not None and input_spec.kind == "ndi":
            self.source = NdiReader(input_spec, self.ingest, config.ndi_extra_ips)
        elif input_spec is not None:
            self.source = SourceReader(input_spec, self.ingest, self.ingest_audio)
        self.ndi: dict[View, NdiSender] = {}
        """The views published over NDI now (``settings.ndi``), by view."""
        self.ndi_error: str | None = None
        self.rate = RateEstimator()
        """The camera's nominal frame rate, from every ingested frame's media time (NDI output states it)."""
        self._outputs_lock = threading.Lock()
        self.ingest_dropped = 0
        """Frames dropped at ingest because a newer one had already arrived (see ``webrtc._drain``)."""
        self.decode_backlog: DecodeBacklog | None = None
        """The current publisher's bounded decoder queue (``streamer.live.decode_backlog``), if it has one."""
        self._decode_dropped_before = 0
        self.frames_refused = 0
        """Frames dropped at ingest for being over the size limit (``ServeConfig.frame_refusal``)."""
        self.refused_reason: str | None = None
        self._accepted_size: tuple[int, int] | None = None
        self.closed = False
        self._status_providers: Mapping[str, StatusProvider] = status_providers if status_providers is not None else {}
        self._settings_providers: Mapping[str, StatusProvider] = settings_providers or {}

    def start(self) -> None:
        try:
            self._sync_outputs(self.settings)
        except InputError as exc:  # the stream runs without its NDI output; its JSON says why
            self.ndi_error = str(exc)
            log.error("stream %s: NDI output off: %s", self.name, exc)
        self.worker.start()
        if self.source is not None:
            self.source.start()

    # -- the plan --------------------------------------------------------------------------------------
    @property
    def plan(self) -> Plan:
        """The stream's current plan (``streamer.plan``): its settings, who is swapped in, the consent."""
        return self._plan.value

    @property
    def settings(self) -> ProcessSettings:
        return self._plan.value.settings

    def settings_json(self) -> dict[str, Any]:
        """All of the stream's settings as JSON: the engines' and the service's own (e.g. ``sfu``, where it is sent)."""
        out = dataclasses.asdict(self.settings)
        for key, provide in self._settings_providers.items():
            out[key] = provide(self.name)
        return out

    def apply_plan(self, plan: Plan, expected_version: int) -> None:
        """Make ``plan`` current if the current plan is still ``expected_version`` (PlanConflict otherwise);
        the worker runs it from its next frame. Outputs it switches on (NDI) start first: one that cannot
        start refuses the whole change (InputError) and the current plan stays."""
        with self._apply_lock:
            if self._plan.value.version != expected_version:
                raise PlanConflict(f"plan version {self._plan.value.version}, expected {expected_version}")
            if not self.closed:
                self._sync_outputs(plan.settings)
            self._plan.swap(plan, expected_version)

    def _sync_outputs(self, settings: ProcessSettings) -> None:
        """What monitors see (``colour.monitor``), and the NDI senders ``settings`` asks for started, the others
        stopped (raises InputError before stopping anything when one cannot start: NDI not installed)."""
        colour = settings.colour
        if colour.monitor is not None and colour.output_space is not None:
            from engines.colour import monitor_view

            shown = monitor_view(colour.output_space, colour.monitor, colour.monitor_view, colour.config)
            self.fanout.monitor = shown.apply
        else:
            self.fanout.monitor = None
        with self._outputs_lock:
            wanted: set[View] = {view for view in VIEWS if getattr(settings.ndi, view)}
            for view in sorted(wanted - set(self.ndi)):
                self.ndi[view] = self._ndi_sender(view)
                log.info("stream %s: %s view published over NDI as %r", self.name, view, self.ndi[view].name)
            for view in sorted(set(self.ndi) - wanted):
                self.ndi.pop(view).stop()
                log.info("stream %s: %s view no longer published over NDI", self.name, view)

    def _ndi_sender(self, view: View) -> NdiSender:
        latest = self.fanout.tap(view)

        def untap() -> None:
            self.fanout.untap(view)

        try:
            rate = self.rate
            return NdiSender(self.name, view, latest, rate=lambda: rate.rate, on_close=untap).start()
        except BaseException:
            untap()
            raise

    # -- ingest ----------------------------------------------------------------------------------------
    def ingest(self, image: np.ndarray, meta: FrameMeta) -> None:
        """A decoded frame arrived (any thread; one producer at a time): newest frame wins in the ring.

        A frame over the size limit is dropped (counted in ``frames_refused``, logged once per size): WHIP
        publishers are closed before they get here (``webrtc``); this guards ``--input`` sources."""
        size = (int(image.shape[1]), int(image.shape[0]))
        if size != self._accepted_size:
            refusal = self.config.frame_refusal(*size)
            if refusal is not None:
                self.frames_refused += 1
                if self.refused_reason != refusal:
                    self.refused_reason = refusal
                    log.warning("stream %s: %s: frames dropped (--max-frame-size)", self.name, refusal)
                return
            self._accepted_size = size
        self.ring.put(image, meta)
        self.rate.add(meta.pts_s)
        self.stats.on_ingest(meta.arrived_s)

    def ingest_audio(self, chunk: AudioChunk) -> None:
        """Sound arrived (any thread): it goes out with the picture it was captured with, unless the stream's
        ``audio`` setting is off."""
        if self.settings.audio:
            self.fanout.audio.push(chunk)

    def set_decode_backlog(self, backlog: DecodeBacklog | None) -> None:
        """The publisher's decoder queue from now on (None: the publisher left); earlier drops stay counted."""
        if self.decode_backlog is not None:
            self._decode_dropped_before += self.decode_backlog.dropped
        self.decode_backlog = backlog

    @property
    def decode_dropped(self) -> int:
        """Encoded frames never decoded because the decoder fell behind (skipped to a keyframe)."""
        current = self.decode_backlog.dropped if self.decode_backlog is not None else 0
        return self._decode_dropped_before + current

    def drops(self) -> dict[str, int]:
        """Frames dropped on the live path, by where: the newest frame wins at every stage (README, Stream JSON)."""
        encoders = self.fanout.encoder_stats()
        return {
            "decode": self.decode_dropped,
            "ingest": self.ingest_dropped,
            "ring": self.ring.stats.dropped,
            "encoder": sum(int(e["frames_skipped"]) for e in encoders),
        }

    def ingest_skip(self) -> None:
        """A frame arrived but a newer one was already waiting: dropped before the ring (counted)."""
        self.ingest_dropped += 1
        self.stats.on_ingest()

    @property
    def watermark_id(self) -> int | None:
        """The invisible watermark id of this stream session's processed frames (None until its processor runs)."""
        return self.worker.watermark_id

    @property
    def live(self) -> bool:
        """Something feeds the stream now (a WHIP publisher, or an input source that has not ended)."""
        if self.source is not None:
            return not self.source.finished
        return self.publisher is not None

    @property
    def idle(self) -> bool:
        """Nothing feeds it and nobody watches it: it can be removed."""
        return self.kind == "whip" and self.publisher is None and not self.viewers

    def to_dict(self) -> dict[str, Any]:
        """The stream as ``GET /api/streams/{stream}`` shows it (documented in README, "Stream JSON")."""
        stats = self.stats.snapshot()
        drops = self.drops()
        stats["frames_dropped"] = drops["decode"] + drops["ingest"] + drops["ring"]
        stats["drops"] = drops
        stats["frames_refused"] = self.frames_refused
        stats["viewers"] = self.fanout.viewers()
        stats["encoders"] = self.fanout.encoder_stats()
        stats["audio"] = self.fanout.audio.stats()
        stats["runtime"] = self.worker.runtime
        stats["frame_path"] = self.worker.frame_path
        stats["processor_error"] = self.worker.error
        health = stream_health(stats, self.stats.window_s)
        # Who is swapped in (an identity, or a DFM's trained-in identity) and the consent the plan carries.
        plan = self._plan.value
        consent = plan.consent_view()
        stats["consent_status"] = consent["status"] if consent else None
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "live": self.live,
            "publisher": self.publisher is not None,
            "processor": self.config.processor,
            "settings": self.settings_json(),
            "consent": consent,
            "watermark": self.watermark_id is not None and plan.settings.watermark,
            "watermark_id": f"{self.watermark_id:08x}"
            if self.watermark_id is not None and plan.settings.watermark
            else None,
            "watermark_mark": self.worker.watermark_mark
            if self.watermark_id is not None and plan.settings.watermark
            else None,
            "stats": stats,
            "health": health,
        }
        out["ndi"] = {view: sender.stats() for view, sender in list(self.ndi.items())}
        if self.ndi_error is not None:
            out["ndi"]["error"] = self.ndi_error
        if self.source is not None:
            out["source"] = {
                "kind": self.source.spec.kind,
                "url": self.source.spec.source,
                "loop": self.source.spec.loop,
                "loops": self.source.loops,
                "finished": self.source.finished,
                "error": self.source.error,
            }
        for key, provide in self._status_providers.items():
            try:
                out[key] = provide(self.name)
            except Exception:  # one part's figures failing must not hide the stream's own
                log.exception("stream %s: the %r status failed", self.name, key)
                out[key] = None
        return out

    def close(self) -> None:
        """Stop the source, the worker and the encoders; joins threads (blocking: call off the loop)."""
        self.closed = True
        if self.source is not None:
            self.source.stop()
        self.worker.stop()
        if not self.worker.alive:  # a worker stuck past its join keeps its slot; its memory goes with the process
            self.ring.free()
        with self._outputs_lock:
            senders, self.ndi = list(self.ndi.values()), {}
        for sender in senders:
            sender.stop()
        self.fanout.close()


class StreamRegistry:
    """The streams of one server, by name (used from the event loop thread only)."""

    def __init__(self, config: ServeConfig, make_processor: ProcessorFactory) -> None:
        self.config = config
        self._make_processor = make_processor
        self._streams: dict[str, Stream] = {}
        self._remembered: OrderedDict[str, Plan] = OrderedDict()
        """Plans of streams that ended, by name: a camera that reconnects gets its settings back."""
        self.initial_plan = Plan(config.initial_settings)
        """What a new stream starts with (``serve``'s first settings, planned when the service starts)."""
        self.status_providers: dict[str, StatusProvider] = {}
        self.settings_providers: dict[str, StatusProvider] = {}
        """Settings keys of the service's own in every stream's settings JSON (``Service.stream_settings``)."""
        """Extra keys of every stream's JSON, by key (shared with the streams: a provider added later shows too)."""
        self.on_created: Callable[[Stream], None] | None = None
        """Called with each stream created (the service records swaps it starts with in the audit log)."""

    def __iter__(self) -> Iterator[Stream]:
        return iter(list(self._streams.values()))

    def __len__(self) -> int:
        return len(self._streams)

    def find(self, name: str) -> Stream | None:
        return self._streams.get(name)

    def get(self, name: str) -> Stream:
        """The stream called ``name`` (raises InputError for a bad name, NotFoundError for an unknown one)."""
        check_name(name, "stream name")
        stream = self._streams.get(name)
        if stream is None:
            raise NotFoundError(f"unknown stream {name!r}: nobody publishes it (POST /whip/{name} to start it)")
        return stream

    def check_capacity(self) -> None:
        """CapacityError when one more stream would be over the limit (one processing thread per core)."""
        if len(self._streams) >= self.config.max_streams:
            raise CapacityError(
                f"this server processes at most {self.config.max_streams} streams at once (one per CPU core; "
                "see --max-streams); end another stream first"
            )

    def create(self, name: str, kind: StreamKind, input_spec: InputSpec | None = None) -> Stream:
        """Create and start a stream (raises ConflictError if it exists, CapacityError over the limit)."""
        check_name(name, "stream name")
        if name in self._streams:
            raise ConflictError(f"stream {name!r} already exists")
        self.check_capacity()
        # The plan it had (or the first one), its consent checked again as of today from the record in
        # memory: nothing here reads the disk, so the check and the reservation are one step on the loop.
        plan = (self._remembered.pop(name, None) or self.initial_plan).restarted()
        stream = Stream(
            name,
            kind,
            self.config,
            self._make_processor,
            input_spec,
            status_providers=self.status_providers,
            plan=plan,
            settings_providers=self.settings_providers,
        )
        self._streams[name] = stream
        stream.start()
        log.info("stream %s started (%s)", name, kind)
        if self.on_created is not None:
            self.on_created(stream)
        return stream

    def detach(self, name: str) -> Stream | None:
        """Remove ``name`` from the registry and return it for closing (its threads still run).

        Its plan is kept (for the last ``REMEMBERED_STREAMS`` names) and given back if a stream of that name
        starts again while the server runs: a publisher that reconnects resumes as the operator left it."""
        stream = self._streams.pop(name, None)
        if stream is not None:
            self._remembered[name] = stream.plan
            self._remembered.move_to_end(name)
            while len(self._remembered) > REMEMBERED_STREAMS:
                self._remembered.popitem(last=False)
        return stream

    def consent_changed(self, likeness: Likeness, record: ConsentRecord | None) -> None:
        """A likeness's consent was recorded again: every plan that shows it carries the new record (the
        streams' and the remembered ones; a swap refused for its consent is checked again when it next
        starts or changes)."""
        for stream in self:
            for _ in range(3):
                current = stream.plan
                renewed = current.with_consent(likeness, record)
                if renewed is current:
                    break
                try:
                    stream.apply_plan(renewed, current.version)
                    break
                except PlanConflict:
                    continue
        for name, plan in list(self._remembered.items()):
            self._remembered[name] = plan.with_consent(likeness, record)

    def snapshots(self) -> dict[str, dict[str, Any]]:
        return {s.name: s.to_dict() for s in self}
