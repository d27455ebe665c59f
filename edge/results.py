"""Result types: what inference produces, the overlay draws, the outbox keeps and the uplink publishes.

Everything here is a small frozen dataclass with a ``to_dict()`` that returns plain JSON types
(str, int, float, bool, None, list, dict), so ``json.dumps(result.to_dict(), allow_nan=False)``
always works: numpy scalars are converted, and non-finite floats become ``None``.

``Result.result_id`` is a UUIDv7 (RFC 9562) from :func:`new_result_id`: unique, sortable by
creation time as a string, and stable once made, so the outbox and the broker can de-duplicate.

The wire messages that wrap a Result for the outbox and the broker are in ``edge.sync.messages``.
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from edge.clip_score import ClipScore
from edge.frames import Frame, Modality
from edge.xray_qa import Exposure, Heatmap, Positioning

SCHEMA_VERSION = 4  # 3: no_model, clip_scores; 4: exposure, positioning, heatmap (docs/sync.md)
Precision = Literal["fp32", "fp16", "int8"]

# Priority (set by the pipeline from the model manifests' ``urgent_labels``; the outbox sends the
# highest first): a confident finding with an urgent label, then any finding (including urgent
# labels that need review), then frames without findings.
PRIORITY_NONE = 0
PRIORITY_FINDING = 1
PRIORITY_URGENT = 2

# --- UUIDv7 -------------------------------------------------------------------------------------
# Layout (RFC 9562 section 5.7): 48-bit unix_ts_ms | ver(4)=7 | rand_a(12) | var(2)=0b10 | rand_b(62).
# For monotonicity within a process we use method 1 of section 6.2: a 42-bit counter fills rand_a
# and the top 30 bits of rand_b; it is seeded randomly each new millisecond (top bit clear, leaving
# 2**41 increments of headroom) and incremented within a millisecond. The last 32 bits stay random.
_COUNTER_BITS = 42
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
_uuid_lock = threading.Lock()
_last_ms = 0
_counter = 0


def _uuid7_fields(ms: int, counter: int, tail: int) -> int:
    rand_a = counter >> 30  # top 12 bits of the counter
    rand_b = ((counter & ((1 << 30) - 1)) << 32) | tail
    return (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b


def new_result_id() -> str:
    """A new UUIDv7 as a canonical lowercase string; strictly increasing within this process.

    If the wall clock steps back, the last timestamp is reused (and counted on), so ids never go
    backwards here; across processes or devices they are ordered to the millisecond.
    """
    global _last_ms, _counter
    now_ms = time.time_ns() // 1_000_000
    with _uuid_lock:
        if now_ms > _last_ms:
            _last_ms = now_ms
            _counter = int.from_bytes(os.urandom(6), "big") & (_COUNTER_MAX >> 1)
        else:
            _counter += 1
            if _counter > _COUNTER_MAX:  # 2**41 ids in one ms: borrow the next millisecond (RFC 6.2)
                _last_ms += 1
                _counter = 0
        value = _uuid7_fields(_last_ms, _counter, int.from_bytes(os.urandom(4), "big"))
    return str(uuid.UUID(int=value))


def uuid7_time_ms(result_id: str) -> int:
    """The unix time in ms embedded in a UUIDv7 string."""
    return uuid.UUID(result_id).int >> 80


# --- helpers ------------------------------------------------------------------------------------
def _num(value: float) -> float | None:
    """A JSON-safe float: numpy scalars become float, NaN/inf become None."""
    f = float(value)
    return f if math.isfinite(f) else None


def iso_utc(wall_time: float) -> str:
    return (
        datetime.fromtimestamp(wall_time, tz=timezone.utc)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z")
    )


# --- types --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in image pixels of the frame the result belongs to (x right, y down).

    Corners given out of order are swapped (a model's quirk should not cost a result); non-finite
    coordinates raise ValueError (no box can be drawn or published from them).
    """

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.x0, self.y0, self.x1, self.y1)):
            raise ValueError(f"box coordinates must be finite: {self}")
        # Frozen dataclass: object.__setattr__ is the sanctioned way to fix fields in __post_init__.
        if self.x1 < self.x0:
            x0, x1 = self.x1, self.x0
            object.__setattr__(self, "x0", x0)
            object.__setattr__(self, "x1", x1)
        if self.y1 < self.y0:
            y0, y1 = self.y1, self.y0
            object.__setattr__(self, "y0", y0)
            object.__setattr__(self, "y1", y1)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def clipped(self, width: int, height: int) -> Box:
        """This box clipped to a width x height image (may become zero-sized)."""
        x0 = min(max(self.x0, 0.0), float(width))
        y0 = min(max(self.y0, 0.0), float(height))
        return Box(x0, y0, min(max(self.x1, x0), float(width)), min(max(self.y1, y0), float(height)))

    def normalized(self, width: int, height: int) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) as fractions of the image size; not clipped (a box may overhang)."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        return (self.x0 / width, self.y0 / height, self.x1 / width, self.y1 / height)

    def to_mm(self, spacing: tuple[float, float] | None) -> tuple[float, float, float, float] | None:
        """(x0, y0, x1, y1) in mm from the image origin, or None when the spacing is unknown.

        ``spacing`` is (row, column) spacing in mm, as in ``Geometry.pixel_spacing_mm`` and DICOM
        PixelSpacing: y scales by the row spacing, x by the column spacing.
        """
        if spacing is None:
            return None
        row_mm, col_mm = float(spacing[0]), float(spacing[1])
        return (self.x0 * col_mm, self.y0 * row_mm, self.x1 * col_mm, self.y1 * row_mm)

    def to_dict(self) -> dict[str, Any]:
        return {"x0": _num(self.x0), "y0": _num(self.y0), "x1": _num(self.x1), "y1": _num(self.y1)}


