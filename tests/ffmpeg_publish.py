"""FFmpeg as a publisher for the tests: PyAV's bundled FFmpeg 8.1, its WHIP muxer or RTMP (FLV).

The same muxers as ``ffmpeg -re -i CLIP -c:v libx264 -profile:v baseline -tune zerolatency -bf 0 -c:a libopus
-ar 48000 -ac 2 -f whip -cert_file whip.pem -key_file whip.key URL`` and ``ffmpeg -re -i CLIP -c:v libx264
-tune zerolatency -c:a aac -f flv rtmp://HOST:1935/live/KEY``, driven from Python. It runs in its own process
(``python -m tests.ffmpeg_publish URL ...``): PyAV holds the GIL while the muxer connects, so in the server's
process the event loop could not answer it. It paces the clip in real time (``-re``) and prints one JSON
line at the end: frames and audio seconds sent, or the error. ``--command 'ffmpeg -re -i ... URL'`` plays an
``ffmpeg`` command line instead (``parse_command``: its input, codecs, encoder options, muxer and URL; an
option it does not know is refused), which is how the README's publishing lines are run by the tests.

FFmpeg builds on GnuTLS (PyAV's wheels, Debian's ffmpeg) make a P-224 certificate for DTLS by default,
which OpenSSL 4 (aiortc's, through cryptography) no longer accepts in either DTLS role; ``--cert/--key``
give it a P-256 one (README, "Publish from OBS / FFmpeg / a browser / an encoder").
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av


def make_certificate(folder: Path, kind: str = "ec") -> tuple[Path, Path]:
    """A self-signed certificate for the publisher's DTLS: ``ec`` (P-256) or ``rsa`` (2048 bits).

    With the ``openssl`` command line where it exists (the README's command), else with cryptography."""
    cert, key = folder / f"whip-{kind}.pem", folder / f"whip-{kind}.key"
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] if kind == "ec" else ["-newkey", "rsa:2048"]
    try:
        subprocess.run(
            ["openssl", "req", "-x509", *newkey, "-nodes", "-days", "3650", "-subj", "/CN=whip"]
            + ["-keyout", str(key), "-out", str(cert)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError):
        _make_certificate_in_python(cert, key, kind)
    return cert, key


def self_signed(kind: str = "ec") -> tuple[Any, Any]:
    """(private key, certificate) made with cryptography: ``ec`` (P-256) or ``rsa`` (2048 bits)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    private: Any = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "whip")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(private, hashes.SHA256())
    )
    return private, certificate


def _make_certificate_in_python(cert: Path, key: Path, kind: str) -> None:
    from cryptography.hazmat.primitives import serialization

    private, certificate = self_signed(kind)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


@dataclass(frozen=True)
class Encoders:
    """The codecs a publish uses and their options, as an ``ffmpeg`` command line sets them."""

    video_codec: str = "libx264"
    video_options: tuple[tuple[str, str], ...] = (
        ("preset", "veryfast"),
        ("tune", "zerolatency"),
        ("profile", "baseline"),
        ("bf", "0"),
        ("g", "60"),
    )
    audio_codec: str = "libopus"
    audio_rate: int = 48000
    audio_channels: int = 2
    audio_bit_rate: int = 64000


@dataclass(frozen=True)
class Command:
    """An ``ffmpeg`` publishing command line, read by ``parse_command``."""

    clip: str
    url: str
    fmt: str
    encoders: Encoders
    cert: str | None = None
    key: str | None = None


_VIDEO_OPTIONS = {"-profile:v": "profile", "-tune": "tune", "-preset": "preset", "-bf": "bf", "-g": "g"}


def _bit_rate(text: str) -> int:
    return int(float(text[:-1]) * 1000) if text.lower().endswith("k") else int(text)


def parse_command(line: str) -> Command:
    """Read an ``ffmpeg -re -i FILE ... -f whip|flv URL`` command line (the README's) into what ``publish`` does.

    Only the options a publishing line needs are understood; any other is refused with its name, so a README
    line that this cannot play exactly makes its test fail instead of being half-run."""
    words = shlex.split(line.replace("\\\n", " "), comments=True)
    if not words or words[0] != "ffmpeg":
        raise ValueError(f"not an ffmpeg command line: {line!r}")
    clip = url = fmt = cert = key = None
    video_codec, audio_codec = "libx264", None
    video_options: dict[str, str] = {}
    audio_rate, audio_channels, audio_bit_rate = 48000, 2, 64000
    paced = False
    i = 1
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else None
        if word == "-re":
            paced, i = True, i + 1
            continue
        if not word.startswith("-"):
            if i != len(words) - 1:
                raise ValueError(f"ffmpeg command: {word!r} is not an option and not the last word (the URL)")
            url, i = word, i + 1
            continue
        if value is None:
            raise ValueError(f"ffmpeg command: {word} has no value")
        if word == "-i":
            clip = value
        elif word == "-c:v":
            video_codec = value
        elif word in _VIDEO_OPTIONS:
            video_options[_VIDEO_OPTIONS[word]] = value
        elif word == "-c:a":
            audio_codec = value
        elif word == "-ar":
            audio_rate = int(value)
        elif word == "-ac":
            audio_channels = int(value)
        elif word == "-b:a":
            audio_bit_rate = _bit_rate(value)
        elif word == "-f":
            fmt = value
        elif word == "-cert_file":
            cert = value
        elif word == "-key_file":
            key = value
        else:
            raise ValueError(f"ffmpeg command: {word} is not an option tests.ffmpeg_publish plays")
        i += 2
    if not paced:
        raise ValueError("ffmpeg command: without -re a file is sent faster than real time")
    if clip is None or url is None or fmt not in ("whip", "flv") or audio_codec is None:
        raise ValueError(f"ffmpeg command: needs -i, -c:a, -f whip|flv and a URL: {line!r}")
    encoders = Encoders(
        video_codec, tuple(video_options.items()), audio_codec, audio_rate, audio_channels, audio_bit_rate
    )
    return Command(clip, url, fmt, encoders, cert, key)


def publish(
    url: str,
    clip: Path,
    seconds: float,
    cert: Path | None = None,
    key: Path | None = None,
    audio: bool = True,
    video_codec: str = "libx264",
    fmt: str = "whip",
    encoders: Encoders | None = None,
) -> dict[str, Any]:
    """Publish ``clip`` (looping) for ``seconds`` with the ``whip`` or ``flv`` (RTMP) muxer; returns what was sent.

    ``encoders``: the codecs and their options (an ``ffmpeg`` command line's, see ``parse_command``); by default
    x264 baseline zerolatency without B-frames and Opus (WHIP) or AAC (FLV), 48 kHz stereo 64 kbit/s."""
    if encoders is None:
        encoders = Encoders(video_codec=video_codec, audio_codec="libopus" if fmt == "whip" else "aac")
    options: dict[str, str] = {}
    if cert is not None and key is not None:
        options = {"cert_file": str(cert), "key_file": str(key)}
    src = av.open(str(clip))
    vin = src.streams.video[0]
    ain = src.streams.audio[0] if audio and src.streams.audio else None
    out = av.open(url, mode="w", format=fmt, options=options)
    video: Any = out.add_stream(encoders.video_codec, rate=vin.average_rate or 30)
    video.width, video.height, video.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
    video.options = dict(encoders.video_options)
    sound: Any = None
    resampler: Any = None
    if ain is not None:
        layout = "stereo" if encoders.audio_channels == 2 else "mono"
        sound = out.add_stream(encoders.audio_codec, rate=encoders.audio_rate)
        sound.layout = layout
        sound.bit_rate = encoders.audio_bit_rate
        resampler = av.AudioResampler(format="s16", layout=layout, rate=encoders.audio_rate)
    frame_tb = Fraction(1, round(float(vin.average_rate or 30)))
    video.codec_context.time_base = frame_tb
    sent: dict[str, Any] = {"frames": 0, "audio_s": 0.0}
    samples = 0
    start = time.monotonic()
    offset_s = 0.0  # media time of the current loop's start
    try:
        while True:
            last_s = 0.0
            streams = [vin] + ([ain] if ain is not None else [])
            for packet in src.demux(*streams):
                for frame in packet.decode():
                    if frame.time is None:
                        continue
                    t = offset_s + frame.time
                    last_s = max(last_s, frame.time)
                    if t >= seconds:
                        return sent
                    delay = start + t - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    if isinstance(frame, av.VideoFrame):
                        yuv = frame.reformat(format="yuv420p")
                        yuv.pts, yuv.time_base = sent["frames"], frame_tb
                        for p in video.encode(yuv):
                            out.mux(p)
                        sent["frames"] += 1
                    else:
                        for f in resampler.resample(frame):
                            f.pts, f.time_base = samples, Fraction(1, encoders.audio_rate)
                            samples += f.samples
                            sent["audio_s"] = samples / encoders.audio_rate
                            for p in sound.encode(f):
                                out.mux(p)
            offset_s += last_s + 1 / float(vin.average_rate or 30)
            src.seek(0)
    finally:
        try:
            out.close()  # FFmpeg's muxer sends the WHIP DELETE here
        finally:
            src.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?")
    parser.add_argument("--clip", type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    parser.add_argument("--no-audio", action="store_true")
    parser.add_argument("--format", choices=("whip", "flv"), default="whip")
    parser.add_argument("--command", help="an ffmpeg command line to play instead (its -i, codecs, options and URL)")
    args = parser.parse_args(argv)
    try:
        if args.command:
            command = parse_command(args.command)
            cert = Path(command.cert) if command.cert else None
            key = Path(command.key) if command.key else None
            sent = publish(
                command.url, Path(command.clip), args.seconds, cert, key, fmt=command.fmt, encoders=command.encoders
            )
        elif args.url and args.clip:
            sent = publish(args.url, args.clip, args.seconds, args.cert, args.key, not args.no_audio, fmt=args.format)
        else:
            parser.error("give URL and --clip, or --command")
    except (av.FFmpegError, OSError, ValueError) as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    print(json.dumps(sent), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
