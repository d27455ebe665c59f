"""An X-ray still on screen: it stays in its window, with its overlay, until the next one comes or the
window is closed, whether its source ended (one file) or waits for the console's next exposure; a
recording and the outbox get it once. Real films through the dicom:// source and tiny real models."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.config import ModelConfig, PipelineConfig
from edge.frames import Frame
from edge.inference.chain import ModelChain, ModelSlot
from edge.inference.model import LoadedModel
from edge.render.overlay import compose
from edge.runtime.pipeline import Pipeline
from edge.sources import open_source
from edge.sources.base import SourceInfo
from tests.support.xray import film_dicom
from tests.support.xray_models import finding_folder


class Window:
    """A sink that behaves as a window for the pipeline: named "window", closed by its user once it
    has been shown ``close_after`` images (a first show and the holds that follow)."""

    name = "window"

    def __init__(self, close_after: int) -> None:
        self.close_after = close_after
        self.shown: list[tuple[int, np.ndarray]] = []

    def open(self, width: int, height: int, fps: float | None) -> None: ...

    def show(self, image: np.ndarray, frame_seq: int) -> None:
        self.shown.append((frame_seq, image.copy()))

    def wants_stop(self) -> bool:
        return len(self.shown) >= self.close_after

    def close(self) -> None: ...


class Recording(Window):
    name = "video"

    def __init__(self) -> None:
        super().__init__(close_after=10**9)


def chain(tmp_path: Path) -> ModelChain:
    model = LoadedModel(finding_folder(tmp_path / "cxr-finding", (0.0, 3.0)), backend="onnxruntime")
    return ModelChain([ModelSlot(model, ModelConfig(name="cxr-finding"))])


def run_guarded(p: Pipeline, limit_s: float = 20.0) -> bool:
    """Run ``p``; a guard stops it after ``limit_s`` so a hold that never ends fails, not hangs.
    Returns whether the guard had to stop it."""
    guard = threading.Timer(limit_s, p.stop, args=("the test's guard",))
    guard.start()
    try:
        p.run()
    finally:
        guard.cancel()
    return p.stop_reason == "the test's guard"


def test_a_single_x_ray_file_stays_in_its_window_until_the_window_is_closed(tmp_path: Path) -> None:
    path = film_dicom(tmp_path / "f.dcm", "pneumonia", ExposureIndex=400, TargetExposureIndex=400)
    src = open_source(f"dicom://{path}")
    window, video = Window(close_after=6), Recording()
    p = Pipeline(src, chain(tmp_path), [window, video], PipelineConfig())
    src.open()
    try:
        assert not run_guarded(p), "the held still was never let go"
    finally:
        src.close()
    assert p.exit_reason == "completed" and p.end_reason == "the source ended"
    assert len(window.shown) == 6 and {seq for seq, _ in window.shown} == {0}
    first = window.shown[0][1]
    assert all(np.array_equal(img, first) for _, img in window.shown), "held as drawn, overlay and all"
    assert first.shape[:2] == (512, 512) and (first != first[..., :1]).any(), "the heatmap's colours"
    assert len(video.shown) == 1, "the recording gets the still once"


def test_without_a_window_a_single_still_ends_the_run_at_once(tmp_path: Path) -> None:
    path = film_dicom(tmp_path / "f.dcm", "good")
    src = open_source(f"dicom://{path}")
    video = Recording()
    p = Pipeline(src, chain(tmp_path), [video], PipelineConfig())
    src.open()
    try:
        assert not run_guarded(p, limit_s=10.0)
    finally:
        src.close()
    assert p.exit_reason == "completed" and len(video.shown) == 1


def test_a_run_ended_by_max_frames_is_not_held(tmp_path: Path) -> None:
    path = film_dicom(tmp_path / "f.dcm", "good")
    src = open_source(f"dicom://{path}?loop=1&fps=20")  # the same still again and again
    window = Window(close_after=10**9)
    p = Pipeline(src, chain(tmp_path), [window], PipelineConfig())
    src.open()
    guard = threading.Timer(20.0, p.stop, args=("the test's guard",))
    guard.start()
    try:
        p.run(max_frames=3)
    finally:
        guard.cancel()
        src.close()
    assert p.stop_reason is None and p.end_reason == "3 frames acquired (--max-frames)"
    assert {seq for seq, _ in window.shown} == {0, 1, 2}


class ConsoleLike:
    """A live still source as a Storage SCP is: an exposure, then None at each read's timeout while
    the console is idle (never at its end). The next exposure comes once ``shown_enough`` says the
    screen has held the last one a while (no clock: the test waits on what happened, not on time)."""

    def __init__(self, frames: list[Frame], shown_enough: Callable[[int], bool]) -> None:
        self.frames, self.shown_enough = frames, shown_enough
        self.info = SourceInfo(url="console://", kind="console", realtime=True)
        self._last: int | None = None

    def open(self) -> None: ...

    @property
    def eof(self) -> bool:
        return False

    def read(self, timeout: float | None = None) -> Frame | None:
        if not self.frames or (self._last is not None and not self.shown_enough(self._last)):
            time.sleep(timeout or 0.05)
            return None
        frame = self.frames.pop(0)
        self._last = frame.seq
        return frame

    def close(self) -> None: ...


def test_a_live_still_stays_between_exposures_and_the_next_replaces_it(tmp_path: Path) -> None:
    frames = []
    for seq, name in enumerate(("good", "pneumonia")):
        with open_source(f"dicom://{film_dicom(tmp_path / f'{name}.dcm', name)}") as src:
            one = src.read(5.0)
        assert one is not None and one.meta["still"]
        frames.append(Frame(one.image, seq, time.monotonic_ns(), "console", "DX", meta=one.meta))
    window, video = Window(close_after=10**9), Recording()

    def shown(seq: int) -> int:
        return sum(1 for s, _ in window.shown if s == seq)

    src = ConsoleLike(frames, shown_enough=lambda seq: shown(seq) >= 4)
    p = Pipeline(src, chain(tmp_path), [window, video], PipelineConfig())
    # The user stops the run once the second film has been held as long: a hold that never comes
    # leaves it to the guard, and the test fails.
    stopper = threading.Thread(target=lambda: _stop_when(p, lambda: shown(1) >= 4), daemon=True)
    stopper.start()
    assert not run_guarded(p), "a still was not held between exposures"
    seqs = [seq for seq, _ in window.shown]
    assert seqs[0] == 0 and shown(0) >= 4 and shown(1) >= 4, "each held while the console was idle"
    assert seqs == sorted(seqs), "never the old one again once the new one is up"
    assert sorted({seq for seq, _ in video.shown}) == [0, 1], "the recording: each exposure, none held"
    assert len(video.shown) <= 4, "once, or twice where the result came after the bare image"


def _stop_when(p: Pipeline, done: Callable[[], bool]) -> None:
    while not p.stop_event.is_set():
        if done():
            p.stop("the user stopped it")
            return
        time.sleep(0.02)


class Burst:
    """A console that sent several exposures at once (a burst, or a backlog after a pause): all are
    waiting at the first read, each stamped when it arrived, long before the runtime reads it."""

    def __init__(self, frames: list[Frame]) -> None:
        self.frames = frames
        self.info = SourceInfo(url="console://", kind="console", realtime=True)  # a live source

    def open(self) -> None: ...

    @property
    def eof(self) -> bool:
        return not self.frames

    def read(self, timeout: float | None = None) -> Frame | None:
        return self.frames.pop(0) if self.frames else None

    def close(self) -> None: ...


def test_each_still_of_a_burst_is_analysed_even_under_the_live_policy(tmp_path: Path) -> None:
    path = film_dicom(tmp_path / "f.dcm", "good", ExposureIndex=400, TargetExposureIndex=400)
    with open_source(f"dicom://{path}") as one_film:
        film = one_film.read(5.0)
    assert film is not None
    old = time.monotonic_ns() - 2_000_000_000  # arrived 2 s before the runtime got to them
    frames = [
        Frame(film.image, k, old + k, "console", "DX", meta={**film.meta, "content_id": f"sop:{k}#0"})
        for k in range(6)
    ]
    results: list[int] = []
    p = Pipeline(Burst(frames), chain(tmp_path), [Recording()], PipelineConfig(inference_policy="latest"),
                 result_handlers=[lambda frame, result: results.append(result.frame_seq)],
                 max_age_ms=50.0)  # fmt: skip
    assert not run_guarded(p)
    assert sorted(results) == list(range(6)), "every film analysed once: none replaced, none let go as stale"
    assert p.counters.skipped == 0


def test_the_live_slot_keeps_a_waiting_still_until_taken_but_lets_a_repeat_of_it_replace_it() -> None:
    from edge.runtime.handoff import LatestSlot

    def still(seq: int, content: str) -> Frame:
        return Frame(
            np.zeros((4, 4, 3), np.uint8), seq, 0, "c", "DX", meta={"still": True, "content_id": content}
        )

    slot = LatestSlot("latest")
    slot.put(still(0, "a#0"))
    slot.put(still(1, "a#0"))  # the same image again (a looped still): replaced, as any live frame
    assert slot.replaced == 1
    put_done = threading.Event()
    putter = threading.Thread(target=lambda: (slot.put(still(2, "b#0")), put_done.set()))
    putter.start()
    assert not put_done.wait(0.3), "another film waits for the one in the slot to be taken"
    first = slot.take(1.0)
    putter.join(5.0)
    second = slot.take(1.0)
    assert first is not None and second is not None and (first.seq, second.seq) == (1, 2)
    assert slot.replaced == 1


class Slow:
    """A real loaded model that takes its time (a big model on a small box): the display gets ahead."""

    def __init__(self, model: LoadedModel, seconds: float) -> None:
        self.model, self.seconds = model, seconds
        self.name, self.task, self.manifest, self.info = model.name, model.task, model.manifest, model.info

    def infer(self, image: np.ndarray) -> object:
        time.sleep(self.seconds)
        return self.model.infer(image)


class LastFilmHeld(Window):
    """Closed by its user once the burst's last film (seq 2) has been held on screen."""

    def __init__(self) -> None:
        super().__init__(close_after=10**9)

    def wants_stop(self) -> bool:
        return sum(1 for seq, _ in self.shown if seq == 2) >= 2


