"""Fault class: a stage that never returns (a model call, a device read, a handler).

The runtime must stop feeding systemd's watchdog once a stage is stuck past its deadline, so that
systemd restarts the service, and say which stage on the HUD and in STATUS=. systemd's side is
played by a real AF_UNIX datagram socket named by NOTIFY_SOCKET; the stuck stage is a thread
really blocked (on an Event in the driver; in ``edge run``, in an ONNX model whose Loop runs 2^62
times). Every wait is bounded; nothing is asserted on how long anything took.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.config import DEFAULT_CLIP
from edge.runtime.health import Health
from tests.support.onnx_models import classifier_model, write_model_folder
from tests.support.paths import EDGE

Message = list[str]  # one notification's KEY=value fields


class FakeSystemd:
    """The notify socket systemd would hold: every datagram the runtime sends, in order."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.received: list[Message] = []

    def env(self, watchdog_usec: int) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.path, "WATCHDOG_USEC": str(watchdog_usec)}

    def until(self, want: Callable[[Message], bool], what: str, timeout_s: float = 30.0) -> list[Message]:
        """Receive until a message ``want`` arrives; the messages received meanwhile, it last."""
        got: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} from the runtime within {timeout_s} s; got {got}")
            self.sock.settimeout(left)
            try:
                msg = self.sock.recv(4096).decode().split("\n")
            except TimeoutError:
                continue
            got.append(msg)
            self.received.append(msg)
            if want(msg):
                return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd() -> Iterator[FakeSystemd]:
    with tempfile.TemporaryDirectory(prefix="sd-", dir="/tmp") as d:  # a socket path fits in 108 bytes
        sd = FakeSystemd(Path(d) / "notify")
        try:
            yield sd
        finally:
            sd.close()


def _is(field: str) -> Callable[[Message], bool]:
    return lambda m: field in m


def _stuck_for(stage: str, at_least_s: float) -> Callable[[Message], bool]:
    """STATUS=STUCK naming ``stage`` stuck for at least ``at_least_s`` seconds."""
    prefix = f"STATUS=STUCK: {stage} "

    def want(m: Message) -> bool:
        for f in m:
            if f.startswith(prefix):
                return float(f[len(prefix) :].split()[0].rstrip(",")) >= at_least_s
        return False

    return want


def test_a_stuck_stage_stops_the_watchdog_pings_and_is_named_until_it_progresses(
    systemd: FakeSystemd, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in systemd.env(watchdog_usec=400_000).items():  # WatchdogSec=0.4s: a ping every 0.2 s
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    health = Health()
    health.register("acquisition", 5.0)
    health.register("inference", 1.0)
    hang, release, stop = threading.Event(), threading.Event(), threading.Event()

    def model_call() -> None:
        if hang.is_set():
            release.wait(60.0)  # the call that does not return (released only at the end)

    def loop(stage: str, work: Callable[[], None]) -> None:
        while not stop.is_set():
            health.beat(stage)
            work()
            stop.wait(0.01)

    threads = [
        threading.Thread(target=loop, args=("acquisition", lambda: None), daemon=True),
        threading.Thread(target=loop, args=("inference", model_call), daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        with health.notifier():
            assert systemd.until(_is("READY=1"), "READY=1")[0][0] == "READY=1"
            for _ in range(3):
                systemd.until(_is("WATCHDOG=1"), "WATCHDOG=1 while every stage progresses")
            hang.set()
            systemd.until(_stuck_for("inference", 0), "STATUS=STUCK naming inference")
            text = health.status_text()
            assert text is not None and text.startswith("STUCK: inference ")
            assert "acquisition" not in text, "a stage that still loops is not stuck"
            # Several ping intervals pass while it stays stuck: not one ping among them.
            meanwhile = systemd.until(_stuck_for("inference", 3), "STATUS=STUCK: inference 3 s")
            assert ["WATCHDOG=1"] not in meanwhile, meanwhile
            release.set()  # it returns after all: fed again, the alarm is gone
            systemd.until(_is("WATCHDOG=1"), "WATCHDOG=1 once inference progresses again")
            assert health.status_text() is None
        systemd.until(_is("STOPPING=1"), "STOPPING=1")
    finally:
        stop.set()
        release.set()
        for t in threads:
            t.join(5.0)
    assert health.report()["stuck"]["inference"]["times"] == 1


def never_returning_model(num_classes: int = 2, size: int = 32) -> onnx.ModelProto:
    """The test classifier, its logits passed through a Loop that runs 2^62 times (a real model call
    that does not return; about a microsecond a turn) on any image with a lit pixel. A blank image,
    what the load-time check runs, passes straight through: the model loads and hangs on frames."""
    model = classifier_model(num_classes, size)
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["pre" if o == "logits" else o for o in node.output]
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Neg", ["v_in"], ["v_out"])],
        "spin",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1, num_classes]),
        ],
        [
            helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1, num_classes]),
        ],
    )
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(2**62, np.int64), "trips"),
            numpy_helper.from_array(np.array(0.0, np.float32), "dark"),
        ]
    )
    graph.node.append(helper.make_node("ReduceMax", ["input"], ["brightest"], keepdims=0))
    graph.node.append(helper.make_node("Greater", ["brightest", "dark"], ["go"]))
    graph.node.append(helper.make_node("Loop", ["trips", "go", "pre"], ["logits"], body=body))
    onnx.checker.check_model(model)
    return model


