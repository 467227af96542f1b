"""Facesets from the shared clips (engines.train.faceset): what is kept, where the masks are, what is refused.

Frames are tracked with the real tracker; a few are altered the way footage goes wrong (a black frame, a
frozen frame, a frame out of focus, a face half out of the picture, a crowd) so every refusal is seen
with its reason on real faces.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from engines.errors import InputError
from engines.face.topology import FACE_OVAL, LEFT_EYE, LIPS_OUTER
from engines.swap.align import align_mesh
from engines.train.faceset import (
    FACES_DIR,
    INDEX_FILE,
    MASK_EYES,
    MASK_FACE,
    MASK_MOUTH,
    MASKS_DIR,
    SHEET_FILE,
    FacesetConfig,
    FacesetWriter,
    SourceFrame,
    extract,
    face_masks,
    load_faceset,
)
from tests.face_helpers import clip_frames

RES = 128


def _frames(clips: Path) -> list[SourceFrame]:
    """d3.mp4's first 16 frames, a frozen copy of frame 8 after it, 3 frames blurred, a black frame."""
    raw = clip_frames(clips / "d3.mp4", 16)
    out = [SourceFrame(img, "d3.mp4", i, t) for i, (img, t) in enumerate(raw)]
    out.insert(9, dataclasses.replace(out[8], index=8))  # a frozen frame: the same picture again
    for k in (13, 14, 15):
        out[k] = dataclasses.replace(out[k], image=cv2.GaussianBlur(out[k].image, (0, 0), 6))
    black = SourceFrame(np.zeros_like(raw[0][0]), "black.png", 0, 0.0, still=True)
    return [*out, black]


@pytest.fixture(scope="module")
def tracked(tracker_module: Any, clips: Path) -> list[tuple[SourceFrame, Sequence[Any]]]:
    frames = _frames(clips)
    out = []
    last = ""
    for f in frames:
        if f.still or f.source != last:
            tracker_module.reset()
        last = f.source
        out.append((f, tracker_module.update(f.image, f.time_s)))
    return out


@pytest.fixture(scope="module")
def tracker_module(models_dir: Path) -> Any:
    from streamer.commands.faceset import build_tracker

    return build_tracker(str(models_dir))


@pytest.fixture(scope="module")
def faceset(tracked: list[tuple[SourceFrame, Sequence[Any]]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fs") / "d3"
    lookup = {id(f): faces for f, faces in tracked}
    extract([f for f, _ in tracked], lambda f: lookup[id(f)], out, FacesetConfig(resolution=RES))
    return out


def test_counts_and_files(faceset: Path) -> None:
    index = json.loads((faceset / INDEX_FILE).read_text())
    assert index["frames"] == 18
    assert index["refused"]["no face"] == 1  # the black frame
    assert index["refused"]["duplicate"] == 1  # the frozen frame
    assert index["refused"]["blur"] == 3  # the three frames out of focus, judged against the clip's median
    assert index["kept"] == 13 == len(index["faces"])
    assert index["kept"] + sum(index["refused"].values()) == index["frames"]
    assert sorted(p.name for p in (faceset / FACES_DIR).iterdir()) == [f["file"] for f in index["faces"]]
    assert sorted(p.name for p in (faceset / MASKS_DIR).iterdir()) == [f["file"] for f in index["faces"]]
    assert [f["frame"] for f in index["faces"]] == [*range(12), 15]  # 12-14 blurred
    sheet = cv2.imread(str(faceset / SHEET_FILE))
    assert sheet is not None and sheet.shape[1] >= 8 * 100


def test_crops_and_masks_sit_on_the_mesh(faceset: Path, tracked: list[tuple[SourceFrame, Sequence[Any]]]) -> None:
    """Each kept crop is the frame under the mesh's whole-face alignment, and its face-oval mask's edge lies
    within 1 px of the tracker's face outline mapped into the crop (computed here independently)."""
    fs = load_faceset(faceset)
    first = [(f, faces) for k, (f, faces) in enumerate(tracked) if f.source == "d3.mp4" and k != 9]  # not the copy
    by_frame = {f.index: faces for f, faces in first}
    frames = {f.index: f.image for f, _ in first}
    for rec, crop, mask in zip(fs.records, fs.images, fs.masks, strict=True):
        raw = np.asarray(by_frame[rec.frame][0].raw_landmarks, np.float64)
        alignment = align_mesh(raw, RES, fs.coverage)
        expected_crop = alignment.crop(frames[rec.frame])
        assert np.abs(crop.astype(int) - expected_crop.astype(int)).max() <= 1  # PNG is lossless
        outline = alignment.to_crop(raw[list(FACE_OVAL), :2]).astype(np.float32)
        boundary = _boundary_points(mask[..., MASK_FACE] >= 128)
        assert len(boundary) > 100
        dist = [abs(cv2.pointPolygonTest(outline, (float(x), float(y)), True)) for x, y in boundary]
        assert max(dist) <= 1.0, f"{rec.file}: the mask's edge runs {max(dist):.2f} px from the mesh outline"
        along = _densify(outline, step=0.5)
        gap = np.sqrt(((along[:, None, :] - boundary[None, :, :]) ** 2).sum(-1)).min(axis=1)
        assert gap.max() <= 1.0, f"{rec.file}: the mesh outline runs {gap.max():.2f} px from the mask's edge"
        # Eyes and mouth are their own channels, inside the face.
        for channel, contour in ((MASK_EYES, LEFT_EYE), (MASK_MOUTH, LIPS_OUTER)):
            centre = alignment.to_crop(raw[list(contour), :2]).mean(axis=0).round().astype(int)
            assert mask[centre[1], centre[0], channel] == 255
        assert not ((mask[..., MASK_EYES] >= 128) & (mask[..., MASK_FACE] < 128)).any()


def _boundary_points(inside: np.ndarray) -> np.ndarray:
    """(M, 2) x, y: the midpoints between every pixel inside the mask and a 4-neighbour outside it."""
    out = []
    for dy, dx in ((0, 1), (1, 0)):
        a = inside[: inside.shape[0] - dy, : inside.shape[1] - dx]
        b = inside[dy:, dx:]
        ys, xs = np.nonzero(a != b)
        out.append(np.stack([xs + dx / 2, ys + dy / 2], axis=1))
    return np.concatenate(out).astype(np.float64)


def _densify(poly: np.ndarray, step: float) -> np.ndarray:
    """Points every ``step`` px along a closed polygon."""
    pts = []
    for a, b in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / step)))
        pts.append(a + (b - a) * np.arange(n)[:, None] / n)
    return np.concatenate(pts).astype(np.float64)


