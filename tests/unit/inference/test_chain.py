"""The model chain on its own: order, gates, every_n, priority, counted labels, the Result's times."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pytest

from edge.config import GateConfig, ModelConfig
from edge.frames import Frame, Geometry, Modality
from edge.inference.chain import ModelChain, ModelSlot
from edge.inference.model import ModelOutput
from edge.results import PRIORITY_FINDING, PRIORITY_NONE, PRIORITY_URGENT, Box, Finding, ModelInfo, Quality


@dataclass
class Manifest:
    labels: tuple[str, ...] = ()
    urgent_labels: tuple[str, ...] = ()
    modality: tuple[str, ...] = ("US",)


@dataclass
class Fake:
    """LoadedModel's per-frame surface: answers from a script, a fixed time spent in the model."""

    name: str
    task: str = "classification"
    quality: str | None = None  # classification: the label it says ("ok" labels are usable)
    findings: tuple[Finding, ...] = ()
    manifest: Manifest = field(default_factory=Manifest)
    calls: list[int] = field(default_factory=list)  # the frames it ran on, by seq (pixel value)
    fail: bool = False

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(self.name, "1", "0" * 64, "int8", "fake", "none")

    def infer(self, image: np.ndarray) -> ModelOutput:
        self.calls.append(int(image.flat[0]))
        if self.fail:
            raise RuntimeError("model failed")
        t0 = time.monotonic_ns()
        q = None if self.quality is None else Quality(self.quality, 0.9, self.quality == "ok", {})
        return ModelOutput(q, self.findings, t0, t0 + 1_000_000)  # 1 ms in the model


def frame(seq: int, modality: Modality = "US") -> Frame:
    img = np.full((40, 60, 3), seq % 256, np.uint8)
    return Frame(
        img, seq, time.monotonic_ns(), "fake", modality, geometry=Geometry(pixel_spacing_mm=(0.5, 0.5))
    )


def slot(model: Fake, **cfg: object) -> ModelSlot:
    return ModelSlot(model=model, config=ModelConfig(name=model.name, **cfg))  # type: ignore[arg-type]


def b_line(confidence: float = 0.9, review: bool = False) -> Finding:
    return Finding("b_line", confidence, Box(1, 2, 10, 20), needs_review=review)


def test_gating_models_run_first_and_the_rest_keep_their_order() -> None:
    qa = Fake("qa", quality="ok")
    det = Fake("det", task="detection")
    other = Fake("other")
    chain = ModelChain([slot(det, gate=GateConfig(model="qa")), slot(other), slot(qa)])
    assert [s.model.name for s in chain.slots] == ["qa", "det", "other"]
    assert [m.name for m in chain.models] == ["qa", "det", "other"] and len(chain) == 3


def test_a_closed_gate_skips_the_model_and_counts_the_frame() -> None:
    qa = Fake("qa", quality="no_contact")
    det = Fake("det", task="detection", findings=(b_line(),))
    chain = ModelChain([slot(det, gate=GateConfig(model="qa")), slot(qa)])
    out = chain.run(frame(0))
    assert det.calls == [] and qa.calls == [0]
    assert out.result.gated and out.result.findings == () and chain.gated_frames == 1
    assert out.result.quality is not None and out.result.quality.label == "no_contact"
    qa.quality = "ok"
    out = chain.run(frame(1))
    assert det.calls == [1] and not out.result.gated and chain.gated_frames == 1
    assert out.result.findings == (b_line(),)


def test_gate_labels_and_require_ok() -> None:
    qa = Fake("qa", quality="poor")
    by_label = slot(Fake("a"), gate=GateConfig(model="qa", labels=("poor",)))
    lenient = slot(Fake("b"), gate=GateConfig(model="qa", require_ok=False))
    strict = slot(Fake("c"), gate=GateConfig(model="qa"))
    chain = ModelChain([by_label, lenient, strict, slot(qa)])
    chain.run(frame(0))
    assert [len(s.model.calls) for s in (by_label, lenient, strict)] == [1, 1, 0]  # type: ignore[attr-defined]
    assert not strict.gate_open(None), "no verdict yet: the gated model does not guess"


def test_every_n_reuses_the_last_output_between_runs() -> None:
    det = Fake("det", task="detection", findings=(b_line(),))
    chain = ModelChain([slot(det, every_n=3)])
    outs = [chain.run(frame(i)) for i in range(7)]
    assert det.calls == [0, 3, 6]
    assert all(o.result.findings == (b_line(),) for o in outs), "reused frames carry the last output"
    assert [o.model_ns for o in outs] == [1_000_000, 0, 0, 1_000_000, 0, 0, 1_000_000]


