"""The GPU path's model conversions agree with the runtimes that run the published files on the CPU.

MediaPipe's TFLite face mesh → torch (weights read from the .tflite) against LiteRT, and YuNet's ONNX
graph → the torch interpreter against ONNX Runtime, on real faces from the shared photos and clips. The
same converted modules run on CUDA in the GPU fallback and export to ONNX for TensorRT.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engines.errors import ModelError
from engines.face.detect import FaceDetector
from engines.face.geometry import crop
from engines.face.landmarks import MESH_SIZE, FaceMesh, roi_from_detection
from engines.runtime import load_model
from engines.runtime.convert import load_onnx_module, load_tflite_module
from engines.runtime.convert.tflite_torch import _same_pads
from engines.runtime.torch_cuda import onnx_session, tflite_session

PHOTOS = ("obama.jpg", "biden.jpg", "s1.jpg", "woman.png", "roop_source.jpg", "lin-manuel-miranda.png")


@pytest.fixture(scope="module")
def face_crops(models_dir: Path, faces: Path, clips: Path) -> np.ndarray:
    """Mesh inputs (N, 192, 192, 3) RGB 0..1: detected faces in the photos and tracked faces in a clip."""
    from engines.face.tracker import FaceTracker

    det = FaceDetector(load_model(models_dir / "yunet_s_dynamic.onnx"))
    crops = []
    for name in PHOTOS:
        image = cv2.imread(str(faces / name))
        d = det.detect(image)[0]
        crops.append(crop(image, roi_from_detection(d).to_crop(MESH_SIZE), MESH_SIZE))
    tracker = FaceTracker(det, FaceMesh(load_model(models_dir / "face_landmark.tflite")))
    cap = cv2.VideoCapture(str(clips / "d10.mp4"))
    for i in range(40):
        ok, frame = cap.read()
        if not ok:
            break
        faces_now = tracker.update(frame, i / 30)
        if i % 8 == 0 and faces_now:
            crops.append(crop(frame, faces_now[0].roi.to_crop(MESH_SIZE), MESH_SIZE))
    cap.release()
    assert len(crops) >= len(PHOTOS) + 4
    return np.stack([c[:, :, ::-1].astype(np.float32) / 255.0 for c in crops])


def test_same_padding_matches_tensorflow_rule() -> None:
    # TensorFlow: out = ceil(in / stride); total = max((out - 1) * stride + k - in, 0); the odd one goes after.
    assert _same_pads(192, 3, 2) == (0, 1)
    assert _same_pads(96, 3, 1) == (1, 1)
    assert _same_pads(7, 3, 2) == (1, 1)
    assert _same_pads(6, 2, 2) == (0, 0)
    assert _same_pads(5, 5, 1, dilation=2) == (4, 4)


def test_facemesh_torch_matches_litert_on_real_faces(models_dir: Path, face_crops: np.ndarray) -> None:
    module = load_tflite_module(models_dir / "face_landmark.tflite")
    assert module.input_name == "input_1" and module.input_shape == (1, 192, 192, 3)
    assert module.output_names == ("conv2d_21", "conv2d_31")
    litert = load_model(models_dir / "face_landmark.tflite")
    with torch.inference_mode():
        landmarks, presence = (t.numpy() for t in module(torch.from_numpy(face_crops)))  # all faces, one batch
    assert landmarks.shape == (len(face_crops), 1, 1, 1404) and presence.shape == (len(face_crops), 1, 1, 1)
    worst_px = worst_logit = 0.0
    for k in range(len(face_crops)):
        ref = litert.run({"input_1": face_crops[k : k + 1]})
        worst_px = max(worst_px, float(np.abs(ref["conv2d_21"][0] - landmarks[k]).max()))
        worst_logit = max(worst_logit, float(np.abs(ref["conv2d_31"][0] - presence[k]).max()))
        assert float(ref["conv2d_31"].ravel()[0]) > 0  # they are faces: the comparison covers real output
    assert worst_px < 1e-3  # crop pixels of 192 (measured ~1e-4: float summation order)
    assert worst_logit < 1e-3


def test_facemesh_through_torch_session_gives_litert_landmarks(models_dir: Path, faces: Path) -> None:
    """The FaceMesh engine runs unchanged on the converted model behind the Session seam."""
    det = FaceDetector(load_model(models_dir / "yunet_s_dynamic.onnx"))
    ref_mesh = FaceMesh(load_model(models_dir / "face_landmark.tflite"))
    conv_mesh = FaceMesh(tflite_session(models_dir / "face_landmark.tflite", device="cpu"))
    assert conv_mesh.session.runtime == "torch-cpu"
    image = cv2.imread(str(faces / "obama.jpg"))
    roi = roi_from_detection(det.detect(image)[0])
    a, b = ref_mesh.infer(image, roi), conv_mesh.infer(image, roi)
    assert np.abs(a.landmarks - b.landmarks).max() < 0.01  # frame pixels
    assert abs(a.presence - b.presence) < 1e-4 and a.presence > 0.9


@pytest.mark.parametrize("width", [320, 640])
def test_yunet_torch_matches_onnxruntime_on_real_photos(models_dir: Path, faces: Path, width: int) -> None:
    module = load_onnx_module(models_dir / "yunet_s_dynamic.onnx")
    ort = load_model(models_dir / "yunet_s_dynamic.onnx")
    for name in ("obama_and_biden.jpg", "t1.jpg", "woman.png"):
        image = cv2.imread(str(faces / name))
        h = -(-round(image.shape[0] * width / image.shape[1]) // 32) * 32
        blob = cv2.resize(image, (width, h)).transpose(2, 0, 1)[None].astype(np.float32)
        ref = ort.run({"input": blob})
        with torch.inference_mode():
            out = module(input=torch.from_numpy(blob))
        assert set(out) == set(ref)
        for key, value in ref.items():
            assert out[key].shape == value.shape
            assert np.abs(out[key].numpy() - value).max() < 1e-4, key


def test_detector_on_torch_session_finds_the_same_faces(models_dir: Path, faces: Path) -> None:
    cpu = FaceDetector(load_model(models_dir / "yunet_s_dynamic.onnx"))
    conv = FaceDetector(onnx_session(models_dir / "yunet_s_dynamic.onnx", device="cpu"))
    image = cv2.imread(str(faces / "t1.jpg"))  # six faces
    a, b = cpu.detect(image), conv.detect(image)
    assert len(a) == len(b) >= 5
    for da, db in zip(a, b, strict=True):
        assert np.abs(da.box - db.box).max() < 0.05 and abs(da.score - db.score) < 1e-4


def test_selfie_segmentation_torch_matches_litert_on_real_photos(models_dir: Path, faces: Path) -> None:
    """MediaPipe's person segmentation (HARD_SWISH, squeeze-excite MUL, bilinear upsampling and its custom
    transposed convolution) converts too: probabilities within 1e-3 of LiteRT's."""
    module = load_tflite_module(models_dir / "selfie_segmentation.tflite")
    litert = load_model(models_dir / "selfie_segmentation.tflite")
    worst = 0.0
    crops = []
    for name in ("obama.jpg", "t1.jpg", "woman.png"):
        image = cv2.resize(cv2.imread(str(faces / name)), (256, 256), interpolation=cv2.INTER_AREA)
        crops.append(image[:, :, ::-1].astype(np.float32) / 255.0)
    x = np.stack(crops)
    with torch.inference_mode():
        (prob,) = module(torch.from_numpy(x))
    for k in range(len(x)):
        ref = litert.run({"input_1": x[k : k + 1]})["activation_10"]
        assert 0.2 < float(ref.mean()) < 0.9  # a person fills part of each photo: real output, not all 0 or 1
        worst = max(worst, float(np.abs(ref[0] - prob[k].numpy()).max()))
    assert worst < 1e-3


