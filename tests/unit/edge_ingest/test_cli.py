"""The ingest's three spellings (edge-ingest, python -m edge_ingest, edge ingest) are one command."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edge.cli import _parser as edge_parser
from edge.cli import plugins
from edge_ingest import cli


def _options(parser: argparse.ArgumentParser) -> dict[str, Any]:
    return {a.dest: (a.option_strings, a.default, a.required) for a in parser._actions}


def _edge_ingest_parser() -> argparse.ArgumentParser:
    sub = next(a for a in edge_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["ingest"]


def test_edge_ingest_is_the_same_command_as_edge_dash_ingest() -> None:
    own = argparse.ArgumentParser()
    cli.add_arguments(own)
    assert _options(_edge_ingest_parser()) == _options(own)
    assert _edge_ingest_parser().get_default("func") is cli.run


@pytest.mark.parametrize(
    "cmd",
    [
        [str(Path(sys.executable).with_name("edge-ingest"))],
        [sys.executable, "-m", "edge_ingest"],
        [sys.executable, "-m", "edge", "ingest"],
    ],
    ids=["edge-ingest", "python -m edge_ingest", "edge ingest"],
)
def test_each_spelling_answers_help(cmd: list[str]) -> None:
    if not Path(cmd[0]).exists():
        pytest.skip(f"{cmd[0]} is not installed (pip install -e . puts it there)")
    out = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--db DB" in out.stdout and "--no-receipts" in out.stdout


def test_a_config_error_exits_2_as_edge_does(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    code = cli.main(["--db", str(tmp_path / "i.db"), "--cert", str(tmp_path / "c.pem")])
    assert code == 2
    assert "--cert and --key go together" in caplog.text
    assert not (tmp_path / "i.db").exists()  # refused before anything is opened


def test_a_broken_command_family_leaves_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    class Entry:
        def __init__(self, name: str, load: Any) -> None:
            self.name, self.value, self.load = name, f"pkg:{name}", lambda: load

    def broken(_sub: Any) -> None:
        raise ImportError("no module named 'paho'")

    def fine(sub: Any) -> None:
        sub.add_parser("fine")

    monkeypatch.setattr(plugins, "entry_points", lambda group: [Entry("broken", broken), Entry("fine", fine)])
    sub = argparse.ArgumentParser().add_subparsers()
    assert plugins.add_parsers(sub) == ["fine"]
    assert list(sub.choices) == ["fine"]
