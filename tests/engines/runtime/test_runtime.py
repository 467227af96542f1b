"""Runtime seam: both CPU runtimes load and run the shared models; bad files give ModelError."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.errors import ModelError
from engines.face.detect import FaceDetector
from engines.face.geometry import crop
from engines.face.landmarks import MESH_SIZE, roi_from_detection
from engines.runtime import load_model


def test_onnx_session_names_inputs_and_outputs(models_dir: Path) -> None:
    s = load_model(models_dir / "yunet_s_dynamic.onnx")
    assert s.runtime == "onnxruntime-cpu"
    assert [i.name for i in s.inputs] == ["input"]
    assert {o.name for o in s.outputs} >= {"cls_8", "bbox_32", "kps_16"}
    out = s.run({"input": np.zeros((1, 3, 64, 96), np.float32)})
    assert out["cls_8"].shape == (1, (64 // 8) * (96 // 8), 1)


def test_tflite_session(models_dir: Path) -> None:
    s = load_model(models_dir / "face_landmark.tflite")
    assert s.runtime == "litert-cpu"
    assert s.inputs[0].shape == (1, 192, 192, 3)
    out = s.run({"input_1": np.zeros((1, 192, 192, 3), np.float32)})
    assert out["conv2d_21"].size == 1404 and out["conv2d_31"].size == 1


def test_facemesh_tflite_matches_reference_onnx_on_real_faces(models_dir: Path, faces: Path) -> None:
    """MediaPipe's TFLite file run by LiteRT agrees with the independent ONNX conversion of the same mesh."""
    tfl = load_model(models_dir / "face_landmark.tflite")
    onx = load_model(models_dir / "FaceMesh.onnx")
    det = FaceDetector(load_model(models_dir / "yunet_s_dynamic.onnx"))
    worst = 0.0
    for name in ("obama.jpg", "s1.jpg", "woman.png", "roop_source.jpg"):
        image = cv2.imread(str(faces / name))
        d = det.detect(image)[0]
        patch = crop(image, roi_from_detection(d).to_crop(MESH_SIZE), MESH_SIZE)
        x = (patch[:, :, ::-1].astype(np.float32) / 255.0)[None]
        a = tfl.run({"input_1": x})["conv2d_21"].reshape(468, 3)
        b = onx.run({onx.inputs[0].name: x})["conv2d_21"].reshape(468, 3)
        worst = max(worst, float(np.abs(a[:, :2] - b[:, :2]).max()))
    assert worst < 0.05  # crop pixels (of 192): the two are the same network


@pytest.mark.parametrize("filename", ["yunet_s_dynamic.onnx", "face_landmark.tflite"])
def test_truncated_model_file_is_a_model_error(tmp_path: Path, models_dir: Path, filename: str) -> None:
    bad = tmp_path / filename
    bad.write_bytes((models_dir / filename).read_bytes()[:5000])
    with pytest.raises(ModelError, match="cannot load"):
        load_model(bad)


def test_unknown_format_and_missing_file(tmp_path: Path, models_dir: Path) -> None:
    shutil.copy(models_dir / "yunet_s_dynamic.onnx", tmp_path / "model.bin")
    with pytest.raises(ModelError, match="unknown format"):
        load_model(tmp_path / "model.bin")
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "absent.onnx")
