"""The model chain: which models run on a frame, in which order, and the one Result they make.

``ModelChain.run(frame)`` is the per-frame call. It is pure bookkeeping around the models (no
threads, no queues), so the runtime calls it from its inference thread and tests call it
directly. It owns:

- order: gating models run first, so their verdict on this frame is known to the gated ones;
- gates: a gated model runs only when the quality verdict allows it (``GateConfig``);
- ``every_n``: a model runs on one frame in n and its last output stands in for the others;
- priority: from the manifests' urgent labels (:func:`edge.results.priority_for`);
- modality: a model runs only on a frame whose modality its manifest names (ultrasound models
  never see an X-ray), and a gated model only where its gate model runs too
  (:meth:`ModelChain._routes`); a frame no model is for says so (``Result.no_model``) and is
  counted by modality (``frames_without_model``);
- the Result with its stage times, and the count of gated frames.

- an X-ray's own checks (CR, DX): exposure from the file's indices (:mod:`edge.inference.exposure`,
  with or without a model), positioning from a lung-field detector's boxes
  (:mod:`edge.inference.positioning`), a finding model's heatmap, and the X-ray priority
  (:func:`xray_priority`), all on the Result (``[xray]``, docs/xray.md);
- temporal state: a clip-level score per counted label (``[temporal]``, :mod:`edge.inference.temporal`),
  which a flickering per-frame count cannot give, folded into the Result before it leaves the
  chain, so every consumer downstream sees the same clip score.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from edge.config import ModelConfig, TemporalConfig
from edge.frames import Frame
from edge.inference.base import ModelOutput, RunnableModel
from edge.inference.exposure import assess_exposure
from edge.inference.positioning import LUNG_LABELS, assess_positioning
from edge.inference.preprocess import one_frame
from edge.inference.temporal import ClipTracker
from edge.results import (
    PRIORITY_FINDING,
    PRIORITY_NONE,
    PRIORITY_URGENT,
    Finding,
    ModelInfo,
    Quality,
    Result,
    StageTimes,
    priority_for,
    result_for,
)
from edge.settings.xray import XraySettings
from edge.xray_qa import Heatmap

# Clip-score resets that mean the image itself changed (not just the probe lifted): the tracked
# imaging area may be stale, so each model's view finds it again.
NEW_VIEW = frozenset({"scene_change", "view_changed"})
XRAY_MODALITIES = frozenset({"CR", "DX"})


def xray_priority(findings: Sequence[Finding], repeat: bool, anatomy: Collection[str] = LUNG_LABELS) -> int:
    """An X-ray's priority: urgent for a confident finding (anatomy, the lung fields, is not one) or a
    repeat recommendation (the patient is still there to repeat it); a finding for review next."""
    found = [f for f in findings if f.label not in anatomy]
    if repeat or any(not f.needs_review for f in found):
        return PRIORITY_URGENT
    return PRIORITY_FINDING if found else PRIORITY_NONE


@dataclass
class ModelSlot:
    """A loaded model, how the chain runs it, and what it said last (for ``every_n``)."""

    model: RunnableModel
    config: ModelConfig
    last: ModelOutput | None = None
    runs: int = 0

    def gate_open(self, quality: Quality | None) -> bool:
        gate = self.config.gate
        if gate is None:
            return True
        if quality is None:  # the gating model has not run yet: do not guess
            return False
        if gate.labels:
            return quality.label in gate.labels
        return quality.ok or not gate.require_ok


@dataclass(frozen=True, slots=True)
class ChainOutput:
    """One frame's Result, and the time spent inside the models themselves (pre/post excluded)."""

    result: Result
    model_ns: int


