"""What to do to each frame: the settings of a stream, as one frozen, validated value.

The same object comes from the CLI flags of `stageswap process`, the body of
``PATCH /api/streams/{stream}`` and the WebSocket control messages; ``apply_patch`` validates a JSON
patch against it and returns a new value (the worker picks it up from the next frame). Unknown keys
and out-of-range values are refused with the reason, never ignored.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from engines.errors import InputError

RelightMode = Literal["match", "sh", "direction", "hdri"]
RELIGHT_MODES: tuple[str, ...] = ("match", "sh", "direction", "hdri")


@dataclass(frozen=True)
class RelightTarget:
    """The light the face is relit to.

    - ``match``: the light on the actor in this frame (the default for swaps);
    - ``sh``: 27 second-order spherical-harmonics coefficients (9 per colour channel, R then G then B);
    - ``direction``: a key light as an operator sets a lamp: unit ``direction`` toward the light in camera
      coordinates (x right, y up, z toward the camera), ``intensity``, ``colour`` (RGB 0..1) and an
      ``ambient`` fill;
    - ``hdri``: an equirectangular image of the stage or LED content (a file in the data directory's
      ``hdri/`` folder), projected to spherical harmonics.
    """

    mode: RelightMode = "match"
    sh: tuple[float, ...] | None = None
    direction: tuple[float, float, float] = (0.0, 0.0, 1.0)
    intensity: float = 1.0
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ambient: float = 0.35
    hdri: str | None = None


@dataclass(frozen=True)
class ColourSettings:
    """The input's colour space, declared (``engines.colour``): log or ACES footage is converted to
    scene-linear light for the engines and back. ``input`` None: the picture is display-referred
    Rec.709/sRGB, as the engines take it, and nothing is converted (the default)."""

    input: str | None = None
    """An OCIO colour space name, e.g. ``ARRI LogC4``, ``ACEScct``, ``S-Log3 S-Gamut3.Cine``, ``V-Log V-Gamut``."""
    output: str | None = None
    """The space the output is encoded in; None: the input's (a log camera gives a log recording)."""
    config: str = "studio-config-latest"
    """OCIO's built-in config the names come from (``studio-config-latest`` or ``cg-config-latest``)."""
    monitor: str | None = None
    """Live streams: the display WHEP monitors show the footage on, e.g. ``sRGB - Display``; None: monitors show
    the output space as it is (log looks flat). Recordings and NDI always carry the output space."""
    monitor_view: str | None = None
    """The view on that display, e.g. ``ACES 2.0 - SDR 100 nits (Rec.709)``; None: the display's default."""

    @property
    def output_space(self) -> str | None:
        return self.output or self.input


@dataclass(frozen=True)
class NdiOutputs:
    """Which of a live stream's views are published as NDI sources (the service's ``streamer.live.ndi``)."""

    processed: bool = False
    source: bool = False


POSITION_MATCHES: tuple[str, ...] = ("largest", "leftmost", "rightmost", "any")
"""What a target rule can match besides an enrolled performer and ``id:N``: the largest face, the leftmost or
rightmost face (by its centre), or ``any`` face no earlier rule took."""
MAX_TARGETS = 16


@dataclass(frozen=True)
class TargetRule:
    """One rule of ``ProcessSettings.targets``: the face ``match`` picks gets ``identity`` (None: left alone).

    ``match`` is an enrolled performer's name (``engines.identity.performers``: re-identified by face, also after
    leaving the frame), ``id:N`` (the tracked face with that id, as the monitor shows it), or one of
    ``POSITION_MATCHES``. Each rule takes at most one face (``any``: every face left), in order."""

    match: str
    identity: str | None = None

    @property
    def face_id(self) -> int | None:
        """N for ``id:N``; None for other matches."""
        return int(self.match[3:]) if self.match.startswith("id:") else None

    @property
    def performer(self) -> str | None:
        """The performer's name when the rule matches one; None for ``id:N`` and positions."""
        return None if self.face_id is not None or self.match in POSITION_MATCHES else self.match


