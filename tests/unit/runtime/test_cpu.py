"""CPU accounting: per-thread CPU from /proc, sampled threads by name, model sessions timed apart,
and a ledger whose stages add up to the process total (children never counted)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.inference.model import LoadedModel
from edge.runtime.cpu import (
    STAGES,
    CpuLedger,
    TimedSession,
    meter_sessions,
    process_cpu_ns,
    stage_of_thread,
    thread_cpu_ns,
)


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_threads_cpu_time_is_read_and_grows_with_work() -> None:
    me = threading.get_native_id()
    before = thread_cpu_ns(me)
    assert before is not None
    _spin(0.05)
    after = thread_cpu_ns(me)
    assert after is not None and after - before >= 30_000_000
    assert thread_cpu_ns(2**31 - 7) is None, "a thread that does not exist"


def test_threads_are_given_to_stages_by_name() -> None:
    assert stage_of_thread("probe-reader") == "acquisition"
    assert stage_of_thread("video-writer") == "recording"
    assert stage_of_thread("sector-refit_0") == "pre_post"
    assert stage_of_thread("MainThread") is None


def test_a_sampled_thread_counts_for_its_stage_and_children_count_for_nothing() -> None:
    ledger = CpuLedger(every_s=0.02)
    ledger.start()
    spun, release = threading.Event(), threading.Event()

    def writer() -> None:
        _spin(0.1)
        spun.set()
        release.wait(10)  # alive until sampled: the ledger reads a thread by name while it lives

    t = threading.Thread(target=writer, name="video-writer")
    t.start()
    # A child process burning CPU: not this process's, never in the ledger.
    burn = "import time\nt = time.process_time() + 0.3\nwhile time.process_time() < t: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    spun.wait(10)
    ledger.sample()
    release.set()
    t.join()
    ledger.add("overlay", 5_000_000)
    ledger.stop()
    ns = ledger.stages_ns()
    assert ns["recording"] >= 100_000_000, "the named thread's 100 ms"
    assert ns["overlay"] == 5_000_000
    assert sum(v for k, v in ns.items() if k != "total") == ns["total"]
    assert ns["total"] < 300_000_000, "the child's 300 ms are not this process's"
    assert ledger.threads_ms()["video-writer"] >= 100
    report = ledger.report(frames=10)
    assert set(report["ms_per_frame"]) == {*STAGES, "total"}
    assert report["ms_per_frame"]["overlay"] == 0.5


def test_model_sessions_are_timed_apart_from_pre_post(tiny_classifier: Callable[..., Path]) -> None:
    model = LoadedModel(tiny_classifier(), warmup_runs=1)
    meters = meter_sessions([model])
    assert meter_sessions([model]) == meters and isinstance(model.session, TimedSession), "wrapped once"
    ledger = CpuLedger(meters)
    ledger.start()
    t0 = time.thread_time_ns()
    for _ in range(50):
        model.infer(np.zeros((32, 32, 3), np.uint8))
    spent = time.thread_time_ns() - t0
    ledger.add("pre_post", spent)  # as the inference loop does: its whole time
    ledger.stop()
    ns = ledger.stages_ns()
    assert 0 < ns["model"] <= spent and ns["pre_post"] >= 0
    assert ns["model"] + ns["pre_post"] == spent, "the sessions' time moved from pre/post to model"
    assert meters[0].cpu_ns == ns["model"]
    assert process_cpu_ns() > 0