def test_masks_follow_subpixel_landmarks() -> None:
    """The mask moves with the landmarks at sub-pixel precision (a quarter-pixel shift changes its edge)."""
    pts = np.zeros((468, 2), np.float32)
    theta = np.linspace(0, 2 * np.pi, len(FACE_OVAL), endpoint=False)
    pts[list(FACE_OVAL)] = np.stack([32 + 20 * np.cos(theta), 32 + 24 * np.sin(theta)], axis=1)
    a = face_masks(pts, 64)[..., MASK_FACE].astype(float)
    b = face_masks(pts + np.float32([0.25, 0.0]), 64)[..., MASK_FACE].astype(float)
    c = face_masks(pts + np.float32([1.0, 0.0]), 64)[..., MASK_FACE].astype(float)
    assert (a >= 128).sum() > 1000
    # Area moved: a quarter pixel along a 48 px tall edge pair is ~2 x 48 x 0.25 px of area, 255 levels each.
    moved_b, moved_c = np.abs(a - b).sum() / 255, np.abs(a - c).sum() / 255
    assert 0.6 * 24 < moved_b < 1.4 * 24 and 0.8 * 96 < moved_c < 1.2 * 96


def _judge(frame: SourceFrame, faces: Sequence[Any], tmp: Path, **kw: Any) -> str | None:
    writer = FacesetWriter(tmp, FacesetConfig(resolution=64))
    try:
        return writer.add(frame, faces, **kw)
    finally:
        writer.abort()


def test_refusals_with_reasons(
    tracked: list[tuple[SourceFrame, Sequence[Any]]], tracker_module: Any, clips: Path, tmp_path: Path
) -> None:
    frame, faces = tracked[0]
    face = faces[0]
    assert _judge(frame, faces, tmp_path / "a") is None
    turned = dataclasses.replace(face, pose_deg=(72.0, 0.0, 0.0))
    assert _judge(frame, [turned], tmp_path / "b") == "extreme pose"
    hidden = dataclasses.replace(face, presence=0.5)
    assert _judge(frame, [hidden], tmp_path / "c") == "occluded"
    # The face half out of the picture: the frame cut through the middle of the face.
    cx = int(np.asarray(face.raw_landmarks)[:, 0].mean())
    cut = np.ascontiguousarray(frame.image[:, cx:])
    tracker_module.reset()
    cut_faces = tracker_module.update(cut, 0.0)
    cut_frame = SourceFrame(cut, "cut.png", 0, 0.0, still=True)
    assert _judge(cut_frame, cut_faces, tmp_path / "d") in ("out of frame", "no face")
    shifted = dataclasses.replace(
        face, raw_landmarks=np.asarray(face.raw_landmarks) - np.float32([cx, 0.0, 0.0])
    )  # the same mesh, moved as the cut moved the picture
    assert _judge(cut_frame, [shifted], tmp_path / "e") == "out of frame"
    # A crowd: several faces are refused unless --face picks one.
    crowd = cv2.imread(str(clips.parent / "faces" / "t1.jpg"))
    tracker_module.reset()
    crowd_faces = tracker_module.update(crowd, 0.0)
    assert len(crowd_faces) >= 2
    crowd_frame = SourceFrame(crowd, "t1.jpg", 0, 0.0, still=True)
    assert _judge(crowd_frame, crowd_faces, tmp_path / "f") == "several faces"
    assert _judge(crowd_frame, crowd_faces, tmp_path / "g", face="largest") is None