def test_a_gated_frame_does_not_advance_every_n() -> None:
    qa = Fake("qa", quality="no_contact")
    det = Fake("det", task="detection")
    chain = ModelChain([slot(det, every_n=2, gate=GateConfig(model="qa")), slot(qa)])
    chain.run(frame(0))
    qa.quality = "ok"
    for i in (1, 2, 3):
        chain.run(frame(i))
    assert det.calls == [1, 3]


def test_priority_from_the_manifests_urgent_labels() -> None:
    urgent = Manifest(labels=("b_line", "effusion"), urgent_labels=("effusion",))
    det = Fake("det", task="detection", manifest=urgent)
    chain = ModelChain([slot(det)])
    assert chain.urgent == {"effusion"}
    assert chain.run(frame(0)).result.priority == PRIORITY_NONE
    det.findings = (b_line(),)
    assert chain.run(frame(1)).result.priority == PRIORITY_FINDING
    det.findings = (Finding("effusion", 0.4, None, needs_review=True),)
    assert chain.run(frame(2)).result.priority == PRIORITY_FINDING, "urgent but unsure: not urgent"
    det.findings = (Finding("effusion", 0.9),)
    assert chain.run(frame(3)).result.priority == PRIORITY_URGENT


def test_counted_labels_name_the_detectors_that_report_them() -> None:
    det = Fake("det", task="detection", manifest=Manifest(labels=("b_line", "pleura")))
    qa = Fake("qa", manifest=Manifest(labels=("b_line",)))  # a classifier does not count boxes
    chain = ModelChain([slot(qa), slot(det)])
    assert chain.counted({"b_line", "a_line"}) == (("b_line", "det"),)
    assert chain.counted(()) == ()


def test_the_result_carries_the_frame_the_models_and_stage_times() -> None:
    qa = Fake("qa", quality="ok")
    det = Fake("det", task="detection", findings=(b_line(),))
    chain = ModelChain([slot(qa), slot(det)])
    f = frame(42)
    out = chain.run(f)
    r = out.result
    assert (r.frame_seq, r.source_id, r.image_size, r.pixel_spacing_mm) == (42, "fake", (60, 40), (0.5, 0.5))
    assert [m.name for m in r.models] == ["qa", "det"]
    t = r.times
    assert t.t_acquired_ns == f.t_acquired_ns <= t.t_infer_start_ns <= t.t_model_start_ns
    assert t.t_model_start_ns < t.t_model_end_ns and out.model_ns == 2_000_000
    assert len({chain.run(frame(43)).result.result_id, r.result_id}) == 2


def test_no_models_still_give_a_result() -> None:
    out = ModelChain([]).run(frame(1))
    r = out.result
    assert r.quality is None and r.findings == () and not r.gated and out.model_ns == 0
    assert r.times.t_model_start_ns == r.times.t_model_end_ns == r.times.t_infer_start_ns


def test_a_models_failure_reaches_the_caller() -> None:
    bad = Fake("bad", fail=True)
    chain = ModelChain([slot(Fake("qa", quality="ok")), slot(bad)])
    with pytest.raises(RuntimeError, match="model failed"):
        chain.run(frame(0))
    bad.fail = False
    assert chain.run(frame(1)).result.quality is not None


def test_a_model_runs_only_on_its_modality() -> None:
    qa = Fake("qa", quality="ok")
    det = Fake("det", task="detection", findings=(b_line(),))
    xray = Fake("xray", findings=(Finding("nodule", 0.9),), manifest=Manifest(modality=("DX", "CR")))
    chain = ModelChain([slot(qa), slot(det, gate=GateConfig(model="qa")), slot(xray)])
    us = chain.run(frame(0)).result
    assert [m.name for m in us.models] == ["qa", "det"] and not us.no_model
    assert us.findings == (b_line(),)
    dx = chain.run(frame(1, "DX")).result
    assert qa.calls == [0] and det.calls == [0] and xray.calls == [1], "no US model saw the X-ray"
    assert [m.name for m in dx.models] == ["xray"] and not dx.no_model and not dx.gated
    assert dx.quality is None and [f.label for f in dx.findings] == ["nodule"]
    assert chain.frames_without_model == {}
    assert chain.report()["routes"] == {"DX": ["xray"], "US": ["qa", "det"]}


def test_a_frame_no_model_is_for_says_so_and_is_counted() -> None:
    qa = Fake("qa", quality="gain_high")  # what the US quality model said of a chest X-ray
    det = Fake("det", task="detection", findings=(b_line(),))
    chain = ModelChain([slot(qa), slot(det, gate=GateConfig(model="qa"))])
    for i, modality in enumerate(("CR", "DX", "OT", "CR")):
        r = chain.run(frame(i, modality)).result
        assert r.no_model and r.models == () and r.findings == () and r.quality is None
        assert not r.gated and r.priority == PRIORITY_NONE and r.modality == modality
    assert qa.calls == [] and det.calls == []
    assert chain.frames_without_model == {"CR": 2, "DX": 1, "OT": 1} and chain.gated_frames == 0
    assert chain.report()["frames_without_model"] == {"CR": 2, "DX": 1, "OT": 1}
    assert not ModelChain([]).run(frame(0, "DX")).result.no_model, "a run without models is not flagged"


