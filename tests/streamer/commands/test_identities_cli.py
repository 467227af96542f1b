"""`stageswap identities add | list | remove` and `stageswap process --identity/--relight-target` from the
command line, with the messages users get for what they get wrong."""

from __future__ import annotations

import json
import re
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.__main__ import main
from tests.clip_helpers import lighter_clip


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_identities_add_list_remove(tmp_path: Path, faces: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    rc, out, _ = _run(capsys, "identities", "add", "s1", str(faces / "s1.jpg"), "--data-dir", data, "--unverified")
    assert rc == 0 and "enrolled 's1'" in out
    rc, out, _ = _run(capsys, "identities", "list", "--json", "--data-dir", data)
    listed = json.loads(out)
    assert rc == 0 and [i["name"] for i in listed] == ["s1"] and listed[0]["photos"] == 1
    rc, out, _ = _run(capsys, "identities", "list", "--data-dir", data)
    assert rc == 0 and out.splitlines()[1].startswith("s1 ")
    rc, out, _ = _run(capsys, "identities", "remove", "s1", "--data-dir", data)
    assert rc == 0 and "removed" in out
    rc, out, _ = _run(capsys, "identities", "list", "--data-dir", data)
    assert "no identities enrolled" in out


def test_identities_add_a_greyscale_file(tmp_path: Path, faces: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An archival scan as it comes: a one-channel JPEG and a 16-bit greyscale PNG (not a grey three-channel
    copy) are enrolled monochrome, with the warning that the swap takes the actor's skin colour."""
    import cv2

    photo = cv2.imread(str(faces / "biden.jpg"))
    assert photo is not None, faces / "biden.jpg"
    grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    files = {"biden-grey.jpg": grey, "biden-grey16.png": grey.astype(np.uint16) * 257}
    data = str(tmp_path / "data")
    for name, image in files.items():
        path = tmp_path / name
        assert cv2.imwrite(str(path), image)
        on_disk = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert on_disk is not None and on_disk.ndim == 2  # one channel on disk
        rc, out, err = _run(capsys, "identities", "add", Path(name).stem, str(path), "--data-dir", data, "--unverified")
        assert rc == 0, err
        assert "a black-and-white photo" in out and "takes the actor's skin colour" in out, out
    rc, out, _ = _run(capsys, "identities", "list", "--json", "--data-dir", data)
    assert sorted(i["name"] for i in json.loads(out)) == ["biden-grey", "biden-grey16"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["add", "pair", "obama_and_biden.jpg"], "has 3 faces"),
        (["add", "monkey", "s22.jpg"], "does not look like a human face"),
        (["add", "Bad/Name", "s1.jpg"], "invalid identity"),
        (["add", "ghost", "missing.jpg"], "cannot read photo"),
        (["add", "pair", "obama_and_biden.jpg", "--face", "9"], "there is no face #9"),
        (["remove", "nobody"], "no identity named 'nobody'"),
    ],
)
def test_identities_errors_are_one_line(
    tmp_path: Path, faces: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    args = [a if not a.endswith((".jpg", ".png")) else str(faces / a) for a in argv]
    if args[0] == "add":
        args.append("--unverified")
    rc, _, err = _run(capsys, "identities", *args, "--data-dir", str(tmp_path))
    assert rc == 2 and message in err and "Traceback" not in err
    assert err.startswith("stageswap: error:")


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


def test_process_swaps_to_a_photo_or_an_enrolled_name(
    tmp_path: Path, clips: Path, faces: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = lighter_clip(clips / "d0.mp4", tmp_path, seconds=1.0)  # 25 frames, one face: three runs of the pipeline
    data = str(tmp_path / "data")
    plain, swapped, named = tmp_path / "plain.mp4", tmp_path / "photo.mp4", tmp_path / "named.mp4"
    stats = tmp_path / "stats.json"
    assert _run(capsys, "process", "-i", str(src), "-o", str(plain), "--no-progress")[0] == 0
    rc, out, _ = _run(
        capsys,
        "process", "-i", str(src), "-o", str(swapped), "--identity", str(faces / "s1.jpg"),
        "--unverified", "--stats", str(stats), "--no-progress",
    )  # fmt: skip
    assert rc == 0 and "swap" in out
    s = json.loads(stats.read_text())
    for stage in ("swap", "relight", "blend"):
        assert s["stage_ms"][stage]["n"] == s["frames_with_face"]
    a, b = _frames(plain), _frames(swapped)
    assert len(a) == len(b)
    assert np.mean([np.abs(x.astype(int) - y.astype(int)).mean() for x, y in zip(a, b, strict=True)]) > 2.0
    _run(capsys, "identities", "add", "s1", str(faces / "s1.jpg"), "--data-dir", data, "--unverified")
    assert _run(capsys, "process", "-i", str(src), "-o", str(named), "--identity", "s1", "--data-dir", data,
                "--no-progress")[0] == 0  # fmt: skip
    c = _frames(named)
    assert np.mean([np.abs(x.astype(int) - y.astype(int)).mean() for x, y in zip(b, c, strict=True)]) < 3.0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--identity", "nobody"], "no identity named 'nobody'"),
        (["--identity", "missing.jpg"], "does not exist"),
        (["--identity", "FACES/s1.jpg"], "a photo has no consent record"),
        (["--relight-target", "direction:1,2"], "needs 3 or 4 numbers"),
        (["--relight-target", "sunset"], "--relight-target must be"),
        (["--relight-target", "sh:missing.json"], "cannot read SH file"),
        (["--relight-target", "hdri:nothere"], "no HDRI named 'nothere'"),
        (["--strength", "1.5"], "strength must be between 0 and 1"),
        (["--morph", "-1"], "morph must be between 0 and 1"),
    ],
)
def test_process_flag_errors(
    tmp_path: Path, clips: Path, faces: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = ["process", "-i", str(clips / "d0.mp4"), "-o", str(tmp_path / "o.mp4"), "--no-progress"]
    argv += ["--data-dir", str(tmp_path)]
    extra = [e.replace("FACES", str(faces)) for e in extra]
    rc, _, err = _run(capsys, *argv, *extra)
    assert rc == 2 and message in err and "Traceback" not in err


def test_process_relight_alone(tmp_path: Path, clips: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sh = tmp_path / "light.json"
    sh.write_text(json.dumps({"sh": [[1.0, 0.5, 0.2]] + [[0.0, 0.0, 0.0]] * 8}))
    out = tmp_path / "lit.mp4"
    clip = lighter_clip(clips / "d0.mp4", tmp_path, seconds=0.5)  # its first frame is what is compared
    rc, text, _ = _run(
        capsys, "process", "-i", str(clip), "-o", str(out), "--no-swap", "--relight-target", f"sh:{sh}",
        "--no-progress",
    )  # fmt: skip
    assert rc == 0 and "relight" in text
    lit, src = _frames(out)[0].astype(int), _frames(clip)[0].astype(int)
    # A red-only light: red gains on blue (BGR) where the face is, and nothing else changes much.
    assert (lit[..., 2] - lit[..., 0]).mean() > (src[..., 2] - src[..., 0]).mean() + 1.0


def test_identities_add_from_a_clip(tmp_path: Path, clips: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`identities add NAME CLIP` picks sharp, frontal frames with closed lips and turned ones from d3.mp4 and
    merges them: the identity is seen well over more of the face (its coverage, the enrollment's measure of
    how much of the face its photos show) than the best of those frames enrolled alone."""
    from engines.identity.store import IdentityStore

    data = tmp_path / "data"
    rc, out, err = _run(
        capsys, "identities", "add", "actor", str(clips / "d3.mp4"), "--data-dir", str(data), "--unverified"
    )
    assert rc == 0, err
    assert "d3.mp4: enrolling frames" in out and "frontal" in out
    store = IdentityStore(data / "identities")
    merged = store.load("actor")
    assert merged.info.photos >= 2
    line = out.split("enrolling frames ", 1)[1].splitlines()[0]
    picked = [int(i) for i in re.findall(r"(\d+) \((?:frontal|left|right)", line)]
    assert len(picked) == merged.info.photos
    from streamer.record.media import VideoReader

    images = {}
    with VideoReader(clips / "d3.mp4") as reader:
        for i, frame in enumerate(reader.frames()):
            if i in picked:
                images[i] = frame.image
            if i > max(picked):
                break
    singles = []
    for i, image in images.items():
        store.enroll(f"frame-{i}", [image], face="largest")
        singles.append(float(store.load(f"frame-{i}").coverage.mean()))
    assert float(merged.coverage.mean()) >= max(singles), (merged.coverage.mean(), singles)
    # The shape follows the texture (engines.identity.enroll.merged_shape): the lead's own mesh wherever the lead
    # saw the face, the turned frame's (brought onto it) placing the points it filled in.
    assert "merged led by the first frame" in out
    off = np.linalg.norm(merged.canonical - store.load(f"frame-{picked[0]}").canonical, axis=1)
    assert float(np.median(off)) < 0.002, float(np.median(off))
    assert any(kind in line for kind in ("left", "right")) and float(off.max()) > 0.01, (line, float(off.max()))


def test_a_clip_with_no_usable_frame_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A clip without a face gives one line saying what to use instead."""
    path = tmp_path / "grey.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for _ in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 128, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    rc, _, err = _run(capsys, "identities", "add", "nobody", str(path), "--data-dir", str(tmp_path), "--unverified")
    assert rc != 0 and "no frame of grey.mp4 shows a sharp, frontal face" in err
    assert len(err.strip().splitlines()) == 1