def test_each_film_of_a_burst_is_drawn_with_its_own_result_never_another_films(tmp_path: Path) -> None:
    frames = []
    for k, (name, ei) in enumerate((("good", 100), ("pneumonia", 400), ("cut_off", 1600))):
        with open_source(
            f"dicom://{film_dicom(tmp_path / f'{k}.dcm', name, ExposureIndex=ei, TargetExposureIndex=400)}"
        ) as src:
            one = src.read(5.0)
        assert one is not None
        frames.append(Frame(one.image, k, time.monotonic_ns(), "console", "DX", meta=one.meta))
    model = LoadedModel(finding_folder(tmp_path / "cxr-finding", (0.0, 3.0)), backend="onnxruntime")
    slow = ModelChain([ModelSlot(Slow(model, 0.3), ModelConfig(name="cxr-finding"))])  # type: ignore[arg-type]
    results = {}
    window = LastFilmHeld()
    p = Pipeline(Burst(list(frames)), slow, [window], PipelineConfig(inference_policy="latest"),
                 result_handlers=[lambda f, r: results.__setitem__(r.frame_seq, r)])  # fmt: skip
    assert not run_guarded(p)
    assert sorted(results) == [0, 1, 2]
    firsts = {}
    for seq, image in window.shown:
        firsts.setdefault(seq, image)
    assert sorted(firsts) == [0, 1, 2], "each film shown"
    for seq, image in firsts.items():
        own = compose(frames[seq].image, results[seq], None)
        assert np.array_equal(image[:120], own[:120]), f"film {seq} drawn with another film's verdict"
