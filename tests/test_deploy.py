"""The stage's Kubernetes manifest (deploy/kubernetes/stage.yaml, docs/stage.md) is valid and says what the
docs say: checked by kubernetes-validate (PyPI; the Kubernetes API schemas it ships, strict: an unknown field is
an error) and read for the stage's own rules (one GPU per stageswap, every camera placed once, tokens and keys
from Secrets only). Its Janus configuration is started for real where Janus is installed."""

from __future__ import annotations

import copy
import re
import shlex
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.janus_helpers import JANUS, free_port, need_janus

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "deploy" / "kubernetes" / "stage.yaml"
KUBERNETES = "1.30.0"
CAMERAS = 8
GPUS = 4


def _docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_every_resource_is_valid_kubernetes_in_strict_mode() -> None:
    docs = _docs()
    assert {d["kind"] for d in docs} >= {"Namespace", "StatefulSet", "Service", "ConfigMap", "PodDisruptionBudget"}
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"].update({"gpus": 1}),  # unknown field
        lambda d: d["spec"].update({"replicas": "four"}),  # wrong type
        lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"),  # required field missing
    ],
    ids=["unknown-field", "wrong-type", "missing-name"],
)
def test_the_validator_refuses_a_broken_statefulset(break_it: Any) -> None:
    broken = copy.deepcopy(_one(_docs(), "StatefulSet", "stageswap"))
    break_it(broken)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_one_gpu_per_stageswap_every_camera_placed_once_and_peers_for_the_stage_page() -> None:
    docs = _docs()
    stageswap = _one(docs, "StatefulSet", "stageswap")
    spec = stageswap["spec"]
    container = spec["template"]["spec"]["containers"][0]
    assert spec["replicas"] == GPUS
    assert (
        container["resources"]["requests"]["nvidia.com/gpu"]
        == "1"
        == container["resources"]["limits"]["nvidia.com/gpu"]
    )
    command = " ".join(container["args"])
    assert "--max-streams 2" in command and "--sfu http://janus-0.janus.stage.svc:8088/janus" in command
    cameras = _one(docs, "ConfigMap", "stageswap-cameras")["data"]
    assert sorted(cameras) == [f"stageswap-{i}" for i in range(GPUS)]  # a file for each pod's ordinal
    inputs = [re.findall(r"--input (\S+)=", flags) for flags in cameras.values()]
    assert all(len(i) == 2 for i in inputs)  # two cameras per GPU (--max-streams 2)
    names = [n for i in inputs for n in i]
    assert len(names) == len(set(names)) == CAMERAS
    peers = shlex.split(cameras["stageswap-0"])
    assert [peers[i + 1].split("=")[0] for i, a in enumerate(peers) if a == "--peer"] == [
        f"stageswap-{i}" for i in range(1, GPUS)
    ]


def test_secrets_come_from_secret_volumes_never_from_the_manifest() -> None:
    text = MANIFEST.read_text()
    assert not re.search(r"(admin_key|token|secret)\s*[:=]\s*\"?[A-Za-z0-9+/]{12,}", text, re.I)
    for name in ("stageswap", "janus"):
        volumes = _one(_docs(), "StatefulSet", name)["spec"]["template"]["spec"]["volumes"]
        secret_names = {v["secret"]["secretName"] for v in volumes if "secret" in v}
        assert "janus-admin-key" in secret_names
        assert all(v["secret"].get("defaultMode") == 0o400 for v in volumes if "secret" in v)


def test_the_janus_configuration_in_the_manifest_starts_janus(tmp_path: Path) -> None:
    need_janus()
    config = _one(_docs(), "ConfigMap", "janus-config")["data"]
    port = free_port()
    for name, text in config.items():
        text = text.replace('"/etc/janus"', f'"{tmp_path}"').replace("port = 8088", f'port = {port} ip = "127.0.0.1"')
        (tmp_path / name).write_text(text)
    (tmp_path / "janus.plugin.streaming.jcfg").write_text('general: { admin_key = "k" events = false }\n')
    log = tmp_path / "janus.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [JANUS, "-C", str(tmp_path / "janus.jcfg"), "-F", str(tmp_path)], stdout=out, stderr=out
        )
    try:
        # Started: its HTTP port answers and its log (written by Janus's own log thread, perhaps after the port
        # opened) says which plugins it loaded; a configuration that loads the wrong ones never gets there.
        deadline = time.monotonic() + 60
        while True:
            text = log.read_text(errors="replace")
            if (
                "JANUS Streaming plugin initialized" in text
                and "Plugin 'libjanus_videoroom.so' has been disabled" in text
            ):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    pass
            assert process.poll() is None and time.monotonic() < deadline, text[-2000:]
            time.sleep(0.05)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:  # a loaded machine: Janus's orderly shutdown can take a while
            process.kill()
            process.wait(10)
