"""[uplink] settings in a config file: receipts, timeouts, and paths relative to the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import Config, load_config
from edge.errors import ConfigError


def test_uplink_paths_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    cfg = folder / "edge.toml"
    cfg.write_text(
        "[uplink]\nenabled = true\n"
        'password_file = "secrets/mqtt.password"\n'
        'tls = { ca = "pki/ca.crt", cert = "pki/device.crt", key = "/abs/device.key" }\n'
    )
    monkeypatch.chdir(tmp_path)  # not the config's folder: the paths must not follow the cwd
    up = load_config(Path("etc/edge.toml")).uplink
    base = folder.resolve()
    assert up.password_file == base / "secrets/mqtt.password"
    assert (up.tls.ca, up.tls.cert, up.tls.key) == (
        base / "pki/ca.crt",
        base / "pki/device.crt",
        Path("/abs/device.key"),
    )


def test_uplink_without_paths_stays_without(tmp_path: Path) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_text("[uplink]\nenabled = true\n")
    up = load_config(cfg).uplink
    assert up.password_file is None and up.tls.ca is None and up.tls.cert is None


def test_receipts_default_on_and_settings_checked(tmp_path: Path) -> None:
    up = Config().uplink
    assert up.receipts is True and up.confirm_timeout_s == 30.0 and up.ack_settle_s == 0.0
    cfg = tmp_path / "edge.toml"
    cfg.write_text("[uplink]\nreceipts = false\nack_settle_s = 1.0\nconfirm_timeout_s = 5\n")
    up = load_config(cfg).uplink
    assert (up.receipts, up.ack_settle_s, up.confirm_timeout_s) == (False, 1.0, 5.0)
    cfg.write_text("[uplink]\nconfirm_timeout_s = 0\n")
    with pytest.raises(ConfigError, match=r"edge\.toml: key uplink\.confirm_timeout_s"):
        load_config(cfg)
