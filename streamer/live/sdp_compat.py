"""Offers from other WebRTC stacks, made readable to aiortc, and aiortc's answer made right for them.

aiortc (checked against 1.16.0) fails a whole offer when one of its m-lines has no codec it knows
("Failed to set remote audio description send parameters"), and it only matches H.264 offers of the
baseline and constrained-baseline profiles. Publishers are not that tidy: a hardware encoder offers H.264
High, an encoder offers AAC sound next to its H.264 picture. ``adapt_offer`` works on the SDP text, before
aiortc reads it and after it answers, so that:

- an m-line with no codec stageswap can take is left out of what aiortc reads and answered as rejected
  (port 0, ``a=inactive``, out of the BUNDLE group): a publisher whose sound we cannot decode keeps its
  picture; an offer whose *video* has no such codec is refused, naming the codecs accepted;
- H.264 of any profile (packetization mode 1) is accepted: aiortc reads it as constrained baseline, and
  the answer gives the peer its own ``profile-level-id`` back. Decoding does not depend on the profile
  (FFmpeg's decoder takes them all), and what stageswap sends to viewers is constrained baseline, which
  every H.264 profile's decoder plays.

``prefer_passive`` (``streamer.live.dtls``) is applied on top, for the DTLS role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from aiortc.sdp import H264Profile, parse_h264_profile_level_id

from engines.errors import InputError

Direction = Literal["send", "receive"]
VIDEO_CODECS = ("VP8", "H264")
AUDIO_CODECS = ("opus", "G722", "PCMU", "PCMA")
ACCEPTED = "video VP8 or H.264 (packetization-mode=1, any profile); audio Opus, G.722, PCMU or PCMA"
"""What the refusal names: the codecs stageswap takes, in the words of an SDP offer."""
_NEUTRAL_PROFILE = "42e01f"
"""Constrained baseline level 3.1: the H.264 profile aiortc matches every H.264 offer against."""
_SERVICE_CODECS = {"rtx", "red", "ulpfec", "flexfec-03", "telephone-event", "cn"}
"""Codecs that come along with a media codec (retransmission, FEC, DTMF, comfort noise): never the reason."""


@dataclass
class _Section:
    lines: list[str]
    kind: str
    mid: str | None
    codecs: dict[int, str]
    """Payload type -> codec name as the rtpmap says it."""
    fmtp: dict[int, str]
    """Payload type -> its a=fmtp parameters."""

    @property
    def media_codecs(self) -> list[str]:
        names = [c for c in self.codecs.values() if c.lower() not in _SERVICE_CODECS]
        return list(dict.fromkeys(names))


@dataclass(frozen=True)
class AdaptedOffer:
    """The offer as aiortc reads it, and how to turn aiortc's answer into the one the peer gets."""

    sdp: str
    rejected: tuple[tuple[int, str, str | None, str], ...] = ()
    """(index among the offer's m-lines, kind, mid, the offer's m= line) of each m-line left out."""
    profiles: dict[tuple[str | None, int], str] = field(default_factory=dict)
    """(mid, payload type) -> the profile-level-id the peer offered, where aiortc read another."""

    @property
    def rejected_kinds(self) -> tuple[str, ...]:
        return tuple(kind for _, kind, _, _ in self.rejected)

    def answer(self, sdp: str) -> str:
        """aiortc's answer with the left-out m-lines put back as rejected and the H.264 profiles restored."""
        head, sections = _split(sdp)
        for index, _kind, mid, m_line in sorted(self.rejected):
            parts = m_line.split()
            rejected = [f"m={parts[0][2:]} 0 {parts[2]} {parts[3] if len(parts) > 3 else '0'}", "c=IN IP4 0.0.0.0"]
            rejected += ([f"a=mid:{mid}"] if mid is not None else []) + ["a=inactive"]
            sections.insert(index, _section(rejected))
        for section in sections:
            for i, line in enumerate(section.lines):
                match = _FMTP.match(line)
                if match is None:
                    continue
                original = self.profiles.get((section.mid, int(match.group(1))))
                if original is not None:
                    section.lines[i] = _PROFILE.sub(f"profile-level-id={original}", line)
        return _join(head, sections)


