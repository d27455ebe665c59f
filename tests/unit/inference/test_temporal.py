"""Clip-level scores on known sequences: constant counts, flicker, window expiry by time, resets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edge.clip_score import RESET_REASONS, ClipScore
from edge.config import TemporalConfig
from edge.frames import Frame, Modality
from edge.inference.temporal import ClipTracker, scene_distance, thumbnail
from edge.results import Box, Finding, ModelInfo, Quality, Result, StageTimes, new_result_id
from firmware_bridge.phantom import Scenario, Segment, frames, tour

RNG = np.random.default_rng(0)
SCENE = RNG.integers(0, 255, (48, 64), np.uint8)  # one probe position's picture
OTHER = RNG.integers(0, 255, (48, 64), np.uint8)  # another
DET = ModelInfo("det", "1", "0" * 64, "int8", "fake", "none")
QA = ModelInfo("qa", "1", "0" * 64, "int8", "fake", "none")


def b_lines(sure: int, unsure: int = 0, label: str = "b_line") -> tuple[Finding, ...]:
    box = Box(1, 2, 3, 4)
    return (*(Finding(label, 0.9, box) for _ in range(sure)),
            *(Finding(label, 0.3, box, needs_review=True) for _ in range(unsure)))  # fmt: skip


class Feed:
    """Frames and Results at given times (s), as the chain hands them to the tracker."""

    def __init__(self, config: TemporalConfig | None = None, counted=(("b_line", "det"),)) -> None:
        self.tracker = ClipTracker(config or TemporalConfig(), counted)

    def __call__(
        self,
        t_s: float,
        findings: tuple[Finding, ...] = (),
        *,
        quality: str = "diagnostic",
        ran: tuple[str, ...] = ("qa", "det"),
        image: np.ndarray = SCENE,
        modality: Modality = "US",
        source: str = "probe",
    ) -> ClipScore:
        frame = Frame(image, 0, round(t_s * 1e9), source, modality)
        q = Quality(quality, 0.9, quality == "diagnostic", {})
        result = Result(new_result_id(), 0, 0.0, source, modality, q, findings, (QA, DET),
                        StageTimes(0, 0, 0, 0, 0), gated="det" not in ran)  # fmt: skip
        return self.tracker.update(frame, result, ran)[0]

    def run(self, t0: float, t1: float, fps: float, count: int, **kw: object) -> list[ClipScore]:
        n = round((t1 - t0) * fps)
        return [self(t0 + k / fps, b_lines(count), **kw) for k in range(n)]  # type: ignore[arg-type]


def test_constant_counts_give_that_mean_once_the_window_has_a_second() -> None:
    feed = Feed()
    scores = feed.run(0.0, 5.0, 15.0, 2)
    first_ready = next(i for i, s in enumerate(scores) if s.ready)
    assert first_ready == 15, "ready when the window spans min_window_s (1 s at 15 fps)"
    assert all(s.mean == 2.0 and s.shown == 2.0 and not s.pattern for s in scores)
    last = scores[-1]
    assert last.frames == 45 and last.span_s == pytest.approx(44 / 15) and last.window_s == 3.0
    assert last.reset == "start" and last.label == "b_line"
    assert all(s.pattern for s in Feed().run(0.0, 2.0, 15.0, 3)[15:]), "3 B-lines in one view: B-pattern"
    assert not any(s.pattern for s in Feed().run(0.0, 2.0, 15.0, 3)[:15]), "no flag while settling"


def test_the_shown_number_holds_still_while_the_per_frame_count_flickers() -> None:
    feed = Feed()
    scores = [feed(k / 15, b_lines(2 + k % 2, unsure=k % 3)) for k in range(150)]  # 2, 3, 2, 3 ...
    assert {s.shown for s in scores[45:]} == {2.5}, "one number on screen once the window is full"
    assert all(2.4 <= (s.mean or 0) <= 2.6 for s in scores[45:])
    assert not any(s.pattern for s in scores), "needs_review findings are never counted"


def test_hysteresis_moves_the_number_only_past_a_tenth() -> None:
    feed = Feed(TemporalConfig(window_s=1.0, min_window_s=0.0))
    feed.run(0.0, 1.0, 10.0, 2)
    # 9 frames of 2 and one of 3 in the window: mean 2.1 -> shown moves to 2.1; the same frame
    # leaving the window brings it back to 2.0.
    s = feed(1.0, b_lines(3))
    assert s.mean == pytest.approx(2.1) and s.shown == 2.1
    s = feed(1.1, b_lines(2))
    assert s.shown == 2.1  # mean 2.1 still (the 3 is in the window)
    tail = [feed(1.1 + k / 10, b_lines(2)) for k in range(1, 12)]
    assert tail[-1].mean == 2.0 and tail[-1].shown == 2.0


def test_the_window_is_by_time_not_by_frame_count() -> None:
    for fps in (5.0, 15.0, 30.0):
        feed = Feed()
        feed.run(0.0, 3.0, fps, 4)
        after = feed.run(3.0, 4.5, fps, 0)
        # 1.5 s of zeros after 3 s of fours: about half the 3 s window is fours.
        assert after[-1].mean == pytest.approx(2.0, abs=4 / (3 * fps) + 1e-9), fps
        gone = feed.run(4.5, 6.5, fps, 0)[-1]
        assert gone.mean == 0.0 and gone.shown == 0.0 and abs(gone.frames - 3 * fps) <= 1, fps
        assert gone.reset == "start", "expiry is not a reset"


def test_no_contact_resets_at_once_and_counts_once() -> None:
    feed = Feed()
    feed.run(0.0, 2.0, 15.0, 3)
    lifted = [feed(2.0 + k / 15, quality="no_contact", ran=("qa",)) for k in range(10)]
    assert all(s.frames == 0 and s.mean is None and s.shown is None and not s.ready for s in lifted)
    assert lifted[0].reset == "no_contact" and not lifted[0].pattern
    back = feed.run(2.7, 3.0, 15.0, 1)[-1]
    assert back.reset == "no_contact" and back.frames == 4 and back.mean == 1.0, "nothing from before"
    assert feed.tracker.resets == {"no_contact": 1}


def test_a_gate_closed_briefly_keeps_the_window_and_a_long_one_resets_it() -> None:
    feed = Feed()
    feed.run(0.0, 2.0, 10.0, 2)
    brief = [feed(2.0 + k / 10, quality="gain_low", ran=("qa",)) for k in range(4)]  # 0.3 s closed
    assert brief[-1].reset == "start" and brief[-1].frames == 20 and brief[-1].mean == 2.0
    feed.run(2.4, 3.0, 10.0, 2)
    long = [feed(3.0 + k / 10, quality="gain_low", ran=("qa",)) for k in range(8)]  # 0.7 s closed
    assert long[5].reset == "start" and long[6].reset == "gate_closed" and long[6].frames == 0
    assert feed.tracker.resets == {"gate_closed": 1}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"image": SCENE[:40]}, "view_changed"),  # another frame size (depth changed)
        ({"modality": "DX"}, "view_changed"),
        ({"source": "probe-2"}, "source_changed"),
        ({"image": OTHER}, "scene_change"),
    ],
)
def test_a_new_view_resets_the_window(change: dict[str, object], reason: str) -> None:
    feed = Feed()
    feed.run(0.0, 2.0, 15.0, 4)
    s = feed(2.0, b_lines(1), **change)  # type: ignore[arg-type]
    assert s.reset == reason and s.frames == 1 and s.mean == 1.0 and reason in RESET_REASONS


def test_a_gap_in_time_resets_the_window() -> None:
    feed = Feed()
    feed.run(0.0, 2.0, 15.0, 4)
    assert feed(2.5, b_lines(1)).reset == "start", "half a second without frames is the same scan"
    assert feed(4.0, b_lines(1)).reset == "gap"
    assert feed(3.0, b_lines(1)).reset == "gap", "time going back is a gap too"


def test_noise_and_gain_are_not_a_new_view() -> None:
    feed = Feed()
    noisy = np.clip(SCENE.astype(int) + RNG.integers(-20, 21, SCENE.shape), 0, 255).astype(np.uint8)
    darker = (SCENE * 0.5).astype(np.uint8)
    for k, image in enumerate((SCENE, noisy, darker, SCENE)):
        assert feed(k / 15, b_lines(2), image=image).reset == "start"
    assert scene_distance(thumbnail(SCENE), thumbnail(darker)) < 0.01
    black = np.zeros_like(SCENE)
    assert scene_distance(thumbnail(black), thumbnail(black)) == 0.0
    assert scene_distance(thumbnail(black), thumbnail(SCENE)) == 1.0


def test_the_threshold_parts_the_phantom_tour_stops_and_holds_within_one() -> None:
    """The default scene_change (0.1) against the virtual probe's lung tour, each stop cut to 1 s."""
    stops = tour("lung").segments
    short = Scenario(tuple(Segment(float(i), 1.0, s.preset, s.events, s.params, motion_mm_s=1.0)
                           for i, s in enumerate(stops)))  # fmt: skip
    thumbs = [(int(k // 15), thumbnail(img)) for k, (img, _) in enumerate(frames(short, 15.0, seed=0))]
    pairs = list(itertools.pairwise(thumbs))
    within = [scene_distance(a, b) for (sa, a), (sb, b) in pairs if sa == sb]
    across = [scene_distance(a, b) for (sa, a), (sb, b) in pairs if sa != sb]
    across.append(scene_distance(thumbs[-1][1], thumbs[0][1]))  # the tour loops
    limit = TemporalConfig().scene_change
    assert len(across) == len(stops) and min(across) > limit, across
    assert max(within) < limit / 10, max(within)


def test_only_the_counted_labels_of_their_detector_are_scored() -> None:
    feed = Feed(TemporalConfig(labels=("pleural_line",), pattern_at={}), counted=(("pleural_line", "det"),))
    s = feed(0.0, (*b_lines(4), *b_lines(1, label="pleural_line")))
    assert s.label == "pleural_line" and s.mean == 1.0
    assert feed.run(0.0, 2.0, 15.0, 0)[-1].pattern is False, "no pattern_at for the label: no flag"
    none = ClipTracker(TemporalConfig(), ())
    frame = Frame(SCENE, 0, 0, "probe")
    result = Result(new_result_id(), 0, 0.0, "probe", "US", None, (), (), StageTimes(0, 0, 0, 0, 0))
    assert none.update(frame, result, ()) == (), "no detector reports the labels: no clip score"


def test_the_report_keeps_last_and_peak_per_source() -> None:
    feed = Feed()
    feed.run(0.0, 2.0, 15.0, 4)
    feed.run(2.0, 4.0, 15.0, 1, image=OTHER)
    feed.run(4.0, 6.0, 15.0, 2, source="probe-2")
    r = feed.tracker.report()
    assert r["labels"] == {"b_line": "det"} and r["window_s"] == 3.0
    assert r["resets"] == {"scene_change": 1, "source_changed": 1}
    one = r["sources"]["probe"]["b_line"]
    assert one["last"] == 1.0 and one["peak"] == 4.0 and one["pattern_frames"] == 15
    assert one["scored_frames"] == 30
    assert r["sources"]["probe-2"]["b_line"]["last"] == 2.0 and r["sources_dropped"] == 0


def test_a_score_is_plain_json() -> None:
    s = Feed().run(0.0, 1.5, 15.0, 3)[-1]
    d = s.to_dict()
    assert d == {"label": "b_line", "mean": 3.0, "shown": 3.0, "frames": 22, "span_s": pytest.approx(1.4),
                 "window_s": 3.0, "ready": True, "pattern": True, "reset": "start"}  # fmt: skip