def test_loading_skips_deleted_faces_and_never_upsamples(faceset: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(faceset, copy)
    files = sorted((copy / FACES_DIR).iterdir())
    files[0].unlink()  # a user deleting a face they do not want
    fs = load_faceset(copy, 64)
    assert len(fs) == len(files) - 1 and fs.images.shape[1:] == (64, 64, 3)
    assert fs.records[0].file == files[1].name
    # Landmarks scale with the resolution (pixel centres kept).
    full = load_faceset(copy)
    assert np.allclose((full.landmarks + 0.5) * 0.5 - 0.5, fs.landmarks, atol=1e-4)
    with pytest.raises(InputError, match=r"extracted at 128 px, smaller than the training resolution 256"):
        load_faceset(copy, 256)
    for f in files[1:]:
        f.unlink()
    with pytest.raises(InputError, match=r"has no faces \(18 frames, refused: 1 no face, 1 duplicate, 3 blur\)"):
        load_faceset(copy, 64)
    with pytest.raises(InputError, match="is not a faceset"):
        load_faceset(tmp_path, 64)


def test_existing_faceset_is_not_overwritten(faceset: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="holds a faceset already"):
        FacesetWriter(faceset, FacesetConfig(resolution=RES))
    (tmp_path / "mine.txt").write_text("a user's file")
    with pytest.raises(InputError, match="a folder with other files in it"):
        FacesetWriter(tmp_path, FacesetConfig(resolution=RES))


def test_a_failed_extraction_keeps_the_old_faceset(
    faceset: Path, tracked: list[tuple[SourceFrame, Sequence[Any]]], tmp_path: Path
) -> None:
    """--replace with a clip that breaks half way: the faceset that was there is intact, no half-written one."""
    import shutil

    copy = tmp_path / "fs"
    shutil.copytree(faceset, copy)
    before = len(load_faceset(copy))

    def frames() -> Iterator[SourceFrame]:
        for f, _ in tracked[:3]:
            yield f
        raise InputError("input broken.mp4 is damaged")

    lookup = {id(f): faces for f, faces in tracked}
    with pytest.raises(InputError, match="damaged"):
        extract(frames(), lambda f: lookup[id(f)], copy, FacesetConfig(resolution=RES), replace=True)
    assert len(load_faceset(copy)) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fs"]


def test_command_line(
    tmp_path: Path, faces: Path, models_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stageswap faceset extract` on photos (a crowd needs --face), and one-line errors for bad inputs."""
    from streamer.__main__ import main

    monkeypatch.setenv("STAGESWAP_MODELS", str(models_dir))
    out = tmp_path / "fs"
    photos = [str(faces / "obama.jpg"), str(faces / "obama_and_biden.jpg")]
    assert main(["faceset", "extract", *photos, "--out", str(out), "--resolution", "64"]) == 0
    assert "1 of 2 frames kept; refused: 1 several faces" in capsys.readouterr().out
    assert main(["faceset", "extract", *photos, "--out", str(out), "--resolution", "64"]) == 2
    assert "holds a faceset already" in capsys.readouterr().err
    args = ["--out", str(out), "--replace", "--resolution", "64", "--face", "largest"]
    assert main(["faceset", "extract", *photos, *args]) == 0
    assert "2 of 2 frames kept" in capsys.readouterr().out
    for bad, why in (
        (str(tmp_path / "absent.mp4"), "does not exist"),
        (str(tmp_path), "is not a file"),
        (str(Path(__file__)), "cannot be read as video"),
    ):
        assert main(["faceset", "extract", bad, *args]) == 2
        err = capsys.readouterr().err.strip()
        assert why in err and "\n" not in err, err
    assert main(["faceset", "extract", photos[0], "--out", str(out), "--replace", "--face", "left"]) == 2
    assert "--face must be 'largest' or a number" in capsys.readouterr().err
