"""Bringing your own models: `stageswap models add` detects the kind, checks the file, records it, or refuses
it with the reason and stores nothing. The files are generated here with the real signatures
(``tests.onnx_models``); refusals are also checked on real files that are not swap models (the shared
detector, an evaluation-only 128-d recogniser, a photo)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engines.errors import InputError, ModelError
from engines.swap.model_inspect import detect_kind
from engines.swap.user_models import MESH, UserModel, UserModelStore, is_research_only
from streamer.__main__ import main
from tests import onnx_models as om


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("model-files")
    rng = np.random.default_rng(0)
    emap = om.random_emap()
    half = np.zeros((224, 224), np.float32)
    half[:, :112] = 1.0
    return {
        "inswapper": om.inswapper(d / "inswapper_128.onnx", rng.standard_normal((512, 3)).astype(np.float32), emap),
        "dfm": om.dfm(d / "Jane_Doe.dfm", 224, celeb_mask=half),
        "dfm_plain": om.dfm(d / "plain.dfm", 160, morph=False),
        "arcface": om.arcface(d / "w600k.onnx"),
        "arcface_nhwc": om.arcface(d / "nhwc.onnx", nhwc=True),
        # Resolutions that disagree with the kind:
        "inswapper_256": om.inswapper(d / "inswapper_256.onnx", np.zeros((512, 3), np.float32), emap, size=256),
        "inswapper_out64": om.inswapper(d / "out64.onnx", np.zeros((512, 3), np.float32), emap, output_size=64),
        "dfm_out112": om.dfm(d / "mixed.dfm", 224, output_size=112),
        "arcface_128": om.arcface(d / "arc128.onnx", size=128),
        "arcface_256d": om.arcface(d / "arc256d.onnx", dim=256),
        "no_emap": om.inswapper(d / "no_emap.onnx", np.zeros((512, 3), np.float32), np.zeros((256, 256), np.float32)),
    }


def _nothing_stored(data: Path) -> None:
    assert not (data / "models.json").exists()
    assert not any((data / "models").glob("*")) if (data / "models").exists() else True


def test_each_kind_is_detected_checked_and_registered(files: dict[str, Path], tmp_path: Path) -> None:
    store = UserModelStore(tmp_path / "data")
    swapper = store.add(files["inswapper"], licence="CC BY-NC 4.0")
    dfm = store.add(files["dfm"], kind="dfm", licence="MIT", name="jane", unverified=True)
    plain = store.add(files["dfm_plain"], coverage=1.8, unverified=True)
    arc = store.add(files["arcface"])
    nhwc = store.add(files["arcface_nhwc"], name="arc-nhwc")
    assert (swapper.name, swapper.kind, swapper.resolution) == ("inswapper_128", "inswapper", 128)
    assert swapper.options["emap"] == "emap"
    assert (dfm.kind, dfm.resolution, dfm.options["has_morph"], dfm.options["coverage"]) == ("dfm", 224, True, 2.2)
    assert (plain.name, plain.resolution, plain.options["has_morph"], plain.options["coverage"]) == (
        "plain",
        160,
        False,
        1.8,
    )
    assert (arc.kind, arc.options["layout"], arc.options["normalised_in_graph"]) == ("arcface", "nchw", False)
    assert nhwc.options["layout"] == "nhwc"
    # The copy is the file, byte for byte, and its sha256 is recorded.
    import hashlib

    for model, src in ((swapper, files["inswapper"]), (dfm, files["dfm"])):
        stored = store.path(model)
        assert stored.parent == tmp_path / "data" / "models" and stored.name == f"{model.name}.onnx"
        assert stored.read_bytes() == src.read_bytes()
        assert model.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    index = json.loads((tmp_path / "data" / "models.json").read_text())
    assert [m["name"] for m in index["models"]] == ["inswapper_128", "jane", "plain", "w600k", "arc-nhwc"]
    # A second store (another process) reads the same registry.
    again = UserModelStore(tmp_path / "data")
    assert again.get("jane") == dfm and again.names(("inswapper", "dfm")) == ["inswapper_128", "jane", "plain"]
    # Licences: declared and flagged.
    assert swapper.research_only and swapper.licence_flag == "research-only"
    assert not dfm.research_only and dfm.licence_flag == ""
    assert arc.licence_flag == "undeclared" and arc.summary()["licence"] is None
    assert UserModel.from_json(swapper.to_json()) == swapper


@pytest.mark.parametrize(
    ("licence", "flagged"),
    [
        ("CC BY-NC 4.0", True),
        ("cc-by-nc-sa-4.0", True),
        ("non-commercial research purposes only", True),
        ("InsightFace: for academic research only", True),
        ("Noncommercial", True),
        ("MIT", False),
        ("Apache-2.0", False),
        ("GPL-3.0", False),
        ("commercial licence from Studio X, contract 42", False),
    ],
)
def test_research_only_licences_are_recognised(licence: str, flagged: bool) -> None:
    assert is_research_only(licence) is flagged


@pytest.mark.parametrize(
    ("key", "kind", "message"),
    [
        ("inswapper_256", "inswapper", "its target is 256x256; inswapper-style models work on 128x128"),
        ("inswapper_256", None, "its target is 256x256"),
        ("inswapper_out64", None, "is not a 3-channel 128x128 image like its target"),
        ("dfm_out112", "dfm", "disagrees with its 224x224 input"),
        ("arcface_128", "arcface", "it takes 128x128 faces; ArcFace-style recognisers take 112x112"),
        ("arcface_256d", None, "not a 512-d embedding"),
        ("no_emap", "inswapper", "not the 512x512 emap"),
        ("inswapper", "dfm", "it was declared --kind dfm, but its graph is of kind inswapper"),
        ("dfm", "arcface", "it was declared --kind arcface, but its graph is of kind dfm"),
    ],
)
def test_mismatched_models_are_refused_with_what_was_expected(
    files: dict[str, Path], tmp_path: Path, key: str, kind: str | None, message: str
) -> None:
    store = UserModelStore(tmp_path / "data")
    with pytest.raises(ModelError) as err:
        store.add(files[key], kind=kind)
    text = str(err.value)
    assert message in text and "Expected" in text and "Nothing was registered" in text
    _nothing_stored(tmp_path / "data")


def test_real_files_that_are_not_swap_models_are_refused(models_dir: Path, faces: Path, tmp_path: Path) -> None:
    store = UserModelStore(tmp_path / "data")
    with pytest.raises(ModelError, match="not a model stageswap can run.*'cls_8'"):
        store.add(models_dir / "yunet_s_dynamic.onnx")
    # An evaluation-only recogniser with a 128-d output: declared arcface, refused for its output.
    with pytest.raises(ModelError, match=r"its output is 'output' float32 \[1,128\], not a 512-d embedding"):
        store.add(models_dir / "mobilefacenet.onnx", kind="arcface")
    with pytest.raises(ModelError, match="not an ONNX model or it is truncated"):
        store.add(faces / "obama.jpg")
    with pytest.raises(ModelError, match="not a file|directory"):
        store.add(models_dir)
    with pytest.raises(ModelError, match="cannot read model file"):
        store.add(tmp_path / "missing.onnx")
    _nothing_stored(tmp_path / "data")


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.3, 0.5, 0.9, 0.9999])
def test_truncated_files_are_refused(files: dict[str, Path], tmp_path: Path, fraction: float) -> None:
    data = files["inswapper"].read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: int(len(data) * fraction)])
    store = UserModelStore(tmp_path / "data")
    with pytest.raises(ModelError) as err:
        store.add(cut, kind="inswapper")
    assert "empty" in str(err.value) or "truncated" in str(err.value)
    _nothing_stored(tmp_path / "data")


def test_a_graph_that_fails_to_run_is_refused(tmp_path: Path) -> None:
    """A file whose declared shapes are right but whose graph cannot run on them (the smoke run catches it)."""
    import onnx
    from onnx import helper

    bad = tmp_path / "bad.dfm"
    om.dfm(bad, 128)
    model = onnx.load(str(bad))
    # Reshape the celeb face to a wrong size: the declared output shape is a lie.
    for node in model.graph.node:
        if node.output[0] == "out_celeb_face:0":
            node.output[0] = "clipped_face"
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([1, 64, 64, 12], np.int64), "wrong"))
    model.graph.node.append(helper.make_node("Reshape", ["clipped_face", "wrong"], ["out_celeb_face:0"]))
    onnx.save(model, str(bad))
    with pytest.raises(
        ModelError,
        match="running it gave .out_celeb_face:0. of shape \\[1, 64, 64, 12\\], expected \\[1, 128, 128, 3\\]",
    ):
        UserModelStore(tmp_path / "data").add(bad)
    _nothing_stored(tmp_path / "data")


def test_outputs_with_free_axes_are_accepted_and_checked_by_running(tmp_path: Path) -> None:
    """Exporters often leave output shapes open (tf2onnx, DeepFaceLab's export): the kind's shapes are then
    checked on the test run instead."""
    import onnx

    path = tmp_path / "open.dfm"
    om.dfm(path, 192)
    model = onnx.load(str(path))
    for out in model.graph.output:
        for i, dim in enumerate(out.type.tensor_type.shape.dim):
            dim.Clear()
            dim.dim_param = f"d{i}"
    onnx.save(model, str(path))
    found = UserModelStore(tmp_path / "data").add(path, unverified=True)
    assert found.kind == "dfm" and found.resolution == 192
    assert found.outputs[1].shape == ("d0", "d1", "d2", "d3")


def test_names_replace_remove_and_a_damaged_copy(files: dict[str, Path], tmp_path: Path) -> None:
    store = UserModelStore(tmp_path / "data")
    with pytest.raises(InputError, match="built-in swap"):
        store.add(files["dfm"], name=MESH)
    with pytest.raises(InputError, match="invalid model name"):
        store.add(files["dfm"], name="../evil")
    with pytest.raises(InputError, match="applies to DFM and neural-renderer"):
        store.add(files["inswapper"], coverage=2.0)
    store.add(files["dfm"], name="jane", unverified=True)
    with pytest.raises(InputError, match="registered already"):
        store.add(files["dfm_plain"], name="jane", unverified=True)
    replaced = store.add(files["dfm_plain"], name="jane", replace=True, unverified=True)
    assert store.get("jane").resolution == 160 == replaced.resolution
    with pytest.raises(InputError, match="is of kind dfm, not one of: arcface"):
        store.get("jane", kinds=("arcface",))
    with pytest.raises(InputError, match="no registered model named 'nobody' \\(registered: jane"):
        store.get("nobody")
    # Someone edits the stored copy: it is reported, never run.
    path = store.path(replaced)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ModelError, match="does not match its recorded sha256"):
        UserModelStore(tmp_path / "data").path(replaced)
    path.unlink()
    with pytest.raises(ModelError, match="is missing"):
        store.path(replaced)
    store.remove("jane")
    assert store.list() == [] and not path.exists()
    with pytest.raises(InputError, match="no registered model"):
        store.remove("jane")


def test_a_damaged_index_is_reported(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "models.json").write_text("{not json")
    with pytest.raises(ModelError, match="models.json is damaged"):
        UserModelStore(data).list()
    (data / "models.json").write_text(json.dumps({"format": "stageswap-user-models", "version": 1, "models": [{}]}))
    with pytest.raises(ModelError, match="is damaged"):
        UserModelStore(data).list()
    entry = {
        "name": "x",
        "kind": "dfm",
        "file": "../../etc/passwd",
        "sha256": "0" * 64,
        "size_bytes": 1,
        "resolution": 224,
        "inputs": [],
        "outputs": [],
    }
    (data / "models.json").write_text(json.dumps({"format": "stageswap-user-models", "version": 1, "models": [entry]}))
    with pytest.raises(ModelError, match="not a plain file name"):
        UserModelStore(data).list()


def test_detect_kind_from_names_and_ranks() -> None:
    from engines.swap.model_inspect import TensorSig as T

    img = T("input.1", (1, 3, 112, 112), "float32")
    assert detect_kind([img], [T("683", (1, 512), "float32")]) == "arcface"
    assert detect_kind([T("in_face:0", ("N", 224, 224, 3), "float32")], []) == "dfm"
    assert detect_kind([T("target", (1, 3, 128, 128), "float32"), T("source", (1, 512), "float32")], []) == "inswapper"
    assert detect_kind([T("input", (1, 3, 640, 640), "float32")], [T("boxes", (1, 100, 4), "float32")]) is None


# ---- the command line -------------------------------------------------------------------------------------


def test_cli_add_list_remove(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    assert main(["models", "add", str(files["inswapper"]), "--licence", "CC BY-NC 4.0", "--data-dir", data]) == 0
    out = capsys.readouterr().out
    assert "registered inswapper model 'inswapper_128' (128x128" in out
    assert "warning: RESEARCH ONLY" in out and "need an ArcFace-style recogniser" in out
    argv = ["models", "add", str(files["dfm"]), "--kind", "dfm", "--name", "jane", "--unverified", "--data-dir", data]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "registered dfm model 'jane' (224x224" in out and "LICENCE UNDECLARED" in out and "swap_model='jane'" in out
    assert "consent: none recorded (unverified)" in out and "CONSENT UNVERIFIED" in out
    assert main(["models", "list", "--data-dir", data]) == 0
    out = capsys.readouterr().out
    assert "yunet" in out and "inswapper_128" in out and "CC BY-NC 4.0" in out and "RESEARCH ONLY" in out
    assert main(["models", "list", "--json", "--data-dir", data]) == 0
    listed = json.loads(capsys.readouterr().out)
    flags = {m["name"]: m["licence_flag"] for m in listed["user_models"]}
    assert flags == {"inswapper_128": "research-only", "jane": "undeclared"}
    assert main(["models", "remove", "jane", "--data-dir", data]) == 0
    assert "removed model 'jane'" in capsys.readouterr().out


def test_cli_refusals_are_one_line_without_traceback(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    truncated = tmp_path / "half.onnx"
    truncated.write_bytes(files["inswapper"].read_bytes()[:5000])
    for argv in (
        ["models", "add", str(truncated)],
        ["models", "add", str(files["inswapper_256"]), "--kind", "inswapper"],
        ["models", "add", str(files["dfm"]), "--kind", "arcface"],
        ["models", "add", str(tmp_path / "nothing.onnx")],
        ["models", "remove", "nobody"],
    ):
        assert main([*argv, "--data-dir", data]) == 2
        err = capsys.readouterr().err
        assert err.startswith("stageswap: error: ") and "Traceback" not in err, err
    _nothing_stored(tmp_path / "data")