@dataclass(frozen=True, slots=True)
class Finding:
    """One detection (or a whole-image finding when ``box`` is None)."""

    label: str
    confidence: float
    box: Box | None = None
    needs_review: bool = False  # below the model's confident threshold: shown, but flagged
    class_id: int = 0

    def to_dict(
        self, image_size: tuple[int, int] | None = None, spacing: tuple[float, float] | None = None
    ) -> dict[str, Any]:
        """``image_size`` is (width, height); with it the box is also given normalized, with
        ``spacing`` also in mm."""
        d: dict[str, Any] = {
            "label": str(self.label),
            "class_id": int(self.class_id),
            "confidence": _num(self.confidence),
            "needs_review": bool(self.needs_review),
            "box": None if self.box is None else self.box.to_dict(),
        }
        if self.box is not None and image_size is not None:
            d["box_norm"] = [_num(v) for v in self.box.normalized(*image_size)]
        if self.box is not None:
            mm = self.box.to_mm(spacing)
            d["box_mm"] = None if mm is None else [_num(v) for v in mm]
        return d


@dataclass(frozen=True, slots=True)
class Quality:
    """The image-quality (QA) verdict: the top label, its probability, and whether it is usable."""

    label: str
    score: float
    ok: bool
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": str(self.label),
            "score": _num(self.score),
            "ok": bool(self.ok),
            "probabilities": {str(k): _num(v) for k, v in self.probabilities.items()},
        }


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Which model made a result, exactly: enough to reproduce it or to recall it."""

    name: str
    version: str
    sha256: str
    precision: Precision
    backend: str  # e.g. "onnxruntime", "tensorrt"
    provider: str  # e.g. "CPUExecutionProvider", "CUDAExecutionProvider"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "precision": self.precision,
            "backend": self.backend,
            "provider": self.provider,
        }


_MS_FIELDS = ("queue_ms", "pre_ms", "model_ms", "post_ms", "e2e_ms", "overhead_ms")


def _ms(start_ns: int, end_ns: int) -> float:
    return (end_ns - start_ns) / 1e6


@dataclass(frozen=True, slots=True)
class StageTimes:
    """``time.monotonic_ns()`` stamps of one frame's trip through inference."""

    t_acquired_ns: int
    t_infer_start_ns: int  # inference picked the frame up
    t_model_start_ns: int  # pre-processing done, model called
    t_model_end_ns: int
    t_result_ns: int  # post-processing done, Result built

    @property
    def queue_ms(self) -> float:
        return _ms(self.t_acquired_ns, self.t_infer_start_ns)

    @property
    def pre_ms(self) -> float:
        return _ms(self.t_infer_start_ns, self.t_model_start_ns)

    @property
    def model_ms(self) -> float:
        return _ms(self.t_model_start_ns, self.t_model_end_ns)

    @property
    def post_ms(self) -> float:
        return _ms(self.t_model_end_ns, self.t_result_ns)

    @property
    def e2e_ms(self) -> float:
        """Acquisition to result."""
        return _ms(self.t_acquired_ns, self.t_result_ns)

    @property
    def overhead_ms(self) -> float:
        """Everything that is not the model: what our own code costs."""
        return self.e2e_ms - self.model_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "t_acquired_ns": int(self.t_acquired_ns),
            "t_infer_start_ns": int(self.t_infer_start_ns),
            "t_model_start_ns": int(self.t_model_start_ns),
            "t_model_end_ns": int(self.t_model_end_ns),
            "t_result_ns": int(self.t_result_ns),
            **{k: round(getattr(self, k), 3) for k in _MS_FIELDS},
        }


