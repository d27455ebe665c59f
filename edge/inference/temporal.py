"""Clip-level scores: a per-frame count flickers; its mean over the last seconds at one spot does not.

:class:`ClipTracker` is fed each frame's Result by the model chain and gives back one
:class:`~edge.clip_score.ClipScore` per counted label (``[temporal] labels`` that a detection model
of the chain reports, through ``ModelChain.counted``: nothing here knows B-lines). The score is the
mean confident count per frame (confident: not ``needs_review``, i.e. at or above the manifest's
``review_below``, as the overlay counts) over the frames of the last ``window_s`` seconds on which
the label's detector ran, by the frames' acquisition times, not their number. That is the model
card's clip score, on a window that follows the probe. (A replay read as fast as it decodes,
``realtime=0``, stamps each frame when it was decoded: its window is then processing time.)

The window is one probe position, so it restarts (reason in ``ClipScore.reset``) when:

- the quality model says a ``reset_on`` label (``no_contact``: the probe was lifted);
- the detector's gate stays closed longer than ``gate_closed_s`` (a short flicker does not count);
- the view changes: another frame size or modality (``view_changed``), another source
  (``source_changed``), no frame for over ``max_gap_s`` (``gap``);
- the scene changes: 1 - the correlation of 32x32 grey thumbnails of consecutive analysed frames
  is over ``scene_change`` (default 0.1). Measured on the virtual probe's lung tour at 15 fps:
  at most 0.003 within a stop, at least 0.121 from one stop to the next; on the 45 video clips of
  the pocus_dev data set (see its SOURCE.md) and the bundled clip, frames two apart, 0.43% of frame
  pairs are over 0.1, in 5 clips (cuts at the start of trimmed clips, fast sweeps). Correlation,
  not a difference of grey levels, so a gain change is not a new view. Cost: under a millisecond
  per frame (:func:`thumbnail`).

``shown`` is the mean to one decimal, moved only when the mean moves ``_STEP`` or more from it, so
the number on screen holds still; ``ready`` once the window spans ``min_window_s``; ``pattern``
(e.g. the B-pattern, three or more B-lines in one view) only when ready, from ``shown``.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edge.clip_score import ClipScore
from edge.config import TemporalConfig
from edge.frames import Frame
from edge.results import Result

THUMB_PX = 32
_STEP = 0.1  # hysteresis of the shown number: it moves when the mean is this far from it
_MAX_SOURCES = 100  # sources the run report keeps figures for (a folder of many files)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A THUMB_PX x THUMB_PX grey thumbnail, zero mean and unit norm, flattened (float32).

    Cheap by design (under a millisecond at 1080p): every k-th row and column (k keeps the short
    side at 256 px or more), the green channel of a colour frame (grey ultrasound has three equal
    ones), then an area average. An area average over a whole 1080p colour frame costs 10 ms."""
    k = max(1, min(image.shape[:2]) // 256)
    view = image[::k, ::k] if image.ndim == 2 else image[::k, ::k, min(1, image.shape[2] - 1)]
    small = cv2.resize(np.ascontiguousarray(view), (THUMB_PX, THUMB_PX), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float32)
    v = small.ravel() - small.mean()
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 1e-6 else v  # a flat image stays all zeros


def scene_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - the correlation of two thumbnails: 0 the same picture, 1 unrelated, 2 inverted. A flat
    image (no structure: all black) is 0 from another flat one and 1 from anything else."""
    if not a.any() or not b.any():
        return 0.0 if not a.any() and not b.any() else 1.0
    return 1.0 - float(np.dot(a, b))


@dataclass
class _Window:
    label: str
    detector: str
    pattern_at: float | None
    entries: deque[tuple[int, int]] = field(default_factory=deque)  # (t_acquired_ns, count)
    total: int = 0  # the sum of the entries' counts, kept as they come and go (not re-summed a frame)
    full: bool = False  # an entry has expired since the last reset: the window spans window_s
    shown: float | None = None


@dataclass
class _Figures:
    """One source and label, for the run report."""

    last: float | None = None
    last_mean: float | None = None
    peak: float | None = None
    scored_frames: int = 0  # frames with a ready score
    pattern_frames: int = 0

    def add(self, score: ClipScore) -> None:
        self.last, self.last_mean = score.shown, score.mean
        if score.ready and score.shown is not None:
            self.scored_frames += 1
            self.pattern_frames += score.pattern
            self.peak = score.shown if self.peak is None else max(self.peak, score.shown)


class ClipTracker:
    """The windows of one run's chain (one source at a time); see the module docstring."""

    def __init__(self, config: TemporalConfig, counted: Sequence[tuple[str, str]]) -> None:
        self.config = config
        self.windows = [_Window(lab, det, config.pattern_at.get(lab)) for lab, det in counted]
        self.reset_reason = "start"
        self.resets: Counter[str] = Counter()
        self.restarted: str | None = None  # why the last update restarted the windows, if it did
        self.figures: OrderedDict[str, dict[str, _Figures]] = OrderedDict()
        self.sources_dropped = 0
        self._window_ns = round(config.window_s * 1e9)
        self._last_t: int | None = None
        self._last_view: tuple[object, ...] | None = None
        self._last_thumb: np.ndarray | None = None
        self._gate_closed_since: int | None = None

    def update(self, frame: Frame, result: Result, ran: Collection[str]) -> tuple[ClipScore, ...]:
        """The scores after ``frame``; ``ran``: the models whose output this Result carries (a
        gated or unrouted model is not among them)."""
        if not self.windows:
            return ()
        t = frame.t_acquired_ns
        routed = {m.name for m in result.models}
        self.restarted = None
        reason = self._why_reset(frame, result, t, routed, ran)
        if reason is not None:
            self._reset(reason)
        for w in self.windows:
            if w.detector in ran:
                sure = sum(1 for f in result.findings if f.label == w.label and not f.needs_review)
                w.entries.append((t, sure))
                w.total += sure
            while w.entries and w.entries[0][0] <= t - self._window_ns:  # the window is (t - window_s, t]
                w.total -= w.entries.popleft()[1]
                w.full = True
        scores = tuple(self._score(w, t) for w in self.windows)
        self._record(result.source_id, scores)
        # A frame carries only the scores of detectors routed to it: an X-ray shows no B-line score.
        return tuple(s for s, w in zip(scores, self.windows) if w.detector in routed)

    def _why_reset(
        self, frame: Frame, result: Result, t: int, routed: set[str], ran: Collection[str]
    ) -> str | None:
        cfg = self.config
        view = (frame.source_id, frame.modality, frame.width, frame.height)
        last_view, last_t = self._last_view, self._last_t
        self._last_view, self._last_t = view, t
        thumb, last_thumb = thumbnail(frame.image), self._last_thumb
        self._last_thumb = thumb
        gate_closed = any(w.detector in routed and w.detector not in ran for w in self.windows)
        if not gate_closed:
            self._gate_closed_since = None
        elif self._gate_closed_since is None:
            self._gate_closed_since = t
        if last_view is None or last_t is None or last_thumb is None:
            return None  # the first frame: the window starts with reason "start"
        if view[0] != last_view[0]:
            return "source_changed"
        if view != last_view:
            return "view_changed"
        if t < last_t or t - last_t > cfg.max_gap_s * 1e9:
            return "gap"
        if result.quality is not None and result.quality.label in cfg.reset_on:
            return "no_contact"
        since = self._gate_closed_since
        if since is not None and t - since > cfg.gate_closed_s * 1e9:
            return "gate_closed"
        if scene_distance(thumb, last_thumb) > cfg.scene_change:
            return "scene_change"
        return None

    def _reset(self, reason: str) -> None:
        # A window already empty for the same reason (the probe still lifted) is not a new reset.
        if reason != self.reset_reason or any(w.entries for w in self.windows):
            self.resets[reason] += 1
            self.restarted = reason
        self.reset_reason = reason
        for w in self.windows:
            w.entries.clear()
            w.total = 0
            w.full = False
            w.shown = None

    def _score(self, w: _Window, t: int) -> ClipScore:
        n = len(w.entries)
        mean = w.total / n if n else None
        if mean is not None and (w.shown is None or abs(mean - w.shown) >= _STEP - 1e-9):
            w.shown = round(mean, 1)
        span_s = (t - w.entries[0][0]) / 1e9 if n else 0.0
        ready = n > 0 and (w.full or span_s >= self.config.min_window_s)
        pattern = ready and w.pattern_at is not None and w.shown is not None and w.shown >= w.pattern_at
        return ClipScore(w.label, mean, w.shown, n, span_s, self.config.window_s, ready, pattern,
                         self.reset_reason)  # fmt: skip

    def _record(self, source_id: str, scores: tuple[ClipScore, ...]) -> None:
        per = self.figures.get(source_id)
        if per is None:
            if len(self.figures) >= _MAX_SOURCES:
                self.figures.popitem(last=False)
                self.sources_dropped += 1
            per = self.figures[source_id] = {s.label: _Figures() for s in scores}
        for s in scores:
            per[s.label].add(s)

    def report(self) -> dict[str, Any]:
        """The run report's ``chain.clip_scores``: the settings, the resets by reason, and per
        source and label the last and peak shown score, frames scored and frames with a pattern."""
        return {
            "labels": {w.label: w.detector for w in self.windows},
            "window_s": self.config.window_s,
            "resets": dict(sorted(self.resets.items())),
            "sources": {src: {lab: vars(f) for lab, f in per.items()} for src, per in self.figures.items()},
            "sources_dropped": self.sources_dropped,
        }
