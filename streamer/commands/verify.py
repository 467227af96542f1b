"""`stageswap verify FILE`: the recording's C2PA manifest and whether it validates, and its watermark.

Exit status 0 when the manifest validates (against the trust anchors, when there are any), 2 when
it is missing, damaged or untrusted — the report is printed first either way, so a clip re-encoded
by someone else (its manifest gone) still shows the watermark id it carries.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engines.errors import InputError
from streamer.commands import add_models_arg

if TYPE_CHECKING:
    from engines.compose.watermark import FaceFinder


def register(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser(
        "verify",
        help="check a recording's provenance manifest (C2PA) and read its invisible watermark",
        description="Reads the C2PA manifest embedded in FILE (or its sidecar FILE.c2pa), validates its signature "
        "and content hashes and, with trust anchors, the signer's certificate chain; then reads the invisible "
        "watermark from the frames. Exit 0 when the manifest validates, 2 otherwise.",
    )
    v.add_argument("file", type=Path, metavar="FILE", help="a video file (a recording, or a copy of one)")
    v.add_argument(
        "--trust",
        type=Path,
        metavar="PEM",
        help="trusted root certificate(s); default DATA_DIR/keys/trust.pem when it exists",
    )
    v.add_argument("--data-dir", metavar="DIR", help="data directory (default $STAGESWAP_DATA or ~/.local/share)")
    v.add_argument("--no-watermark", action="store_true", help="do not read the watermark")
    add_models_arg(v)  # the face detector, for a mark kept weaker on faces (hush): its reader weighs them less
    v.add_argument("--max-frames", type=int, default=300, help="frames read for the watermark (default 300)")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engines.paths import data_dir
    from streamer.governance.provenance import default_trust, stated_mark, verify_file

    if args.max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {args.max_frames}")
    trust = args.trust or default_trust(data_dir(args.data_dir))
    report = verify_file(args.file, trust)
    stated = stated_mark(report.facts) if report.facts is not None else None
    mark = None if args.no_watermark else read_watermark(args.file, args.max_frames, first=stated, models=args.models)
    if mark and mark.get("id"):
        mark["recordings"] = recordings_marked(data_dir(args.data_dir) / "recordings", mark["id"])
    if args.json:
        # the mark the manifest states (a name in MARKS, unmarked, or unknown in manifests made before they said)
        out = {"c2pa": report.to_dict(), "watermark": mark, "stated_mark": stated}
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        _print(report, mark, trust)
    if not report.ok:
        why = report.summary() if report.found else (report.error or "no C2PA manifest")
        if report.found and report.intact and report.trust_checked:
            why = f"signed by a certificate that does not chain to {trust} ({report.summary()})"
        if mark and mark.get("id"):
            why += f"; the watermark ({mark.get('reader')} reader) identifies recording/session {mark['id']}"
        raise InputError(f"{args.file}: provenance does not validate: {why}")
    return 0


def read_watermark(path: Path, max_frames: int, first: str | None = None, models: str | None = None) -> dict[str, Any]:
    """Per-frame and pooled watermark reading of the first ``max_frames`` frames of ``path``; ``first``: the mark
    (``MARKS``' name) whose reader is tried first, the one the file's manifest states. ``reader`` in the result names
    the mark whose reader found the id: marks drawn differently on one carrier (``coarse`` and ``quiet``) read alike,
    so it says which reader agrees, not which of those was drawn. A mark kept weaker on faces (hush) is read with the
    faces YuNet finds in each frame read (``models``: where to look for it first), as a stream's reader would (the
    last faces held where none is found); ``faces`` in the result says whether they were (without the model the
    reader weighs faces like the rest, and reads fewer frames of a close-up)."""
    import itertools

    from engines.compose.watermark import MARKS, READERS, Watermarker, format_id, mark_name
    from streamer.record.media import VideoReader

    # every mark stageswap writes, in ``READERS``' order: today's, then the masked, the chroma, the moving, the coarse
    # the quiet and the hush ones (their detectors read differently: issue 24); the stated one first
    configs = [MARKS[first], *(c for c in READERS if c != MARKS[first])] if first in MARKS else list(READERS)
    finder = None
    for marker in (Watermarker(config) for config in configs):
        faces = None
        if marker.config.face_gain < 1.0:
            finder = finder if finder is not None else _face_finder(models)
            faces = finder() if finder is not None else None
        with VideoReader(path) as reader:
            info = reader.info
            if min(info.width, info.height) < marker.config.min_side_px:
                return {"id": None, "error": f"frames {info.width}x{info.height} are too small to carry the watermark"}
            frames = (f.image for f in itertools.islice(reader.frames(), max_frames))
            clip = marker.read_clip(frames, faces)
        if clip.id is not None:
            break
    pooled = clip.pooled
    return {
        "id": format_id(clip.id) if clip.id is not None else None,
        "reader": mark_name(marker.config) if clip.id is not None else None,
        "frames": clip.frames,
        "frames_detected": clip.frames_detected,
        "detected_ratio": round(clip.detected_ratio, 4),
        "other_ids": {format_id(k): n for k, n in clip.ids.items() if k != clip.id},
        "pooled_confidence": round(pooled.confidence, 6) if pooled else 0.0,
        "pooled_mean_z": round(pooled.mean_z, 3) if pooled else 0.0,
        "masked": marker.config.masked,
        "carrier": marker.config.carrier,
        "motion": marker.config.motion,
        "grid_cells": marker.config.grid_cells,
        "code": marker.config.code,
        "faces": faces is not None,
    }


def _face_finder(models: str | None) -> Callable[[], FaceFinder] | None:
    """A maker of face finders for the watermark's reader (one per reading: each holds the last faces found), YuNet
    on the CPU at 640 px as the tracker runs it; None when the model is not there (the reader then reads without)."""
    from engines.errors import ModelError
    from engines.face.detect import FaceDetector, held_boxes
    from engines.runtime import load_model
    from engines.runtime import models as registry

    try:
        detector = FaceDetector(load_model(registry.resolve("yunet", models), "cpu"), input_width=640)
    except ModelError:
        return None

    return lambda: held_boxes(detector)


def recordings_marked(folder: Path, watermark_id: str) -> list[str]:
    """Ids of the recordings in ``folder`` whose sidecar names ``watermark_id`` (where a copy came from)."""
    found = []
    for sidecar in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("watermark_id") == watermark_id:
            found.append(str(data.get("id", sidecar.stem)))
    return found


def _print(report: Any, mark: dict[str, Any] | None, trust: Path | None) -> None:
    from streamer.governance.provenance import UNKNOWN_MARK, UNMARKED, stated_mark

    print(f"file: {report.path}")
    if not report.found:
        print(f"C2PA manifest: none ({report.error})")
    else:
        where = "embedded" if report.embedded else f"sidecar {report.path.with_suffix('.c2pa').name}"
        print(f"C2PA manifest: {where}, {report.label}")
        signer = report.signer
        checked = f"chain checked against {trust}" if report.trust_checked else "no trust anchors: signer not checked"
        print(f"  validation: {report.summary()} ({checked})")
        if signer:
            print(f"  signed by: {signer.get('common_name')} ({signer.get('issuer')}), {signer.get('alg')}")
        for action in report.actions:
            print(f"  action: {action.get('action')} — {action.get('digitalSourceType', '')}")
            if action.get("description"):
                print(f"    {action['description']}")
        facts = report.facts or {}
        if facts:
            print(f"  synthetic faces: {'yes' if facts.get('synthetic_faces') else 'no'}")
            for use in facts.get("identities", []):
                consent = use.get("consent", {})
                detail = ", ".join(
                    f"{k} {consent[k]}" for k in ("consent_by", "production", "valid_until") if consent.get(k)
                )
                what = "DFM model" if use.get("kind") == "dfm" else "identity"
                print(
                    f"  {what} {use.get('name')}: consent {consent.get('status')}" + (f" ({detail})" if detail else "")
                )
            print(
                f"  recording {facts.get('recording_id')}, stream {facts.get('stream')}, "
                f"operator {facts.get('operator')}, started {facts.get('created_at')}, "
                f"{facts.get('software')} {facts.get('version')}"
            )
            stated, stated_id = stated_mark(facts), facts.get("watermark_id")
            if stated == UNMARKED:
                print(f"  watermark stated: none, the {facts.get('view', 'processed')} view is unmarked")
            elif stated == UNKNOWN_MARK:
                which = f"id {stated_id}" if stated_id else "no id"
                print(f"  watermark stated: {which}, mark unknown (the manifest does not name it)")
            else:
                print(f"  watermark stated: id {stated_id}, {stated} mark")
    if mark is not None:
        if mark.get("error"):
            print(f"watermark: not read ({mark['error']})")
        elif mark.get("id"):
            print(
                f"watermark: id {mark['id']} in {mark['frames_detected']}/{mark['frames']} frames "
                f"({100 * mark['detected_ratio']:.1f}%), pooled confidence {mark['pooled_confidence']:.3f}, "
                f"found by the {mark.get('reader')} mark's reader"
            )
            expected = (report.facts or {}).get("watermark_id")
            if expected:
                print(f"  matches the manifest's watermark id: {'yes' if expected == mark['id'] else 'NO'}")
            stated = stated_mark(report.facts) if report.facts else UNKNOWN_MARK
            if stated not in (UNKNOWN_MARK, UNMARKED):
                found = "yes" if stated == mark.get("reader") else "NO"
                print(f"  the manifest's mark's reader ({stated}) finds it: {found}")
            if mark.get("recordings"):
                print(f"  recordings in this data directory with that id: {', '.join(mark['recordings'])}")
        else:
            print(f"watermark: none found in {mark['frames']} frames")
    print(f"result: {'OK' if report.ok else 'NOT VERIFIED'}")
