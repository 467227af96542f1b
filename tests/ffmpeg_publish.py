"""FFmpeg as a publisher for the tests: PyAV's bundled FFmpeg 8.1, its WHIP muxer or RTMP (FLV).

The same muxers as ``ffmpeg -re -i CLIP -c:v libx264 -profile:v baseline -tune zerolatency -bf 0 -c:a libopus
-ar 48000 -ac 2 -f whip -cert_file whip.pem -key_file whip.key URL`` and ``ffmpeg -re -i CLIP -c:v libx264
-tune zerolatency -c:a aac -f flv rtmp://HOST:1935/live/KEY``, driven from Python. It runs in its own process
(``python -m tests.ffmpeg_publish URL ...``): PyAV holds the GIL while the muxer connects, so in the server's
process the event loop could not answer it. It paces the clip in real time (``-re``) and prints one JSON
line at the end: frames and audio seconds sent, or the error.

FFmpeg builds on GnuTLS (PyAV's wheels, Debian's ffmpeg) make a P-224 certificate for DTLS by default,
which OpenSSL 4 (aiortc's, through cryptography) no longer accepts in either DTLS role; ``--cert/--key``
give it a P-256 one (README, "Publish from OBS / FFmpeg / a browser / an encoder").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

SAMPLE_TB = Fraction(1, 48000)


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


def publish(
    url: str,
    clip: Path,
    seconds: float,
    cert: Path | None = None,
    key: Path | None = None,
    audio: bool = True,
    video_codec: str = "libx264",
    fmt: str = "whip",
) -> dict[str, Any]:
    """Publish ``clip`` (looping) for ``seconds`` with the ``whip`` or ``flv`` (RTMP) muxer; returns what was sent."""
    options: dict[str, str] = {}
    if cert is not None and key is not None:
        options = {"cert_file": str(cert), "key_file": str(key)}
    src = av.open(str(clip))
    vin = src.streams.video[0]
    ain = src.streams.audio[0] if audio and src.streams.audio else None
    out = av.open(url, mode="w", format=fmt, options=options)
    video: Any = out.add_stream(video_codec, rate=vin.average_rate or 30)
    video.width, video.height, video.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
    video.options = {"preset": "veryfast", "tune": "zerolatency", "profile": "baseline", "bf": "0", "g": "60"}
    sound: Any = None
    resampler: Any = None
    if ain is not None:
        sound = out.add_stream("libopus" if fmt == "whip" else "aac", rate=48000)
        sound.layout = "stereo"
        sound.bit_rate = 64000
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=48000)
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
                            f.pts, f.time_base = samples, SAMPLE_TB
                            samples += f.samples
                            sent["audio_s"] = samples / 48000
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
    parser.add_argument("url")
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    parser.add_argument("--no-audio", action="store_true")
    parser.add_argument("--format", choices=("whip", "flv"), default="whip")
    args = parser.parse_args(argv)
    try:
        sent = publish(args.url, args.clip, args.seconds, args.cert, args.key, not args.no_audio, fmt=args.format)
    except (av.FFmpegError, OSError) as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    print(json.dumps(sent), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