@dataclass(frozen=True)
class ProcessSettings:
    swap: bool = True
    """Swap faces when an identity is selected."""
    identity: str | None = None
    """Name of the enrolled identity to swap in; None: no swap."""
    relight: bool = True
    relight_target: RelightTarget = field(default_factory=RelightTarget)
    strength: float = 1.0
    """0..1: how much of the processed face replaces the original."""
    morph: float = 1.0
    """0..1: geometry morph of the face shape toward the identity's (0: the actor's face shape; 1: the
    identity's proportions and eye, lid and lip shapes, opened as the actor opens them)."""
    keep_eyes: bool = True
    """Keep the actor's eyes (gaze, blinks)."""
    keep_mouth: bool = True
    """Keep the actor's mouth interior (teeth, tongue)."""
    keep_glasses: bool = True
    """Keep the actor's glasses in front of a swapped face, where the face wears them (``engines.face.glasses``):
    the frame's rims and bridge stay the actor's pixels, the swapped face shows through the lenses."""
    debug_overlay: bool = False
    watermark: bool = True
    """Mark the processed view with the invisible watermark (``engines.compose.watermark``) when the processor
    has one; false: this stream's processed frames go out unmarked (the source view never is marked)."""
    audio: bool = True
    """Carry the stream's sound (the publisher's, the input's) to monitors and recordings; false: silent."""
    swap_model: str = "mesh"
    """What swaps the face: ``"mesh"`` (the built-in mesh swap of the enrolled ``identity``) or the name of a
    registered model (``stageswap models add``): an inswapper-style model swaps to the enrolled ``identity``,
    a DFM to the identity it was trained on (``identity`` is not used)."""
    colour: ColourSettings = field(default_factory=ColourSettings)
    """The footage's colour space (``engines.colour``); default: display-referred, nothing converted."""
    ndi: NdiOutputs = field(default_factory=NdiOutputs)
    """Live streams only: publish the processed and/or source view over NDI (``process`` ignores it)."""
    targets: tuple[TargetRule, ...] = ()
    """Who gets swapped, rule by rule (``TargetRule``): each face gets the identity of the first rule that picks
    it, and faces no rule picks are left untouched (not swapped, not relit). Empty (the default): every face
    gets ``identity``."""

    @property
    def target_identities(self) -> tuple[str, ...]:
        """The identities the rules put on faces (each once, in rule order)."""
        return tuple(dict.fromkeys(r.identity for r in self.targets if r.identity is not None))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{key} must be true or false, got {value!r}")
    return value