@dataclass(frozen=True, slots=True)
class Result:
    """Everything the operator and the cloud need about one analysed frame.

    ``image_size`` (width, height) and ``pixel_spacing_mm`` (row, column) are optional; when given,
    ``to_dict`` also reports each box normalized and in mm.
    """

    result_id: str
    frame_seq: int
    frame_wall_time: float  # time.time() at acquisition
    source_id: str
    modality: Modality
    quality: Quality | None
    findings: tuple[Finding, ...]
    models: tuple[ModelInfo, ...]
    times: StageTimes
    gated: bool = False  # detection skipped because the quality was not ok
    priority: int = 0  # 0 normal, higher is more urgent; set by the caller
    image_size: tuple[int, int] | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    # A still's identity when a replay shows it again (a looped still): the same
    # id is the same pixels. Kept on the device only (the keep policy); not in the wire message.
    content_id: str | None = None
    # The chain has models but none for this frame's modality (an X-ray on an ultrasound chain):
    # nothing analysed it, so an empty ``findings`` here says nothing about the image.
    no_model: bool = False
    # Each counted label over the last seconds at this probe position (edge.inference.temporal).
    clip_scores: tuple[ClipScore, ...] = ()
    # An X-ray's own checks (edge.xray_qa; None for ultrasound) and the finding's class-activation map.
    exposure: Exposure | None = None
    positioning: Positioning | None = None
    heatmap: Heatmap | None = None

    @property
    def needs_review(self) -> bool:
        return any(f.needs_review for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """The result's own fields (schema v4 without the envelope that :func:`result_message` adds)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "result",
            "result_id": self.result_id,
            "frame_seq": int(self.frame_seq),
            "frame_time": iso_utc(self.frame_wall_time),
            "source_id": self.source_id,
            "modality": self.modality,
            "quality": None if self.quality is None else self.quality.to_dict(),
            "gated": bool(self.gated),
            "priority": int(self.priority),
            "needs_review": self.needs_review,
            "image_size": None if self.image_size is None else [int(v) for v in self.image_size],
            "pixel_spacing_mm": (
                None if self.pixel_spacing_mm is None else [_num(v) for v in self.pixel_spacing_mm]
            ),
            "findings": [f.to_dict(self.image_size, self.pixel_spacing_mm) for f in self.findings],
            "models": [m.to_dict() for m in self.models],
            "times": self.times.to_dict(),
            "no_model": bool(self.no_model),
            "clip_scores": [c.to_dict() for c in self.clip_scores],
            "exposure": None if self.exposure is None else self.exposure.to_dict(),
            "positioning": None if self.positioning is None else self.positioning.to_dict(),
            "heatmap": None if self.heatmap is None else self.heatmap.to_dict(),
        }


def priority_for(findings: Sequence[Finding], urgent_labels: Collection[str]) -> int:
    """The priority rule above, in one place."""
    if not findings:
        return PRIORITY_NONE
    if any(f.label in urgent_labels and not f.needs_review for f in findings):
        return PRIORITY_URGENT
    return PRIORITY_FINDING


def content_id_of(frame: Frame) -> str | None:
    """A still's identity (the keep policy keeps one result per still): the source's, else an
    X-ray's SOP Instance UID (device-local; never in the message)."""
    if frame.meta.get("still") and frame.meta.get("content_id"):
        return str(frame.meta["content_id"])
    sop = frame.meta.get("SOPInstanceUID")
    return f"sop:{sop}" if sop and frame.modality in ("CR", "DX") else None


def result_for(
    frame: Frame,
    quality: Quality | None,
    findings: Sequence[Finding],
    models: tuple[ModelInfo, ...],
    times: StageTimes,
    gated: bool = False,
    priority: int = 0,
    *,
    no_model: bool = False,
) -> Result:
    """The Result of one inferred frame, carrying what the frame knows of itself."""
    return Result(
        result_id=new_result_id(),
        frame_seq=frame.seq,
        frame_wall_time=frame.wall_time,
        source_id=frame.source_id,
        modality=frame.modality,
        quality=quality,
        findings=tuple(findings),
        models=models,
        times=times,
        gated=gated,
        priority=priority,
        image_size=(frame.width, frame.height),
        pixel_spacing_mm=frame.geometry.pixel_spacing_mm,
        content_id=content_id_of(frame),
        no_model=no_model,
    )