def test_edge_run_with_a_model_that_never_returns_is_restarted_and_reports_the_stuck_stage(
    systemd: FakeSystemd, tmp_path: Path
) -> None:
    folder = write_model_folder(
        tmp_path / "spin",
        never_returning_model(),
        {
            "name": "spin",
            "task": "classification",
            "input": {"name": "input", "shape": [1, 1, 32, 32], "color": "gray"},
            "outputs": [{"name": "logits", "kind": "logits"}],
            "labels": ["ok", "bad"],
            "ok_labels": ["ok"],
        },
    )
    config = tmp_path / "edge.toml"
    config.write_text(
        f'[source]\nurl = "video://{DEFAULT_CLIP}?loop=1"\n'
        "[inference]\nwarmup_runs = 0\n"  # the first call would not return at load either
        f'[[models]]\nname = "spin"\npath = "{folder}"\n'
        '[display]\nsinks = ["null"]\n'
        f'[output]\ndir = "{tmp_path / "runs"}"\n'
        "[outbox]\nenabled = false\n"
        "[watchdog]\ninference_s = 2\n"
    )
    env = {**os.environ, **systemd.env(watchdog_usec=1_000_000), "PYTHONUNBUFFERED": "1"}
    env.pop("WATCHDOG_PID", None)
    report_path = tmp_path / "r.json"
    proc = subprocess.Popen(
        [*EDGE, "run", "--config", str(config), "--headless", "--report", str(report_path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        systemd.until(_is("READY=1"), "READY=1", timeout_s=120)
        systemd.until(_stuck_for("inference", 0), "STATUS=STUCK naming inference", timeout_s=60)
        meanwhile = systemd.until(_stuck_for("inference", 5), "STATUS=STUCK: inference 5 s")
        assert ["WATCHDOG=1"] not in meanwhile, "systemd's watchdog is left to expire"
        proc.send_signal(signal.SIGTERM)  # what systemd does then (WatchdogSignal=SIGTERM)
        _, stderr = proc.communicate(timeout=60)  # TimeoutStopSec would SIGKILL a hang
        systemd.until(_is("STOPPING=1"), "STOPPING=1")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr  # failed, not killed: the report is written
    assert "inference made no progress" in stderr
    report = json.loads(report_path.read_text())
    assert report["exit"] == "failed"
    assert "inference made no progress" in report["reason"]
    assert report["watchdog"]["stuck"]["inference"]["at_end"] is True