def _unit(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{key} must be a number between 0 and 1, got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise InputError(f"{key} must be between 0 and 1, got {value!r}")
    return float(value)


def _number(key: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{key} must be a number, got {value!r}")
    if not lo <= float(value) <= hi:
        raise InputError(f"{key} must be between {lo:g} and {hi:g}, got {value!r}")
    return float(value)


def _vector(key: str, value: Any, n: int, lo: float, hi: float) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or len(value) != n:
        raise InputError(f"{key} must be a list of {n} numbers, got {value!r}")
    return tuple(_number(f"{key}[{i}]", v, lo, hi) for i, v in enumerate(value))


def _relight_target(current: RelightTarget, patch: Any) -> RelightTarget:
    if not isinstance(patch, Mapping):
        raise InputError(f"relight_target must be an object, got {patch!r}")
    changes: dict[str, Any] = {}
    for key, value in patch.items():
        k = f"relight_target.{key}"
        if key == "mode":
            if value not in RELIGHT_MODES:
                raise InputError(f"{k} must be one of {', '.join(RELIGHT_MODES)}, got {value!r}")
            changes[key] = value
        elif key == "sh":
            changes[key] = None if value is None else _vector(k, value, 27, -10.0, 10.0)
        elif key == "direction":
            vec = _vector(k, value, 3, -1e3, 1e3)
            norm = math.sqrt(sum(v * v for v in vec))
            if norm < 1e-6:
                raise InputError(f"{k} must not be the zero vector")
            changes[key] = tuple(v / norm for v in vec)
        elif key == "intensity":
            changes[key] = _number(k, value, 0.0, 10.0)
        elif key == "colour":
            changes[key] = _vector(k, value, 3, 0.0, 1.0)
        elif key == "ambient":
            changes[key] = _number(k, value, 0.0, 2.0)
        elif key == "hdri":
            if value is not None and (not isinstance(value, str) or not value):
                raise InputError(f"{k} must be the name of an HDRI image or null, got {value!r}")
            changes[key] = value
        else:
            raise InputError(f"unknown setting {k!r}")
    target = dataclasses.replace(current, **changes)
    if target.mode == "sh" and target.sh is None:
        raise InputError("relight_target.mode 'sh' needs relight_target.sh (27 coefficients)")
    if target.mode == "hdri" and not target.hdri:
        raise InputError("relight_target.mode 'hdri' needs relight_target.hdri (an image name)")
    return target


def _colour(current: ColourSettings, patch: Any) -> ColourSettings:
    if not isinstance(patch, Mapping):
        raise InputError(f'colour must be an object like {{"input": "ARRI LogC4"}}, got {patch!r}')
    changes: dict[str, Any] = {}
    for key, value in patch.items():
        if key == "config":
            from engines.colour import BUILTIN_CONFIGS

            if value not in BUILTIN_CONFIGS:
                raise InputError(f"colour.config must be one of {', '.join(BUILTIN_CONFIGS)}, got {value!r}")
            changes[key] = value
        elif key in ("input", "output", "monitor", "monitor_view"):
            if value is not None and not isinstance(value, str):
                raise InputError(f"colour.{key} must be a name or null, got {value!r}")
            changes[key] = value
        else:
            raise InputError(
                f"unknown setting 'colour.{key}' (colour.input, colour.output, colour.monitor, colour.monitor_view, "
                "colour.config)"
            )
    colour = dataclasses.replace(current, **changes)
    from engines.colour import check_space

    for key in ("input", "output"):
        name = getattr(colour, key)
        if name is not None:
            check_space(name, f"colour.{key}", colour.config)
    if colour.input is None and (colour.output is not None or colour.monitor is not None):
        raise InputError("colour.output and colour.monitor need colour.input (the space the footage is in)")
    if colour.monitor_view is not None and colour.monitor is None:
        if "monitor_view" in patch:
            raise InputError("colour.monitor_view needs colour.monitor (the display)")
        colour = dataclasses.replace(colour, monitor_view=None)  # monitors off: their view goes with them
    if colour.monitor is not None and colour.output_space is not None:
        from engines.colour import monitor_view

        monitor_view(colour.output_space, colour.monitor, colour.monitor_view, colour.config)
    return colour


def _target_rule(i: int, value: Any) -> TargetRule:
    from engines.paths import check_name

    where = f"targets[{i}]"
    if not isinstance(value, Mapping):
        raise InputError(f'{where} must be an object like {{"match": "alice", "identity": "bob"}}, got {value!r}')
    unknown = sorted(set(value) - {"match", "identity"})
    if unknown:
        raise InputError(f"unknown setting '{where}.{unknown[0]}' ({where}.match, {where}.identity)")
    if "match" not in value:
        raise InputError(f"{where} needs 'match': a performer's name, 'id:N' or one of {', '.join(POSITION_MATCHES)}")
    match, identity = value["match"], value.get("identity")
    if not isinstance(match, str) or not match:
        raise InputError(f"{where}.match must be a performer's name, 'id:N' or one of {', '.join(POSITION_MATCHES)}")
    if match.startswith("id:"):
        number = match[3:]
        if not number.isdigit() or int(number) < 1 or len(number) > 9:
            raise InputError(f"{where}.match {match!r}: a face id is 'id:' and a number from 1 (as the monitor shows)")
    elif match not in POSITION_MATCHES:
        check_name(match, f"{where}.match (a performer)")
    if identity is not None:
        if not isinstance(identity, str):
            raise InputError(f"{where}.identity must be an enrolled identity's name, or null to leave the face alone")
        check_name(identity, f"{where}.identity")
    return TargetRule(match, identity)


def parse_targets(value: Any) -> tuple[TargetRule, ...]:
    """The ``targets`` setting from JSON (a list of rules, or null for none), checked; InputError naming the rule."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise InputError(
            f'targets must be a list of rules like [{{"match": "alice", "identity": "bob"}}], got {value!r}'
        )
    if len(value) > MAX_TARGETS:
        raise InputError(f"at most {MAX_TARGETS} target rules, got {len(value)}")
    rules = tuple(_target_rule(i, v) for i, v in enumerate(value))
    seen: dict[str, int] = {}
    for i, rule in enumerate(rules):
        if rule.match in seen and rule.match not in ("largest", "leftmost", "rightmost"):
            raise InputError(f"targets[{i}] matches {rule.match!r} again (targets[{seen[rule.match]}] does already)")
        seen.setdefault(rule.match, i)
    for i, rule in enumerate(rules[:-1]):
        if rule.match == "any":
            raise InputError(f"targets[{i}] matches 'any': every face is taken, so the rules after it never apply")
    return rules


def apply_patch(current: ProcessSettings, patch: Any) -> ProcessSettings:
    """A new ProcessSettings with ``patch`` (a JSON object) applied; raises InputError naming the bad key."""
    if not isinstance(patch, Mapping):
        raise InputError("settings must be a JSON object")
    changes: dict[str, Any] = {}
    for key, value in patch.items():
        if key in ("swap", "relight", "keep_eyes", "keep_mouth", "keep_glasses", "debug_overlay", "audio", "watermark"):
            changes[key] = _bool(key, value)
        elif key in ("strength", "morph"):
            changes[key] = _unit(key, value)
        elif key == "identity":
            if value is not None:
                from engines.paths import check_name

                check_name(value, "identity")
            changes[key] = value
        elif key == "relight_target":
            changes[key] = _relight_target(current.relight_target, value)
        elif key == "colour":
            changes[key] = _colour(current.colour, value)
        elif key == "ndi":
            if not isinstance(value, Mapping):
                raise InputError(f'ndi must be an object like {{"processed": true}}, got {value!r}')
            outputs: dict[str, bool] = {}
            for view, on in value.items():
                if view not in ("processed", "source"):
                    raise InputError(f"unknown setting 'ndi.{view}' (ndi.processed, ndi.source)")
                outputs[view] = _bool(f"ndi.{view}", on)
            changes[key] = dataclasses.replace(current.ndi, **outputs)
        elif key == "swap_model":
            from engines.paths import check_name

            if not isinstance(value, str):
                raise InputError(f"swap_model must be 'mesh' or a registered model's name, got {value!r}")
            changes[key] = check_name(value, "swap_model")
        elif key == "targets":
            changes[key] = parse_targets(value)
        else:
            raise InputError(f"unknown setting {key!r}")
    return dataclasses.replace(current, **changes)