def adapt_offer(sdp: str, direction: Direction) -> AdaptedOffer:
    """Check the offer's codecs and adapt it for aiortc (raises InputError naming what is accepted).

    ``direction``: what the offerer does with the video, ``send`` (WHIP) or ``receive`` (WHEP)."""
    head, sections = _split(sdp)
    kept: list[_Section] = []
    rejected: list[tuple[int, str, str | None, str]] = []
    profiles: dict[tuple[str | None, int], str] = {}
    video_offered: list[str] = []
    video_ok = False
    for index, section in enumerate(sections):
        if section.kind not in ("audio", "video"):
            kept.append(section)
            continue
        usable = _usable(section)
        if section.kind == "video":
            video_offered += section.media_codecs
            video_ok = video_ok or bool(usable)
        if not usable:
            rejected.append((index, section.kind, section.mid, section.lines[0]))
            continue
        for pt in usable:
            if section.codecs[pt].upper() == "H264":
                offered = _profile_of(section.fmtp.get(pt, ""))
                if offered is not None and not _aiortc_matches(offered):
                    profiles[(section.mid, pt)] = offered
                    section.fmtp[pt] = _PROFILE.sub(f"profile-level-id={_NEUTRAL_PROFILE}", section.fmtp[pt])
                    section.lines = [_rewrite_fmtp(line, pt, section.fmtp[pt]) for line in section.lines]
        kept.append(section)
    if not video_ok:
        what = ", ".join(dict.fromkeys(video_offered)) or "no codec"
        role = "sends" if direction == "send" else "asks for"
        raise InputError(f"the offer {role} video as {what}: stageswap accepts {ACCEPTED}")
    mids = {mid for _, _, mid, _ in rejected if mid is not None}
    if mids:
        head = [_without_mids(line, mids) for line in head]
    return AdaptedOffer(_join(head, kept), tuple(rejected), profiles)


# -- the SDP text --------------------------------------------------------------------------------------

_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([^/\s]+)/")
_FMTP = re.compile(r"^a=fmtp:(\d+) (.*)$")
_PROFILE = re.compile(r"profile-level-id=([0-9A-Fa-f]{6})")


def _split(sdp: str) -> tuple[list[str], list[_Section]]:
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    head: list[str] = []
    sections: list[list[str]] = []
    for line in lines:
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            head.append(line)
    return head, [_section(s) for s in sections]


def _section(lines: list[str]) -> _Section:
    kind = lines[0][2:].split(" ", 1)[0]
    mid = next((line[6:].strip() for line in lines if line.startswith("a=mid:")), None)
    codecs: dict[int, str] = {}
    fmtp: dict[int, str] = {}
    for line in lines:
        if match := _RTPMAP.match(line):
            codecs[int(match.group(1))] = match.group(2)
        elif match := _FMTP.match(line):
            fmtp[int(match.group(1))] = match.group(2)
    return _Section(lines, kind, mid, codecs, fmtp)


def _join(head: list[str], sections: list[_Section]) -> str:
    return "\r\n".join(head + [line for s in sections for line in s.lines]) + "\r\n"


def _usable(section: _Section) -> list[int]:
    """The payload types of this m-line that stageswap can take."""
    accepted = VIDEO_CODECS if section.kind == "video" else AUDIO_CODECS
    usable = []
    for pt, name in section.codecs.items():
        if name.upper() not in (c.upper() for c in accepted):
            continue
        if name.upper() == "H264" and "packetization-mode=1" not in section.fmtp.get(pt, "").replace(" ", ""):
            continue  # aiortc packetises and depacketises mode 1 only
        usable.append(pt)
    return usable


def _profile_of(params: str) -> str | None:
    match = _PROFILE.search(params)
    return match.group(1) if match else None


def _aiortc_matches(profile_level_id: str) -> bool:
    """aiortc matches the (constrained) baseline profiles only; the level does not matter to it."""
    try:
        profile = parse_h264_profile_level_id(profile_level_id)[0]
    except ValueError:
        return False
    return profile in (H264Profile.PROFILE_BASELINE, H264Profile.PROFILE_CONSTRAINED_BASELINE)


def _rewrite_fmtp(line: str, pt: int, params: str) -> str:
    return f"a=fmtp:{pt} {params}" if line.startswith(f"a=fmtp:{pt} ") else line


def _without_mids(line: str, mids: set[str]) -> str:
    if not line.startswith("a=group:BUNDLE"):
        return line
    parts = line.split(" ")
    return " ".join([parts[0]] + [p for p in parts[1:] if p not in mids])
