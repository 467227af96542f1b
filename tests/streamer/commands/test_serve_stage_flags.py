"""`stageswap serve`'s stage flags (--sfu..., --peer...) become the config the service reads, and a flag that
cannot work is refused with a one-line reason before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines.errors import InputError
from streamer.__main__ import build_parser
from streamer.commands.serve import build_config


def _config(tmp_path: Path, *flags: str):  # type: ignore[no-untyped-def]
    args = build_parser().parse_args(["serve", "--data-dir", str(tmp_path / "data"), *flags])
    return build_config(args)


def _secret(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def test_sfu_and_peer_flags_make_the_config(tmp_path: Path) -> None:
    key = _secret(tmp_path, "janus.key", "the-admin-key")
    token = _secret(tmp_path, "gpu2.token", "gpu2-operator-token")
    config = _config(
        tmp_path,
        *("--sfu", "http://127.0.0.1:8088/janus/", "--sfu-secret-file", str(key)),
        *("--sfu-copy", "http://10.1.0.5:8088/janus", "--sfu-view", "processed", "--sfu-view", "source"),
        *("--sfu-codec", "h264", "--sfu-public-url", "https://janus.stage.lan/janus"),
        *("--node-name", "gpu1", "--peer", "gpu2=http://127.0.0.1:8081", "--peer-token-file", f"gpu2={token}"),
    )
    sfu = config.sfu
    assert sfu is not None and sfu.url == "http://127.0.0.1:8088/janus" and sfu.admin_key == "the-admin-key"
    assert sfu.copies == ("http://10.1.0.5:8088/janus",) and sfu.views == ("processed", "source")
    assert sfu.codec == "h264" and sfu.browser_url == "https://janus.stage.lan/janus"
    assert config.node_name == "gpu1"
    (peer,) = config.peers
    assert (peer.name, peer.url, peer.token) == ("gpu2", "http://127.0.0.1:8081", "gpu2-operator-token")
    assert "the-admin-key" not in repr(config) and "gpu2-operator-token" not in repr(config)


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (("--sfu-copy", "http://x:8088/janus"), "need --sfu URL"),
        (("--sfu", "janus:8088"), "expected Janus's HTTP API URL"),
        (("--sfu", "http://a:8088/janus", "--sfu-copy", "http://a:8088/janus"), "different Janus"),
        (("--sfu", "http://a:8088/janus", "--sfu-secret-file", "/nonexistent/key"), "cannot read it"),
        (("--peer", "gpu2=http://a:1", "--peer-token-file", "gpu3=/x"), "no --peer of that name"),
        (("--peer", "gpu2=ftp://a"), "expected NAME=URL"),
        (("--peer", "local=http://a:1"), "must be unique"),
    ],
)
def test_a_flag_that_cannot_work_is_refused_with_the_reason(
    tmp_path: Path, flags: tuple[str, ...], reason: str
) -> None:
    with pytest.raises(InputError, match=reason):
        _config(tmp_path, *flags)
