"""A stream's sound: chunking, the delay that follows the picture, Opus for viewers, placement in files,
and the sender-report clock that ties a publisher's sound to its picture."""

from __future__ import annotations

import logging
import threading
import time

import av
import numpy as np
import pytest

from streamer.live.audio import (
    OPUS_FRAME,
    SAMPLE_RATE,
    AudioChunk,
    AudioNormaliser,
    AudioOutput,
    OpusPackets,
    PictureDelay,
)
from streamer.live.publisher_media import RepeatedDecodeErrors
from streamer.live.sender_reports import CaptureClock, SenderReports
from streamer.record.sound import SoundTrack


def _tone(seconds: float, rate: int = SAMPLE_RATE, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _chunk(capture_s: float, frames: int = OPUS_FRAME, value: int = 1000, pts_s: float | None = None) -> AudioChunk:
    samples = np.full((1, 2 * frames), value, dtype=np.int16)
    return AudioChunk(samples, capture_s if pts_s is None else pts_s, capture_s)


def test_any_decoded_sound_becomes_20_ms_chunks_of_48_khz_stereo_with_times_that_run_on() -> None:
    normaliser = AudioNormaliser()
    mono = _tone(1.0, 44_100)
    chunks = []
    for i in range(0, mono.size, 1024):  # what an AAC decoder hands over: 1024 samples at 44.1 kHz, mono
        frame = av.AudioFrame.from_ndarray(mono[None, i : i + 1024], format="s16", layout="mono")
        frame.sample_rate = 44_100
        chunks += normaliser.chunks(frame, 10.0 + i / 44_100, 100.0 + i / 44_100)
    assert all(c.frames == OPUS_FRAME and c.samples.shape == (1, 2 * OPUS_FRAME) for c in chunks)
    assert 0.97 <= len(chunks) * 0.02 <= 1.0  # a second of sound (less what the resampler still holds)
    starts = np.array([c.pts_s for c in chunks])
    assert np.allclose(np.diff(starts), 0.02) and starts[0] == pytest.approx(10.0)
    assert np.allclose(np.array([c.capture_s for c in chunks]) - starts, 90.0)
    left, right = chunks[10].samples[0, 0::2], chunks[10].samples[0, 1::2]
    assert np.array_equal(left, right) and np.abs(left).max() > 10_000  # the tone, on both channels


def test_the_picture_delay_is_the_typical_frames_not_pulled_late_by_a_few_slow_ones() -> None:
    picture = PictureDelay(frames=45)
    assert picture.delay_s is None
    for i in range(45):
        slow = i % 10 == 0  # one frame in ten takes 200 ms instead of 40
        picture.handed(capture_s=100.0, now_s=100.0 + (0.2 if slow else 0.04))
        picture.encoded(0.005)
    assert picture.delay_s == pytest.approx(0.045)


class _Worker:
    """Hands a frame on every 20 ms, each ``delay_s`` after its capture, as a stream's worker would."""

    def __init__(self, picture: PictureDelay, delay_s: float) -> None:
        self.picture, self.delay_s = picture, delay_s
        self.late: dict[int, float] = {}
        """Frame index -> extra seconds that frame is late."""
        self.start_s = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def capture_of(self, index: int) -> float:
        return self.start_s + index * 0.02

    def _run(self) -> None:
        index = 0
        while not self._stop.is_set():
            capture = self.capture_of(index)
            due = capture + self.delay_s + self.late.get(index, 0.0)
            if due > time.monotonic():
                self._stop.wait(due - time.monotonic())
            self.picture.handed(capture)
            index += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _output(delay_s: float) -> tuple[AudioOutput, _Worker]:
    picture = PictureDelay()
    return AudioOutput("cam", picture), _Worker(picture, delay_s)


class _Sink:
    def __init__(self) -> None:
        self.chunks: list[tuple[float, AudioChunk]] = []
        self.got = threading.Event()

    def on_audio(self, chunk: AudioChunk) -> None:
        self.chunks.append((time.monotonic(), chunk))
        self.got.set()


class _Viewer:
    def __init__(self) -> None:
        self.packets: list[av.Packet] = []

    def deliver(self, packet: av.Packet) -> None:
        self.packets.append(packet)


def test_sound_goes_out_with_the_picture_captured_with_it_even_a_late_one() -> None:
    output, worker = _output(delay_s=0.15)
    sink = _Sink()
    output.add_sink(sink)
    worker.late[60] = 0.25  # the frame captured 1.2 s in takes 250 ms longer than the others
    try:
        time.sleep(0.5)  # the delay is measured on the frames handed so far
        for index in (40, 60):
            capture = worker.capture_of(index)
            time.sleep(max(0.0, capture - time.monotonic()))
            output.push(_chunk(capture))
        deadline = time.monotonic() + 30
        while len(sink.chunks) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        output.close()
        worker.stop()
    (on_time, first), (late, second) = sink.chunks
    lookahead = OpusPackets.LOOKAHEAD_S
    # Held for the picture's delay (less Opus's lookahead for the viewers); a busy machine can only add.
    assert on_time - first.capture_s >= 0.15 - lookahead - 0.002
    # The late frame holds its sound back with it.
    assert late - second.capture_s >= 0.15 + 0.25 - lookahead - 0.002


def test_sound_with_no_picture_going_out_is_dropped_whole_and_counted() -> None:
    output, worker = _output(delay_s=0.0)
    sink = _Sink()
    output.add_sink(sink)
    try:
        time.sleep(0.2)
        worker.stop()  # the picture stops
        for i in range(5):
            output.push(_chunk(time.monotonic() + 0.1 + i * 0.02))  # captured after the last frame
        deadline = time.monotonic() + 30
        while output.dropped < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert output.dropped == 5 and not sink.chunks
    finally:
        output.close()


def test_viewers_get_the_sound_as_opus_encoded_once_and_it_decodes_back_to_the_sound() -> None:
    output, worker = _output(delay_s=0.0)
    viewers = [_Viewer(), _Viewer()]
    for v in viewers:
        output.subscribe(v)
    try:
        tone = _tone(0.5)
        stereo = np.repeat(tone, 2)[None, :]
        start = worker.start_s
        for i in range(25):
            part = stereo[:, i * 2 * OPUS_FRAME : (i + 1) * 2 * OPUS_FRAME]
            output.push(AudioChunk(np.ascontiguousarray(part), i * 0.02, start + i * 0.02))
        deadline = time.monotonic() + 30
        while len(viewers[1].packets) < 25 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        output.close()
        worker.stop()
    assert [p.pts for p in viewers[0].packets] == [p.pts for p in viewers[1].packets]
    assert viewers[0].packets[0] is viewers[1].packets[0]  # the same packets: encoded once
    assert np.all(np.diff([p.pts for p in viewers[0].packets]) == OPUS_FRAME)
    decoder = av.CodecContext.create("libopus", "r")
    decoded = np.concatenate([f.to_ndarray().reshape(-1) for p in viewers[0].packets for f in decoder.decode(p)])
    assert np.abs(decoded).max() > 10_000  # the tone came through


def test_a_recordings_sound_starts_with_its_first_frame_fills_gaps_and_cuts_overlaps() -> None:
    track = SoundTrack("aac")
    # Sound from 30 ms before the first frame: the part before is cut, the track starts at the frame.
    placed = track.place(_chunk(0.0, frames=2400), rel_s=-0.03)
    assert placed is not None and placed.pts == 0 and placed.samples.shape[1] == 2 * (2400 - 1440)
    # Jitter of a few ms continues the run.
    placed = track.place(_chunk(0.0), rel_s=0.02 + 0.004)
    assert placed is not None and placed.pts == 960
    # A 100 ms gap (lost packets) is silence, then the sound where it belongs.
    placed = track.place(_chunk(0.0), rel_s=0.02 + 0.02 + 0.1)
    assert placed is not None and placed.pts == 1920
    assert placed.samples.shape[1] == 2 * (4800 + 960) and not placed.samples[0, : 2 * 4800].any()
    # An overlap of 15 ms is cut from the chunk's front.
    placed = track.place(_chunk(0.0), rel_s=0.14 + 0.02 - 0.015)
    assert placed is not None and placed.pts == 1920 + 4800 + 960 and placed.samples.shape[1] == 2 * (960 - 720)
    assert track.silence_s == pytest.approx(0.1) and track.cut_s == pytest.approx(0.03 + 0.015)


def test_sender_reports_tie_aiortcs_frame_stamps_to_the_senders_clock_across_the_rtp_wrap() -> None:
    reports = SenderReports(90_000)
    reports.first_packet(2**32 - 9000)  # the stream starts 0.1 s before its RTP timestamps wrap
    assert reports.sender_time_s(0) is None  # no report yet
    ntp = (3_900_000_000 << 32) | (1 << 31)  # 3_900_000_000.5 s
    reports.note(ntp, 2**32 - 9000 + 90_000)  # the report: frame 1 s in was sent at that time
    assert reports.sender_time_s(90_000) == pytest.approx(3_900_000_000.5)
    assert reports.sender_time_s(0) == pytest.approx(3_899_999_999.5)
    assert reports.sender_time_s(180_000) == pytest.approx(3_900_000_001.5)  # after the wrap


def test_the_capture_clock_takes_the_least_delayed_arrival_so_jitter_does_not_move_sound_against_picture() -> None:
    clock = CaptureClock(window_s=10.0)
    rng = np.random.default_rng(1)
    mapped = []
    for i in range(100):
        media_s = 1000.0 + i * 0.02
        arrived = 50.0 + i * 0.02 + 0.03 + rng.uniform(0, 0.05)  # 30 ms path, up to 50 ms of jitter
        mapped.append(clock.local_s(media_s, arrived) - media_s)
    assert np.ptp(mapped[20:]) < 0.005  # settled: one offset for every frame, jitter or not
    assert mapped[-1] == pytest.approx(-950.0 + 0.03, abs=0.005)


def test_aiortcs_per_frame_decode_warnings_are_let_through_once_in_a_while() -> None:
    quiet = RepeatedDecodeErrors(interval_s=10.0)
    records = [
        logging.LogRecord(
            "aiortc.rtcrtpreceiver",
            logging.WARNING,
            "x",
            1,
            "RTCRtpReceiver(%s) failed to decode %s frame: %s",
            ("audio", "opus", "bad"),
            None,
        )
        for _ in range(50)
    ]
    passed = [r for r in records if quiet.filter(r)]
    assert len(passed) == 1 and quiet.held == 49