class ModelChain:
    """The models of a run, called in order on each frame; see the module docstring."""

    def __init__(
        self,
        slots: Sequence[ModelSlot],
        temporal: TemporalConfig | None = None,
        xray: XraySettings | None = None,
    ) -> None:
        gates = {s.config.gate.model for s in slots if s.config.gate}
        # Stable sort: gating models first, otherwise the configured order.
        self.slots: tuple[ModelSlot, ...] = tuple(
            sorted(slots, key=lambda s: 0 if s.model.name in gates else 1)
        )
        self.urgent = frozenset(lab for s in self.slots for lab in s.model.manifest.urgent_labels)
        self.models: tuple[ModelInfo, ...] = tuple(s.model.info for s in self.slots)
        self.gated_frames = 0  # frames on which a gate kept a model from running
        # Frames of a modality no model of the chain is for (a chest X-ray on an ultrasound
        # chain), by modality; and which models each modality seen was routed to (run report).
        self.frames_without_model: Counter[str] = Counter()
        self.routes: dict[str, tuple[ModelSlot, ...]] = {}
        temporal = temporal or TemporalConfig()
        self.clips = ClipTracker(temporal, self.counted(temporal.labels))
        self._source_id: str | None = None
        self.view_resets = 0  # times the models' tracked imaging areas were dropped (new view)
        self.xray = xray or XraySettings()
        # X-ray films seen, by what their checks said (the run report's chain.xray; docs/xray.md).
        self.xray_counts: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.slots)

    def counted(self, labels: Collection[str]) -> tuple[tuple[str, str], ...]:
        """(label, detector name) for each of ``labels`` (the overlay's per-frame counters, B-lines
        say) that a detection model of the chain reports."""
        return tuple(
            (label, s.model.name)
            for s in self.slots
            if s.model.task == "detection"
            for label in s.model.manifest.labels
            if label in labels
        )

    def report(self) -> dict[str, Any]:
        """The chain's part of the run report: frames no model was for, and each modality's models.
        Read once the inference thread has ended."""
        return {
            "frames_without_model": dict(sorted(self.frames_without_model.items())),
            "routes": {m: [s.model.name for s in slots] for m, slots in sorted(self.routes.items())},
            "clip_scores": self.clips.report(),
            "view_resets": self.view_resets,
            "xray": dict(sorted(self.xray_counts.items())),
        }

    def run(self, frame: Frame) -> ChainOutput:
        """Run the chain on ``frame``. A model's exception goes to the caller: the frame has no
        Result, and the runtime counts it (``every_n`` counts of the models before it stand)."""
        t_start = time.monotonic_ns()
        quality: Quality | None = None
        findings: list[Finding] = []
        heatmap: Heatmap | None = None
        gated = False
        ran: list[str] = []
        model_ns = 0
        t_model_start = t_model_end = 0
        if frame.source_id != self._source_id:  # another source: its imaging area is found afresh
            if self._source_id is not None:
                self._reset_views()
            self._source_id = frame.source_id
        routed = self._routes(frame)
        no_model = bool(self.slots) and not routed
        if no_model:
            self.frames_without_model[frame.modality] += 1
        with one_frame(frame.image):  # a colour frame goes to gray once for all gray models
            for slot in routed:
                if not slot.gate_open(quality):
                    gated = True
                    continue
                if slot.last is None or slot.runs % slot.config.every_n == 0:
                    out = slot.model.infer(frame.image)
                    slot.last = out
                    model_ns += out.t_model_end_ns - out.t_model_start_ns
                    t_model_start = t_model_start or out.t_model_start_ns
                    t_model_end = out.t_model_end_ns
                slot.runs += 1
                ran.append(slot.model.name)
                out = slot.last
                if out.quality is not None:
                    quality = out.quality
                heatmap = out.heatmap or heatmap
                findings.extend(out.findings)
        if gated:
            self.gated_frames += 1
        times = StageTimes(
            t_acquired_ns=frame.t_acquired_ns,
            t_infer_start_ns=t_start,
            t_model_start_ns=t_model_start or t_start,
            t_model_end_ns=t_model_end or t_start,
            t_result_ns=time.monotonic_ns(),
        )
        priority = priority_for(findings, self.urgent)
        models = self.models if len(routed) == len(self.slots) else tuple(s.model.info for s in routed)
        result = result_for(frame, quality, findings, models, times, gated, priority, no_model=no_model)
        if frame.modality in XRAY_MODALITIES:
            result = self._xray(frame, result, ran, heatmap)
        clip_scores = self.clips.update(frame, result, ran)  # an X-ray among the scans resets it too
        if self.clips.restarted in NEW_VIEW:
            self._reset_views()  # a new probe position or depth: from the next frame on
        if clip_scores and not no_model:  # the Result's time includes the clip score's
            done = dataclasses.replace(times, t_result_ns=time.monotonic_ns())
            result = dataclasses.replace(result, clip_scores=clip_scores, times=done)
        return ChainOutput(result, model_ns)

    def _xray(self, frame: Frame, result: Result, ran: list[str], heatmap: Heatmap | None) -> Result:
        """The X-ray's exposure (always), its positioning (where a lung-field detector ran on it),
        the finding's heatmap, and the X-ray priority."""
        exposure = assess_exposure(frame.meta, frame.raw, self.xray)
        lungs = any(
            s.model.name in ran and set(LUNG_LABELS) <= set(s.model.manifest.labels) for s in self.slots
        )
        positioning = None
        if lungs:
            hw = (frame.height, frame.width)
            positioning = assess_positioning(result.findings, hw, frame.meta, self.xray.positioning)
        repeat = exposure.repeat or (positioning is not None and positioning.repeat)
        self.xray_counts.update(
            films=1,
            **{f"exposure_{exposure.band or 'unknown'}": 1},
            repeat_exposure=int(exposure.repeat),
            repeat_positioning=int(positioning is not None and positioning.repeat),
            review=int(any(f.needs_review and f.box is None for f in result.findings)),
        )
        priority = xray_priority(result.findings, repeat) if not result.no_model else result.priority
        return dataclasses.replace(
            result, exposure=exposure, positioning=positioning, heatmap=heatmap, priority=priority
        )

    def _reset_views(self) -> None:
        self.view_resets += 1
        for slot in self.slots:
            reset = getattr(slot.model, "reset_view", None)  # test doubles need not have it
            if reset is not None:
                reset()

    def _routes(self, frame: Frame) -> tuple[ModelSlot, ...]:
        """The slots that run on ``frame``, in chain order: those whose manifest's ``modality``
        names the frame's, less a gated model whose gate model is not for it (its gate would
        never open: that is "not for this modality", not "gated"). Worked out once per modality."""
        routes = self.routes.get(frame.modality)
        if routes is None:
            routes = tuple(s for s in self.slots if frame.modality in s.model.manifest.modality)
            while True:  # a gate of a gate: drop until every gated model's gate model is kept
                names = {s.model.name for s in routes}
                kept = tuple(s for s in routes if s.config.gate is None or s.config.gate.model in names)
                if len(kept) == len(routes):
                    break
                routes = kept
            self.routes[frame.modality] = routes
        return routes