def test_unsupported_tflite_operator_is_named(models_dir: Path) -> None:
    with pytest.raises(ModelError, match="uses operator RESHAPE, which the converter does not support"):
        load_tflite_module(models_dir / "face_detection_short_range.tflite")


def test_unsupported_onnx_operators_are_listed(models_dir: Path) -> None:
    with pytest.raises(ModelError, match=r"operator\(s\) AveragePool, which.*build_engines"):
        load_onnx_module(models_dir / "scrfd_2.5g_bnkps.onnx")


@pytest.mark.parametrize("filename", ["face_landmark.tflite", "yunet_s_dynamic.onnx"])
def test_truncated_or_missing_file_is_a_model_error(tmp_path: Path, models_dir: Path, filename: str) -> None:
    bad = tmp_path / filename
    bad.write_bytes((models_dir / filename).read_bytes()[:4000])
    loader = load_tflite_module if filename.endswith(".tflite") else load_onnx_module
    with pytest.raises(ModelError, match="cannot (read|parse)"):
        loader(bad)
    with pytest.raises(ModelError, match="cannot read"):
        loader(tmp_path / "absent" / filename)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space_slice_gemm_flatten_match_onnxruntime(tmp_path: Path, mode: str) -> None:
    """The operators a trained DFM uses (engines.train.export), in both DepthToSpace orders and with a
    negative Slice end, against ONNX Runtime."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("DepthToSpace", ["x"], ["d"], blocksize=2, mode=mode),
        helper.make_node("Slice", ["d", "starts", "ends", "axes"], ["s"]),
        helper.make_node("LeakyRelu", ["s"], ["l"], alpha=0.1),
        helper.make_node("Flatten", ["l"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1, alpha=0.5, beta=2.0),
    ]
    inits = [
        numpy_helper.from_array(np.array([0, 1], np.int64), "starts"),
        numpy_helper.from_array(np.array([1, -1], np.int64), "ends"),
        numpy_helper.from_array(np.array([1, 2], np.int64), "axes"),
        numpy_helper.from_array(rng.standard_normal((6, 8)).astype(np.float32), "w"),  # (2,1,2,4) flattened
        numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "b"),
    ]
    graph = helper.make_graph(
        nodes,
        "ops",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    path = tmp_path / "ops.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    x = rng.standard_normal((2, 8, 2, 2)).astype(np.float32)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = load_onnx_module(path)(x=torch.from_numpy(x))["y"].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
def test_a_neural_renderers_graph_matches_onnxruntime(tmp_path: Path, batch: int) -> None:
    """The operators a neural renderer's export uses (``engines.train.neural_render.export_onnx``: GridSample over
    its texture, Expand of a computed shape through Equal/Where/ConstantOfShape, Mul, Sub, Clip, bilinear Resize),
    in its own exported graph with random weights, against ONNX Runtime: what lets the GPU fallback run dnr models."""
    import onnx
    import onnxruntime as ort

    from engines.train.neural_render import DnrConfig, NeuralRenderer, export_onnx

    torch.manual_seed(0)
    net = NeuralRenderer(DnrConfig(resolution=32, texture_px=32, channels=4, levels=3, dims=8))
    with torch.no_grad():
        net.out.weight.normal_(0.0, 0.2)  # it starts at zero: the U-Net must show in the output
    path = tmp_path / "dnr.onnx"
    export_onnx(net, path)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"GridSample", "Expand", "Where", "ConstantOfShape", "Clip", "Resize"} <= ops
    rng = np.random.default_rng(5)
    feeds = {
        "uv": rng.uniform(0.0, 1.0, (batch, 32, 32, 2)).astype(np.float32),
        "covered": (rng.uniform(0.0, 1.0, (batch, 32, 32, 1)) > 0.3).astype(np.float32),
    }
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    got = load_onnx_module(path)(**{k: torch.from_numpy(v) for k, v in feeds.items()})["face"].numpy()
    assert expected.std() > 0.05
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
