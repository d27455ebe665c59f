"""The virtual probe's command line and fault values: bad values are refused naming the option or field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware_bridge.emulator import VirtualProbe
from firmware_bridge.emulator_cli import main
from firmware_bridge.emulator_faults import Faults
from firmware_bridge.phantom import Scenario, single


@pytest.mark.parametrize(
    ("args", "named", "why"),
    [
        (["--fps", "0"], "--fps", "> 0"),
        (["--fps", "-5"], "--fps", "> 0"),
        (["--fps", "nan"], "--fps", "> 0"),
        (["--fps", "abc"], "--fps", "not a number"),
        (["--drop-chunk-p", "1.5"], "--drop-chunk-p", "between 0 and 1"),
        (["--disconnect-at", "-1"], "--disconnect-at", ">= 0"),
        (["--reconnect-after", "-0.5"], "--reconnect-after", ">= 0"),
        (["--stall-at", "-3"], "--stall-at", ">= 0"),
        (["--corrupt-bytes-per-s", "-1"], "--corrupt-bytes-per-s", ">= 0"),
    ],
)
def test_bad_option_values_exit_2_naming_the_option(
    args: list[str], named: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(args, prog="edge emulate")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {named}" in err and why in err and "edge emulate" in err


@pytest.mark.parametrize(
    ("segment", "named"),
    [
        ({"start_s": 0, "duration_s": -1}, "duration_s"),
        ({"start_s": -2, "duration_s": 1}, "start_s"),
        ({"start_s": 0, "duration_s": 1, "depth_mm": 0}, "depth_mm"),
        ({"start_s": 0, "duration_s": 1, "probe": "sector"}, "probe"),
        ({"start_s": 0, "duration_s": 1, "preset": "heart"}, "preset"),
        ({"start_s": 0, "duration_s": 1, "fov": 3}, "fov"),
        ({"duration_s": 1}, "start_s"),
    ],
)
def test_bad_scenario_file_exits_2_naming_file_segment_and_field(
    segment: dict[str, object], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "scene.json"
    path.write_text(json.dumps({"segments": [{"start_s": 0, "duration_s": 1}, segment]}))
    with pytest.raises(SystemExit) as info:
        main(["--scenario", str(path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert str(path) in err and "segments[1]" in err and named in err


def test_unreadable_scenario_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    for name in ("bad.json", "missing.json"):
        with pytest.raises(SystemExit) as info:
            main(["--scenario", str(tmp_path / name)])
        assert info.value.code == 2 and name in capsys.readouterr().err


def test_fault_and_probe_values_are_checked_in_code_too() -> None:
    with pytest.raises(ValueError, match=r"Faults\.drop_chunk_p must be a probability"):
        Faults(drop_chunk_p=2.0)
    with pytest.raises(ValueError, match=r"Faults\.stall_s must be a number >= 0"):
        Faults(stall_s=-1.0)
    with pytest.raises(ValueError, match=r"Faults\.corrupt_bytes_per_s must be a number"):
        Faults(corrupt_bytes_per_s="many")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fps must be > 0"):
        VirtualProbe(single(), fps=0)
    assert Faults(stall_at_s=None, drop_chunk_p=1.0).drop_chunk_p == 1.0
    good = Scenario.from_json(single("lung", duration_s=2.0).to_json())
    assert good.duration_s == 2.0
