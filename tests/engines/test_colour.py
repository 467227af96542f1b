"""Colour-managed footage (engines.colour): a LogC4 clip made from a shared clip with OCIO round-trips through
`stageswap process` within one 10-bit code value (swap and relight off, FFV1 10-bit, ProRes 10-bit);
with relight on, the result is the relighting computed in scene-linear light, checked against the same
computation done by hand with PyOpenColorIO; bad colour settings are refused with the reason."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import PyOpenColorIO as ocio
import pytest

from engines.colour import check_space, transform
from engines.compose.watermark import WatermarkConfig
from engines.errors import InputError
from engines.light.sh import srgb_to_linear
from engines.processor import FaceProcessor, ProcessorConfig
from engines.settings import ProcessSettings, apply_patch
from streamer.__main__ import main

LOG = "ARRI LogC4"
FRAMES = 12
CONFIG = ocio.Config.CreateFromBuiltinConfig("studio-config-latest")


def _cpu(src: str, dst: str) -> ocio.CPUProcessor:
    return CONFIG.getProcessor(src, dst).getDefaultCPUProcessor()


def _apply(proc: ocio.CPUProcessor, rgb: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(rgb, np.float32).copy()
    proc.applyRGB(out)
    return out


def _to16(code10: np.ndarray) -> np.ndarray:
    """10-bit codes as FFmpeg widens them to 16 bits (bit replication)."""
    c = code10.astype(np.uint32)
    return ((c << 6) | (c >> 4)).astype(np.uint16)


@pytest.fixture(scope="module")
def log_clip(clips: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """d3.mp4's first frames re-encoded by OCIO from display Rec.709/sRGB to ARRI LogC4, 10-bit FFV1 (RGB).
    Returns the file and its 10-bit BGR code values."""
    to_log = _cpu("sRGB Encoded Rec.709 (sRGB)", LOG)
    codes = []
    with av.open(str(clips / "d3.mp4")) as src:
        for frame, _ in zip(src.decode(video=0), range(FRAMES), strict=False):
            rgb = frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0
            codes.append(np.rint(np.clip(_apply(to_log, rgb), 0, 1) * 1023).astype(np.uint16)[:, :, ::-1])
    path = tmp_path_factory.mktemp("log") / "logc4.mkv"
    with av.open(str(path), "w") as out:
        s = out.add_stream("ffv1", rate=30)
        s.width, s.height, s.pix_fmt = codes[0].shape[1], codes[0].shape[0], "gbrp10le"
        for i, code in enumerate(codes):
            f = av.VideoFrame.from_ndarray(_to16(code), format="bgr48le")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    assert np.array_equal(_read10(path)[0], codes[0]), "the 10-bit clip stores its codes exactly"
    return path, np.stack(codes)


def _read10(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([(f.to_ndarray(format="bgr48le") >> 6).astype(np.int32) for f in c.decode(video=0)])


def test_a_log_clip_round_trips_within_one_10_bit_code_value(log_clip: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, codes = log_clip
    out = tmp_path / "out.mkv"
    args = ["process", "-i", str(path), "-o", str(out), "--colour-space", LOG, "--no-swap", "--no-relight"]
    assert main([*args, "--codec", "ffv1", "--no-watermark", "--no-progress", "--no-sign"]) == 0
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "gbrp10le"
    back = _read10(out)
    assert back.shape == codes.shape
    assert np.abs(back - codes).max() <= 1
    # ProRes 422 HQ keeps 10 bits too (through its Y'CbCr 4:2:2: about a code value on average, not exact).
    prores = tmp_path / "out.mov"
    args[4] = str(prores)
    assert main([*args, "--codec", "prores", "--no-watermark", "--no-progress", "--no-sign"]) == 0
    with av.open(str(prores)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv422p10le"
    err = np.abs(_read10(prores) - codes)
    assert np.median(err) <= 1 and err.mean() < 1.5, (np.median(err), err.mean())


def _processor(models_dir: Path) -> FaceProcessor:
    return FaceProcessor.from_models(models_dir, ProcessorConfig(watermark=WatermarkConfig(enabled=False)))


def test_relight_on_log_footage_is_computed_in_linear_light(
    log_clip: tuple[Path, np.ndarray], models_dir: Path
) -> None:
    _path, codes = log_clip
    relight = {"swap": False, "relight": True, "relight_target": {"mode": "direction", "direction": [1, 0.3, 0.6]}}
    managed = apply_patch(ProcessSettings(), {**relight, "colour": {"input": LOG}})
    plain = apply_patch(ProcessSettings(), relight)
    pipeline, by_hand, naive = _processor(models_dir), _processor(models_dir), _processor(models_dir)
    to_linear, from_linear = _cpu(LOG, "Linear Rec.709 (sRGB)"), _cpu("Linear Rec.709 (sRGB)", LOG)
    to_srgb = _cpu("Linear Rec.709 (sRGB)", "sRGB Encoded Rec.709 (sRGB)")
    table = srgb_to_linear(np.arange(256) / 255.0)
    face_change = []
    for i, code10 in enumerate(codes):
        code16 = _to16(code10)
        result = pipeline.process(code16, i / 30, managed)
        assert result.image.dtype == np.uint16 and "colour" in result.stage_ms and result.faces
        # By hand: LogC4 -> scene-linear (PyOpenColorIO), the engines' sRGB picture, the same relight on it,
        # its change added in linear light, back to LogC4.
        linear = _apply(to_linear, code16[:, :, ::-1] / 65535.0)
        engine = np.rint(np.clip(_apply(to_srgb, np.clip(linear, 0, 1)), 0, 1) * 255).astype(np.uint8)[:, :, ::-1]
        relit = by_hand.process(np.ascontiguousarray(engine), i / 30, plain).image
        expected_linear = linear + (table[relit] - table[engine])[:, :, ::-1]
        expected = np.rint(np.clip(_apply(from_linear, expected_linear), 0, 1) * 65535)[:, :, ::-1]
        assert np.abs(result.image.astype(np.int64) - expected).max() <= 2  # float rounding in 16-bit units
        changed = np.any(relit != engine, axis=2)
        assert changed.sum() > 1000, "the relight changed the face"
        out_linear = _apply(to_linear, result.image[:, :, ::-1] / 65535.0)
        face_change.append(float(np.abs(out_linear - linear)[changed].mean()))
        # Relighting the log code values as if they were a display picture is a different (wrong) result: off by
        # about half the relight's own change here (8-bit quantisation alone is under a tenth of it).
        wrong = naive.process(np.ascontiguousarray((code10 >> 2).astype(np.uint8)), i / 30, plain).image
        wrong_linear = _apply(to_linear, (wrong[:, :, ::-1].astype(np.float32) * 4 + 1.5) / 1023.0)
        assert np.abs(wrong_linear - out_linear)[changed].mean() > 0.25 * face_change[-1]
    assert min(face_change) > 0.005  # the relight is visible in linear light


def test_colour_settings_are_checked() -> None:
    assert check_space("ACEScct", "colour.input") == "ACEScct"
    with pytest.raises(InputError, match="did you mean 'ARRI LogC4'"):
        apply_patch(ProcessSettings(), {"colour": {"input": "ARRI LogC"}})
    with pytest.raises(InputError, match="colour.output and colour.monitor need colour.input"):
        apply_patch(ProcessSettings(), {"colour": {"output": "ACEScct"}})
    with pytest.raises(InputError, match="unknown setting 'colour.gamma'"):
        apply_patch(ProcessSettings(), {"colour": {"gamma": 2.2}})
    with pytest.raises(InputError, match="colour.config"):
        apply_patch(ProcessSettings(), {"colour": {"config": "/etc/passwd"}})
    with pytest.raises(InputError, match="uint8 or uint16"):
        transform(LOG).to_engine(np.zeros((4, 4, 3), np.float32))
    # ACEScct in, ACEScct out: an untouched frame comes back as it went in (8-bit live frames too).
    frame = np.random.default_rng(1).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    linear, engine = transform("ACEScct").to_engine(frame)
    assert np.abs(transform("ACEScct").from_engine(linear, engine, engine, np.uint8).astype(int) - frame).max() <= 1


def test_monitors_see_log_footage_through_a_display_view(clips: Path, tmp_path: Path) -> None:
    """WHEP monitors get the declared display view of the footage (on the encoder threads); what is recorded
    and sent over NDI stays in the output space."""
    import threading
    import time

    from engines.processor import ProcessedFrame
    from streamer.config import ServeConfig
    from streamer.live.ring import FrameMeta
    from streamer.live.streams import Stream
    from streamer.live.worker import PassthroughProcessor
    from tests.live_helpers import change_settings

    with av.open(str(clips / "d3.mp4")) as src:
        rgb = next(src.decode(video=0)).to_ndarray(format="rgb24")
    log = _apply(_cpu("sRGB Encoded Rec.709 (sRGB)", LOG), rgb.astype(np.float32) / 255.0)
    log8 = np.ascontiguousarray(np.rint(np.clip(log, 0, 1) * 255).astype(np.uint8)[:, :, ::-1])
    stream = Stream("cam", "input", ServeConfig(data_dir=tmp_path, max_streams=2), PassthroughProcessor)
    try:
        with pytest.raises(InputError, match="not a view of 'sRGB - Display'"):
            change_settings(stream, {"colour": {"input": LOG, "monitor": "sRGB - Display", "monitor_view": "nope"}})
        assert stream.fanout.monitor is None
        colour = {"input": LOG, "monitor": "sRGB - Display", "monitor_view": "Video (colorimetric)"}
        change_settings(stream, {"colour": colour})
        monitor = stream.fanout.monitor
        assert monitor is not None
        shown = monitor(log8)
        # The colorimetric view of the LogC4 picture is the display picture it was made from (8-bit log steps).
        diff = np.abs(shown.astype(int) - rgb[:, :, ::-1])
        assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 4, (diff.mean(), np.percentile(diff, 99))
        assert np.abs(log8.astype(int) - rgb[:, :, ::-1]).mean() > 20  # the log picture itself looks flat
        called: list[str] = []

        def spy(image: np.ndarray) -> np.ndarray:
            called.append(threading.current_thread().name)
            return monitor(image)

        stream.fanout.monitor = spy

        class Sink:
            packets = 0

            def deliver(self, packet: object, keyframe: bool) -> None:
                Sink.packets += 1

        stream.fanout.subscribe("processed", "vp8", Sink())
        for i in range(5):
            stream.fanout.publish(log8, log8, FrameMeta(i, i / 30), ProcessedFrame(log8, (), {}))
            time.sleep(0.05)
        deadline = time.monotonic() + 10
        while not called and time.monotonic() < deadline:
            time.sleep(0.05)
        assert called and all(name.startswith("encode-cam-processed") for name in called)
        change_settings(stream, {"colour": {"monitor": None}})
        assert stream.fanout.monitor is None
    finally:
        stream.close()


def test_colour_list_command(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["colour", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"ARRI LogC4", "ACEScct", "S-Log3 S-Gamut3.Cine"} <= set(listed["spaces"])
    assert "ACES 2.0 - SDR 100 nits (Rec.709)" in listed["displays"]["sRGB - Display"]


def test_a_live_stream_declared_in_log_is_processed_through_the_conversions(
    log_clip: tuple[Path, np.ndarray], models_dir: Path, tmp_path: Path
) -> None:
    """PATCH {"colour": ...} on a live stream: the worker's frames go through the conversions (``colour`` in
    its stage times), and a bad name is refused with the reason while the stream goes on."""
    import asyncio

    import aiohttp

    from streamer.config import InputSpec, ServeConfig
    from tests.live_helpers import live_server, wait_for

    path, _codes = log_clip
    config = ServeConfig(data_dir=tmp_path, models_dir=models_dir, inputs=(InputSpec.parse(f"cam1={path}"),))

    async def scenario() -> dict:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            stream = srv.service.streams.get("cam1")
            assert await wait_for(lambda: stream.stats.snapshot()["frames_processed"] > 2, 60)
            async with http.patch(f"{srv.url}/api/streams/cam1", json={"colour": {"input": "ARRI LogC"}}) as r:
                assert r.status == 400 and "did you mean 'ARRI LogC4'" in (await r.json())["error"]
            async with http.patch(f"{srv.url}/api/streams/cam1", json={"colour": {"input": LOG}}) as r:
                assert r.status == 200, await r.text()
            assert await wait_for(lambda: "colour" in stream.stats.snapshot()["stage_ms"], 60)
            async with http.get(f"{srv.url}/api/streams/cam1") as r:
                return dict(await r.json())

    info = asyncio.run(scenario())
    assert info["settings"]["colour"]["input"] == LOG and info["stats"]["processor_error"] is None
    assert info["stats"]["stage_ms"]["colour"]["p50"] > 0