def test_a_gated_model_does_not_run_where_its_gate_model_is_not_for_the_modality() -> None:
    qa = Fake("qa", quality="ok")  # US only
    det = Fake("det", task="detection", findings=(b_line(),), manifest=Manifest(modality=("US", "DX")))
    after = Fake("after", manifest=Manifest(modality=("US", "DX")))  # gated on det: a gate of a gate
    chain = ModelChain(
        [slot(qa), slot(det, gate=GateConfig(model="qa")), slot(after, gate=GateConfig(model="det"))]
    )
    r = chain.run(frame(0, "DX")).result
    assert det.calls == [] and after.calls == [] and r.no_model
    assert not r.gated and chain.gated_frames == 0, "not for this modality is not 'gated'"
    chain.run(frame(1))
    assert det.calls == [1]


def test_the_result_carries_the_clip_score_of_each_counted_label() -> None:
    from edge.config import TemporalConfig

    qa = Fake("qa", quality="ok")
    det = Fake("det", task="detection", findings=(b_line(), b_line(), b_line(0.3, review=True)),
               manifest=Manifest(labels=("b_line", "pleura")))  # fmt: skip
    chain = ModelChain([slot(qa), slot(det, gate=GateConfig(model="qa"))], TemporalConfig(min_window_s=0.0))
    t0 = time.monotonic_ns()
    outs = []
    for i in range(5):
        f = frame(i)
        outs.append(chain.run(Frame(f.image * 0 + 90, i, t0 + i * 66_000_000, "fake")).result)
    clip = outs[-1].clip_scores
    assert [c.label for c in clip] == ["b_line"] and clip[0].mean == 2.0 and clip[0].frames == 5
    assert clip[0].ready and not clip[0].pattern and clip[0].reset == "start"
    assert outs[-1].to_dict()["clip_scores"][0]["shown"] == 2.0
    assert outs[-1].times.t_result_ns >= outs[-1].times.t_infer_start_ns
    qa.quality = "no_contact"
    lifted = chain.run(Frame(f.image * 0 + 90, 5, t0 + 5 * 66_000_000, "fake")).result
    assert lifted.gated and lifted.clip_scores[0].reset == "no_contact" and lifted.clip_scores[0].frames == 0
    assert chain.report()["clip_scores"]["resets"] == {"no_contact": 1}
    xray = chain.run(Frame(f.image, 6, t0 + 6 * 66_000_000, "fake", "DX")).result
    assert xray.no_model and xray.clip_scores == (), "no clip score on a frame no model saw"
    qa.quality = "ok"
    back = chain.run(Frame(f.image * 0 + 90, 7, t0 + 7 * 66_000_000, "fake")).result
    assert back.clip_scores[0].reset == "view_changed" and back.clip_scores[0].frames == 1
    plain = ModelChain([slot(Fake("qa2", quality="ok"))]).run(frame(0)).result
    assert plain.clip_scores == () and plain.to_dict()["clip_scores"] == [], "no detector, no clip score"


@dataclass
class Viewful(Fake):
    """A model with a tracked imaging area (the "sector" and "scanlines" views)."""

    view_resets: int = 0

    def reset_view(self) -> None:
        self.view_resets += 1


def _scene(seed: int, seq: int, source: str = "fake", t_ns: int = 0) -> Frame:
    img = np.random.default_rng(seed).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    return Frame(img, seq, t_ns, source, "US", geometry=Geometry(pixel_spacing_mm=(0.5, 0.5)))


def test_a_new_source_or_a_new_view_makes_the_models_find_the_imaging_area_again() -> None:
    det = Viewful("lung", task="detection", findings=(b_line(),), manifest=Manifest(labels=("b_line",)))
    chain = ModelChain([slot(det)])
    t = time.monotonic_ns()
    for i in range(5):  # one scene, one source: nothing to find again
        chain.run(_scene(1, i, t_ns=t + i * 33_000_000))
    assert det.view_resets == 0
    chain.run(_scene(2, 5, t_ns=t + 5 * 33_000_000))  # the probe moved: another image
    assert det.view_resets == 1 and chain.clips.reset_reason == "scene_change"
    chain.run(_scene(2, 6, source="other", t_ns=t + 6 * 33_000_000))
    assert det.view_resets == 2  # once, before the models ran on the new source's first frame
    assert chain.clips.reset_reason == "source_changed" and chain.report()["view_resets"] == 2
