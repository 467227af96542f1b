"""build_engines.py and the layers under it, without a GPU and without TensorRT.

- ``--dry-run`` validates every catalogue graph for real (ONNX checker, profiles, ONNX Runtime vs torch);
- the manifest's staleness rules, on real files;
- the TensorRT layer (``engines.runtime.tensorrt.build_plan``) against a stand-in ``tensorrt`` module
  defined here that records the calls the layer makes — TensorRT itself cannot be installed here;
- the build/keep/rebuild flow of ``compile_engine`` with the TensorRT build and session stood in for.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

import build_engines
from engines import catalogue
from engines.catalogue import CATALOGUE, FACEMESH, YUNET
from engines.errors import ModelError
from engines.runtime import export, tensorrt
from engines.runtime.export import ShapeRange, Tolerance
from engines.runtime.plans import Manifest, PlanEntry, PlanKey
from engines.runtime.tensorrt import BuildOptions, build_plan, profile_for_network

# ---- build_engines.py --dry-run: the real validation ----------------------------------------------------------


def test_dry_run_validates_every_graph_and_writes_nothing(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "engines"
    rc = build_engines.main(["--dry-run", "--models", str(models_dir), "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0, text
    for name in CATALOGUE:
        assert f"ok   {name}" in text
    assert "checker ok" in text and "ONNX Runtime = torch at batch 1, 3" in text
    assert "torch fallback = ONNX Runtime" in text  # yunet: the GPU fallback's interpreter checked too
    assert f"{len(CATALOGUE)} engine(s) validated" in text
    assert not out.exists()


def test_a_graph_out_of_tolerance_fails_with_the_difference(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    strict = dataclasses.replace(FACEMESH, onnx_tolerance=Tolerance(0.0, 0.0))
    monkeypatch.setitem(catalogue.CATALOGUE, "facemesh", strict)  # type: ignore[index]
    rc = build_engines.main(["--dry-run", "--models", str(models_dir), "--only", "facemesh", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 1
    assert "FAIL facemesh" in captured.out and "differs by up to" in captured.out
    assert "1 of 1 engine(s) failed: facemesh" in captured.err


def test_missing_model_is_reported_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STAGESWAP_MODELS", raising=False)
    rc = build_engines.main(["--dry-run", "--models", str(tmp_path), "--only", "yunet", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "model 'yunet' (yunet_s_dynamic.onnx) not found" in out and "stageswap models fetch yunet" in out


def test_building_without_a_gpu_says_so_and_points_to_dry_run(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("engines.runtime.select.cuda_available", lambda: False)
    rc = build_engines.main(["--models", str(models_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("build_engines: error: no CUDA GPU") and "--dry-run" in err


def test_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_engines.main(["--only", "nosuch"])
    assert exc.value.code == 2
    assert build_engines.main(["--dry-run", "--workspace-gb", "0"]) == 2
    assert "--workspace-gb must be positive" in capsys.readouterr().err


def test_check_graph_refuses_ir_too_new_and_profile_mismatch(models_dir: Path, tmp_path: Path) -> None:
    model = onnx.load(str(models_dir / "yunet_s_dynamic.onnx"))
    model.ir_version = 11
    newer = tmp_path / "newer.onnx"
    onnx.save(model, str(newer))
    with pytest.raises(ModelError, match="IR version 11"):
        build_engines.check_graph(newer, YUNET.profiles)
    wrong = {"input": ShapeRange((1, 4, 32, 32), (1, 4, 64, 64), (1, 4, 128, 128))}
    with pytest.raises(ModelError, match="axis 1, which the network fixes at 3"):
        build_engines.check_graph(models_dir / "yunet_s_dynamic.onnx", wrong)


def test_catalogue_relight_axes_match_the_modules_own() -> None:
    for name in ("relight", "relight_albedo"):
        engine = CATALOGUE[name]
        assert isinstance(engine, export.TorchEngine)
        module = engine.factory(None)
        assert tuple(module.input_names) == engine.input_names  # type: ignore[arg-type]
        assert dict(engine.dynamic_axes) == module.dynamic_axes()  # type: ignore[operator]


def test_exported_facemesh_is_a_plain_graph_with_constant_pads(models_dir: Path, tmp_path: Path) -> None:
    path = export.export_onnx(FACEMESH, FACEMESH.factory(models_dir), tmp_path / "facemesh.onnx")
    model = onnx.load(str(path))
    assert model.ir_version <= export.ONNX_MAX_IR_VERSION
    assert {n.op_type for n in model.graph.node} == {"Conv", "PRelu", "Add", "Pad", "MaxPool", "Transpose"}
    inits = {i.name for i in model.graph.initializer}
    pads = [n for n in model.graph.node if n.op_type == "Pad"]
    assert len(pads) == 9 and all(n.input[1] in inits for n in pads)  # TensorRT sees constant pad amounts


def test_fold_constants_folds_only_what_depends_on_constants() -> None:
    from onnx import TensorProto, helper, numpy_helper

    two = numpy_helper.from_array(np.array([2.0], np.float32), "two")
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["two", "two"], ["four"]),  # constant: folded
            helper.make_node("Mul", ["x", "four"], ["y"]),  # depends on the input: kept
            helper.make_node("Neg", ["two"], ["z"]),  # constant, but a graph output: kept
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [1]),
        ],
        [two],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    assert export.fold_constants(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Mul", "Neg"]
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert values["four"].tolist() == [4.0]
    onnx.checker.check_model(model, full_check=True)


# ---- profiles ----------------------------------------------------------------------------------------------------


def test_profile_for_network_matches_names_and_static_axes() -> None:
    facemesh_input = [("input_1", (-1, 192, 192, 3))]
    chosen = profile_for_network(facemesh_input, FACEMESH.profiles)
    r = chosen["input_1"]
    assert r.min[0] == 1 and r.max[0] == export.MAX_FACES == 8 and r.min[1:] == r.max[1:] == (192, 192, 3)
    with pytest.raises(ModelError, match="no optimisation profile"):
        profile_for_network([("image", (-1, 3, -1, -1))], FACEMESH.profiles)
    with pytest.raises(ModelError, match="rank"):
        profile_for_network([("input_1", (-1, 192, 192))], FACEMESH.profiles)
    with pytest.raises(ModelError, match="does not have"):
        profile_for_network([], FACEMESH.profiles)
    with pytest.raises(ValueError, match="min <= opt <= max"):
        ShapeRange((2,), (1,), (3,))
    assert ShapeRange((1, 3), (2, 3), (8, 3)).contains((8, 3)) and not ShapeRange((1,), (2,), (8,)).contains((9,))


# ---- manifest ---------------------------------------------------------------------------------------------------


def _entry(directory: Path, name: str = "facemesh", key: PlanKey | None = None, data: bytes = b"plan") -> PlanEntry:
    from engines.runtime.models import sha256_file

    key = key or PlanKey("NVIDIA H200", "10.8.0", "a" * 64)
    plan = key.file_stem(name) + ".plan"
    (directory / plan).write_bytes(data)
    return PlanEntry(name, key, plan, sha256_file(directory / plan), True, dict(FACEMESH.profiles))


def test_manifest_roundtrip_and_lookup(tmp_path: Path) -> None:
    m = Manifest.load(tmp_path)
    entry = _entry(tmp_path)
    assert m.record(entry) is None
    m.save()
    loaded = Manifest.load(tmp_path)
    found = loaded.lookup("facemesh", entry.key)
    assert found.ok and found.path == tmp_path / entry.plan and found.entry == entry
    assert entry.plan.startswith("facemesh.nvidia-h200.trt10.8.0.aaaaaaaaaaaa")
    assert not loaded.lookup("yunet", entry.key).ok


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (PlanKey("NVIDIA A100-SXM4-80GB", "10.8.0", "a" * 64), "built for GPU 'NVIDIA H200', this is 'NVIDIA A100"),
        (PlanKey("NVIDIA H200", "10.9.1", "a" * 64), "built with TensorRT 10.8.0, installed is 10.9.1"),
        (PlanKey("NVIDIA H200", "10.8.0", "b" * 64), "built from model aaaaaaaaaaaa…, the model is now bbbbbbbbbbbb…"),
    ],
)
def test_stale_plans_are_refused_with_what_differs(tmp_path: Path, key: PlanKey, expected: str) -> None:
    m = Manifest(tmp_path)
    m.record(_entry(tmp_path))
    found = m.lookup("facemesh", key)
    assert not found.ok and "is stale" in found.reason and expected in found.reason


def test_missing_or_corrupt_plan_file_is_refused(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    entry = _entry(tmp_path)
    m.record(entry)
    (tmp_path / entry.plan).write_bytes(b"tampered")
    found = m.lookup("facemesh", entry.key)
    assert not found.ok and "is corrupt" in found.reason
    (tmp_path / entry.plan).unlink()
    assert "missing" in m.lookup("facemesh", entry.key).reason


def test_record_replaces_the_plan_for_the_same_gpu_and_tensorrt(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    old = _entry(tmp_path)
    other_gpu = _entry(tmp_path, key=PlanKey("NVIDIA L4", "10.8.0", "a" * 64))
    m.record(old)
    m.record(other_gpu)
    new = _entry(tmp_path, key=PlanKey("NVIDIA H200", "10.8.0", "c" * 64), data=b"new plan")
    assert m.record(new) == old
    assert {e.key.gpu for e in m.entries} == {"NVIDIA H200", "NVIDIA L4"} and len(m.entries) == 2


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"format": 99, "plans": []}),
        json.dumps({"format": 1, "plans": [{"name": "x"}]}),
        json.dumps(
            {
                "format": 1,
                "plans": [
                    dict(
                        name="x",
                        gpu="g",
                        tensorrt="10",
                        model_sha256="s",
                        plan="../evil.plan",
                        plan_sha256="s",
                        fp16=True,
                        profiles={},
                    )
                ],
            }
        ),
    ],
)
def test_unreadable_manifest_is_a_model_error_with_the_fix(tmp_path: Path, content: str) -> None:
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(ModelError, match="unreadable.*python build_engines.py --out"):
        Manifest.load(tmp_path)


# ---- the TensorRT layer, against a stand-in tensorrt module ----------------------------------------------------


class _FakeTrt:
    """Records what build_plan asks of TensorRT 10's Python API; parses nothing but the real graph's inputs."""

    __version__ = "10.8.0"

    class Logger:
        WARNING = 2

        def __init__(self, severity: int) -> None:
            self.severity = severity

    class MemoryPoolType:
        WORKSPACE = "workspace"

    class BuilderFlag:
        FP16 = "fp16"

    def __init__(self, parse_errors: list[str] | None = None, build_fails: bool = False) -> None:
        self.parse_errors = parse_errors or []
        self.build_fails = build_fails
        self.calls: list[tuple[Any, ...]] = []
        fake = self

        class Tensor:
            def __init__(self, name: str, shape: tuple[int, ...]) -> None:
                self.name, self.shape = name, shape

        class Network:
            inputs: list[Any] = []

            @property
            def num_inputs(self) -> int:
                return len(self.inputs)

            def get_input(self, i: int) -> Any:
                return self.inputs[i]

        class Parser:
            def __init__(self, network: Network, logger: Any) -> None:
                self.network = network

            def parse_from_file(self, path: str) -> bool:
                fake.calls.append(("parse", path))
                self.network.inputs = [Tensor(n, s) for n, s in build_engines._graph_inputs(Path(path))]
                return not fake.parse_errors

            @property
            def num_errors(self) -> int:
                return len(fake.parse_errors)

            def get_error(self, i: int) -> str:
                return fake.parse_errors[i]

        class Cache:
            def __init__(self, data: bytes) -> None:
                self.data = data

            def serialize(self) -> bytes:
                return self.data + b"+timings"

        class Profile:
            def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
                fake.calls.append(("set_shape", name, tuple(lo), tuple(opt), tuple(hi)))

        class Config:
            cache: Cache | None = None

            def set_memory_pool_limit(self, pool: str, size: int) -> None:
                fake.calls.append(("pool", pool, size))

            def set_flag(self, flag: str) -> None:
                fake.calls.append(("flag", flag))

            def add_optimization_profile(self, profile: Profile) -> int:
                fake.calls.append(("add_profile",))
                return 0

            def create_timing_cache(self, data: bytes) -> Cache:
                fake.calls.append(("create_timing_cache", bytes(data)))
                return Cache(bytes(data))

            def set_timing_cache(self, cache: Cache, ignore_mismatch: bool) -> bool:
                self.cache = cache
                return True

            def get_timing_cache(self) -> Cache | None:
                return self.cache

        class Builder:
            def __init__(self, logger: Any) -> None:
                pass

            def create_network(self, flags: int) -> Network:
                fake.calls.append(("create_network", flags))
                return Network()

            def create_builder_config(self) -> Config:
                return Config()

            def create_optimization_profile(self) -> Profile:
                return Profile()

            def build_serialized_network(self, network: Network, config: Config) -> bytes | None:
                fake.calls.append(("build",))
                return None if fake.build_fails else b"serialized plan"

        self.Builder = Builder
        self.OnnxParser = Parser


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(**kwargs: Any) -> _FakeTrt:
        fake = _FakeTrt(**kwargs)
        monkeypatch.setitem(sys.modules, "tensorrt", fake)
        return fake

    return install


def test_build_plan_sets_profile_fp16_workspace_and_timing_cache(
    fake_trt: Any, models_dir: Path, tmp_path: Path
) -> None:
    fake = fake_trt()
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"earlier")
    plan = tmp_path / "yunet.plan"
    build_plan(models_dir / "yunet_s_dynamic.onnx", plan, YUNET.profiles, BuildOptions(True, 1 << 30, cache))
    assert plan.read_bytes() == b"serialized plan"
    assert cache.read_bytes() == b"earlier+timings"  # loaded, then saved back after the build
    r = YUNET.profiles["input"]
    assert ("set_shape", "input", r.min, r.opt, r.max) in fake.calls
    assert ("flag", "fp16") in fake.calls and ("pool", "workspace", 1 << 30) in fake.calls
    assert ("create_network", 0) in fake.calls and ("create_timing_cache", b"earlier") in fake.calls
    assert fake.calls.index(("add_profile",)) < fake.calls.index(("build",))


def test_build_plan_without_fp16_sets_no_flag(fake_trt: Any, models_dir: Path, tmp_path: Path) -> None:
    fake = fake_trt()
    build_plan(models_dir / "yunet_s_dynamic.onnx", tmp_path / "p.plan", YUNET.profiles, BuildOptions(fp16=False))
    assert not [c for c in fake.calls if c[0] == "flag"]


def test_every_parser_error_is_logged_and_reported(
    fake_trt: Any, models_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake_trt(parse_errors=["node 3 (Resize): unsupported mode", "node 9 (Foo): no importer"])
    with caplog.at_level(logging.ERROR), pytest.raises(ModelError, match="2 error") as exc:
        build_plan(models_dir / "yunet_s_dynamic.onnx", tmp_path / "p.plan", YUNET.profiles)
    assert "unsupported mode" in str(exc.value) and "no importer" in str(exc.value)
    assert sum("TensorRT ONNX parser" in r.message for r in caplog.records) == 2
    assert not (tmp_path / "p.plan").exists()


def test_failed_build_is_a_model_error_and_writes_no_plan(fake_trt: Any, models_dir: Path, tmp_path: Path) -> None:
    fake_trt(build_fails=True)
    with pytest.raises(ModelError, match="could not build"):
        build_plan(models_dir / "yunet_s_dynamic.onnx", tmp_path / "p.plan", YUNET.profiles)
    assert not (tmp_path / "p.plan").exists()


def test_tensorrt_absent_or_too_old(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails
    with pytest.raises(ModelError, match="TensorRT 10 is not installed"):
        tensorrt.import_tensorrt()
    assert tensorrt.tensorrt_version() is None
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.1"))
    with pytest.raises(ModelError, match="too old"):
        tensorrt.import_tensorrt()


# ---- the build / keep / rebuild flow --------------------------------------------------------------------------


class _OrtStandIn:
    """Stands in for TrtSession: runs the graph the plan was 'built' from in ONNX Runtime (+ an offset)."""

    built_from: dict[str, Path] = {}
    offset = 0.0

    def __init__(self, plan_path: Path, profiles: Any) -> None:
        import onnxruntime as ort

        self._s = ort.InferenceSession(str(self.built_from[plan_path.name]), providers=["CPUExecutionProvider"])

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self._s.get_outputs()]
        return {n: v + self.offset for n, v in zip(names, self._s.run(None, feeds), strict=True)}

    def close(self) -> None:
        pass


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    built: list[str] = []
    _OrtStandIn.built_from = {}
    _OrtStandIn.offset = 0.0

    def fake_build(onnx_path: Path, plan_path: Path, profiles: Any, options: BuildOptions) -> dict[str, Any]:
        plan_path.write_bytes(b"plan for " + plan_path.name.encode())
        _OrtStandIn.built_from[plan_path.name] = onnx_path
        built.append(plan_path.name)
        return dict(profiles)

    monkeypatch.setattr(tensorrt, "build_plan", fake_build)
    monkeypatch.setattr(tensorrt, "TrtSession", _OrtStandIn)
    return built


def _args(**kw: Any) -> argparse.Namespace:
    return argparse.Namespace(**{"fp16": True, "workspace_gb": 1.0, "force": False, **kw})


def test_plans_are_built_kept_when_current_and_rebuilt_when_stale(
    stand_ins: list[str], models_dir: Path, tmp_path: Path
) -> None:
    onnx_path = models_dir / "yunet_s_dynamic.onnx"

    def compile_on(gpu: str, **kw: Any) -> build_engines.EngineReport:
        report = build_engines.EngineReport("yunet")
        build_engines.compile_engine(YUNET, onnx_path, models_dir, tmp_path, gpu, "10.8.0", _args(**kw), report)
        return report

    first = compile_on("NVIDIA H200")
    assert first.plan.startswith("built: yunet.nvidia-h200.trt10.8.0.") and len(stand_ins) == 1
    assert any("TensorRT = ONNX Runtime" in c for c in first.checks)
    entry = Manifest.load(tmp_path).entries[0]
    assert entry.key == PlanKey("NVIDIA H200", "10.8.0", YUNET.fingerprint()) and entry.fp16
    assert entry.profiles == dict(YUNET.profiles)

    assert compile_on("NVIDIA H200").plan.startswith("up to date") and len(stand_ins) == 1
    assert compile_on("NVIDIA H200", force=True).plan.startswith("built") and len(stand_ins) == 2

    # Someone edits the plan: the manifest's sha256 no longer matches, so it is rebuilt.
    (tmp_path / entry.plan).write_bytes(b"edited")
    rebuilt = compile_on("NVIDIA H200")
    assert rebuilt.plan.startswith("built") and any("is corrupt" in c for c in rebuilt.checks)

    other = compile_on("NVIDIA L40S")  # a second GPU shares the directory
    assert other.plan.startswith("built: yunet.nvidia-l40s")
    assert {e.key.gpu for e in Manifest.load(tmp_path).entries} == {"NVIDIA H200", "NVIDIA L40S"}


def test_a_plan_that_disagrees_with_onnx_runtime_is_not_installed(
    stand_ins: list[str], models_dir: Path, tmp_path: Path
) -> None:
    _OrtStandIn.offset = 0.5  # far outside YuNet's tolerance
    report = build_engines.EngineReport("yunet")
    with pytest.raises(ModelError, match="TensorRT vs ONNX Runtime.*not installed"):
        build_engines.compile_engine(
            YUNET, models_dir / "yunet_s_dynamic.onnx", models_dir, tmp_path, "NVIDIA H200", "10.8.0", _args(), report
        )
    assert not list(tmp_path.glob("*.plan")) and Manifest.load(tmp_path).entries == []
