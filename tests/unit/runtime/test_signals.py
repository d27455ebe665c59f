"""SIGTERM and SIGINT as a stop request, kept until the pipeline exists."""

from __future__ import annotations

import os
import signal

from edge.runtime.signals import RunStopper, stop_on_signals


class Target:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def stop(self, reason: str) -> None:
        self.reasons.append(reason)


def test_a_request_before_the_pipeline_exists_is_kept_for_it() -> None:
    stopper, pipeline = RunStopper(), Target()
    stopper.stop("received SIGTERM")
    stopper.attach(pipeline)
    assert pipeline.reasons == ["received SIGTERM"]
    stopper.stop("received SIGINT")
    assert pipeline.reasons == ["received SIGTERM", "received SIGINT"]
    assert stopper.reason == "received SIGTERM", "the first reason is the run's"


def test_a_signal_asks_for_a_stop_once_then_the_default_is_back() -> None:
    target = Target()
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals(target):
        os.kill(os.getpid(), signal.SIGTERM)  # handled in the main thread before kill returns
        assert target.reasons == ["received SIGTERM"]
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, "a second SIGTERM is not ignored"
    assert signal.getsignal(signal.SIGTERM) == before
