"""us-quality's ``MODEL_CARD.md``, written from the files the earlier steps left.

Every figure is read from the split, the training log, the quantization choice, the grouped
cross-validation and the metrics, so the card cannot disagree with the numbers it quotes; the tests
write the committed card again from the committed model folder.
"""

from __future__ import annotations

from pathlib import Path

from edge.inference.sector import MAX_GAIN, TARGET_P99
from tools.modelkit.pocus import EXCLUDED, FRAME_STEP
from tools.us_quality import FAULT_MIN_CONFIDENCE, LABELS, MODEL_VERSION
from tools.us_quality import card_tables as T
from tools.us_quality import degrade as D
from tools.us_quality import grouped_report as G
from tools.us_quality.card_trials import (
    GATE,
    PREVIOUS_FILE,
    TARGET_DIAGNOSTIC,
    TARGET_RECALL,
    figures,
    load_report,
    scanline_trial,
    untouched_change,
    view_trials,
)
from tools.us_quality.grouped_cv import MIN_SOURCE_FRAMES
from tools.us_quality.looks import (
    DEPTH_LOOK,
    DEPTH_LOOK_P,
    LOOK,
    MAX_CLIPPED,
    MIN_P99,
    RECT_CROP_P,
    RIB_LOOK,
    RIB_LOOK_P,
)
from tools.us_quality.model import CHANNELS
from tools.us_quality.phantom import FRAMES_PER_SCENE, GAIN_MIN_DB, SHADOW_DIAG_MAX, SHADOW_MIN
from tools.us_quality.preprocess import MEAN, SCALE, SIZE, STD
from tools.us_quality.quantize import INT8_CPU_FILE, INT8_FILE
from tools.us_quality.sources import DARK_VARIANTS

REPRODUCE = (
    ".venv/bin/python -m tools.us_quality --data PATH/TO/pocus_dev --vendors PATH/TO/us_vendors "
    "--out models/us-quality --seed 0"
)
UPSTREAM = "jannisborn/covid19_pocus_ultrasound (commit 9e254a140b4faa2c200b8bb5cee2347b7198fbef)"


def _ci(r: dict, key: str) -> str:
    return f"**{r[key]:.3f}** [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"


def headline(g: dict) -> str:
    """The grouped figures in a few lines, with whether each target is met on every source / class."""
    if not g.get("clips"):
        return "No grouped figures: the data held a single source (nothing to hold out)."
    lines = []
    for form in ("fp32", "int8_cpu", "int8"):
        u = G.pooled_untouched(g, form)
        per = G.untouched(g, form)
        met = sum(r["share"] >= TARGET_DIAGNOSTIC for r in per.values())
        rec = {lab: G.recall(g, form, lab) for lab in LABELS[1:]}
        rec_text = ", ".join(f"{lab} {_ci(r, 'recall')}" for lab, r in rec.items())
        lines.append(
            f"- **{G.FORM_NAMES[form]}**: untouched frames called `diagnostic`, mean of the {u['sources']} "
            f"held-out sources {_ci(u, 'mean_of_sources')} (worst: {u['worst']:.3f}, {u['worst_source']}); "
            f"{met} of {u['sources']} sources reach {TARGET_DIAGNOSTIC:.0%}. Recall of each fault on the "
            f"held-out sources: {rec_text}; worst source per fault: "
            + ", ".join(f"{lab} {r['worst']:.3f}" for lab, r in rec.items())
            + "."
        )
    u8 = G.untouched(g, "int8_cpu")
    short = [f"{s} {r['share']:.3f}" for s, r in u8.items() if r["share"] < TARGET_DIAGNOSTIC]
    weak = [lab for lab in LABELS[1:] if G.recall(g, "int8_cpu", lab)["recall"] < TARGET_RECALL]
    verdict = (
        "**Targets (INT8 CPU, what the runtime runs): "
        + ("met." if not short and not weak else "not all met.")
        + "** "
        + (
            f"Sources below {TARGET_DIAGNOSTIC:.0%} untouched frames `diagnostic`: {', '.join(short)}. "
            if short
            else ""
        )
        + (f"Faults below {TARGET_RECALL:.0%} pooled recall: {', '.join(weak)}. " if weak else "")
        + "The mean of sources weighs every source alike, stills-only sources (1-5 frames) included."
    )
    return "\n".join([*lines, "", verdict])


FIRST_RUN_FILE = "grouped_cv_first.json"


def at_runtime_rule(g: dict) -> dict:
    """The run's figures at the manifest's fault floor, where it kept per-frame probabilities."""
    return G.at_threshold(g, FAULT_MIN_CONFIDENCE) if g.get("clips") and G.has_probabilities(g) else g


def rule_price(g: dict) -> str:
    """Arg-max against the fault floor on the same run: what the floor gives and what it costs."""
    if not g.get("clips") or not G.has_probabilities(g):
        return "-"
    return f"arg-max {figures(g)}; at {FAULT_MIN_CONFIDENCE:g} {figures(at_runtime_rule(g))}"


def first_run_section(out: Path, previous: dict, g: dict) -> str:
    """Run to run (``FIRST_RUN_FILE``, the first run of the 2.1.0 recipe, arg-max only) against the
    second (``PREVIOUS_FILE``) at the arg-max; and the headline's operating points of
    ``fault_min_confidence``."""
    first = load_report(out, FIRST_RUN_FILE)
    parts = []
    if first.get("clips") and previous.get("clips"):
        parts.append(
            "**Run to run.** The 2.1.0 recipe and seed through this leave-one-source-out twice, both at "
            f"the arg-max, INT8 CPU. First run (`{FIRST_RUN_FILE}`): {figures(first)}. Second "
            f"run, on a later tree (`{PREVIOUS_FILE}`): {figures(previous)}. The fold models' losses "
            "differ from the first logged step, so the two trees did not build bit-identical training "
            "inputs (two fits on one tree are identical); not traced. Read every figure here with that "
            "spread: a few points between two versions of this model on these folds are within it."
        )
    if g.get("clips") and G.has_probabilities(g):
        parts.append(
            f"""**Operating points.** The runtime calls a fault only at `thresholds.fault_min_confidence`
or above ({FAULT_MIN_CONFIDENCE:g} in this manifest); a deployment may set its own
(`fault_min_confidence` in the model's `[[models]]` entry), trading faults caught for fewer red meters
over good frames. Out of fold, from the headline run's probabilities (INT8 CPU; point estimates):

"""
            + G.operating_table(g)
            + "\n\n"
            + _no_point(g)
        )
    return "\n\n".join(parts)


def model_card(out: Path, splits: dict[str, list[str]], seed: int, wall_s: float | None) -> str:
    m, log = load_report(out, "metrics.json"), load_report(out, "training_log.json")
    quant, raw = load_report(out, "quantization.json"), load_report(out, "grouped_cv.json")
    previous = load_report(out, PREVIOUS_FILE)
    g = at_runtime_rule(raw)
    cfg, fit = log.get("config", {}), log.get("config", {}).get("fit", {})
    env = m.get("environment", {})
    files = sorted(f for v in splits.values() for f in v)
    excluded = "\n".join(f"- `{f}`: {why}" for f, why in EXCLUDED.items())
    gap = G.int8_gap(g) if g.get("clips") else {}
    gap_text = ", ".join(f"{G.FORM_NAMES[k]} {v * 100:.1f} points" for k, v in gap.items()) or "-"
    src_gap = G.int8_source_gap(g) if g.get("clips") else {}
    src_gap_text = ", ".join(f"{G.FORM_NAMES[k]} {v * 100:.1f}" for k, v in src_gap.items()) or "-"
    folds = "\n".join(
        f"| {f['name']} | {len(f['held_out'])} | {f['train_samples']} | {f['seconds']:.0f} |"
        for f in g.get("folds", [])
    )
    n_sources = len(G.by_source(g)) if g.get("clips") else "a few"
    trt = quant.get("forms", {}).get(INT8_FILE, {}).get("tensorrt_problems")
    variants = ", ".join(f"`{k}` (levels x{a:g}, gamma {b:g})" for k, (a, b) in DARK_VARIANTS.items())
    return f"""# us-quality {MODEL_VERSION}: ultrasound frame-quality classifier

## Headline: leave-one-source-out on pocus_dev

Each source (publication or site of the pocus_dev clips, `tools.modelkit.grouped.source_of`) is held
out in turn; a fresh model is trained on the other sources with exactly the published recipe, quantized
(both INT8 forms, calibrated on the training sources) and scored on the held-out source. The label is
the runtime's: the arg-max of the logits, except that a fault under the manifest's
`fault_min_confidence` ({FAULT_MIN_CONFIDENCE:g}) is not called (`diagnostic`). That floor was chosen after
seeing the operating points below; no threshold is fitted per fold.
Sources with fewer than {MIN_SOURCE_FRAMES} frames (a few stills each) are held out together in one fold.
Intervals are 95% bootstraps: over a source's clips for its own share, over sources for pooled figures.

{headline(g)}

The targets are >= {TARGET_DIAGNOSTIC:.0%} of untouched frames `diagnostic` on every source and
recall >= {TARGET_RECALL:.0%} for each fault. The fault recalls are on **synthetic** faults rendered on the
held-out source's frames (with random scanner looks): they say the definition below is learnt in a way
that carries to an unseen source, not how the model does on real probe-in-air or real gain errors, of
which pocus_dev has none. What INT8 loses against FP32 on these headline figures (the most over the
mean of the sources' shares and each class's pooled recall; negative: it gains): {gap_text}; the publish
gate refuses a loss over {GATE * 100:.0f} point. In any one source's share the largest difference either
way is {src_gap_text} points (frames near a class boundary).
The recipe does not prune: the network is already small ({log.get("params")} parameters, below).
**How these figures were reached (so they are read as what they are):** {MODEL_VERSION} is the recipe
of the last of seven trials recorded in this card (two more runs were their controls), the first to
pass the rule committed for it before it ran: the scan-line view, {RECT_CROP_P:.0%} of fans cropped
to a rectangle, and two fault definitions mended after looking at an earlier trial's misses
(`gain_low` crushes a share of the *echo*, not of the sector; a `shadow` leaves at least
{D.SHADOW_MIN_ECHO:.0%} of the sector's echo in view). Those mends change the rendered
faults, so its fault recalls are read against a control (the 2.2 recipe with the same mends), not
against 2.2.0's; its untouched figures (real frames, no render) compare with 2.2.0's directly:
{untouched_change(raw, previous)}. Choices made after seeing folds (the view, the crop share, the two
mends, earlier the looks and the floor) make these figures optimistic; the hidden external sets are
the check. The 2.x line (sector view) got there so: the recipe was run through
this leave-one-source-out three times. The first run (shadow fault from 45% of the sector, no rib-shadow
looks) held out `site:charlotte` at about 0.5 `diagnostic`, its good frames called `shadow`; the shadow
fault was then moved to over half the sector and narrow rib shadows added to the looks. The second run
held it out at 0.69: its worst clips (0 of 70-90 frames `diagnostic`) are deep convex views whose far
field the beam never reaches, dark below two rib shadows. A far field faded to the noise floor (a depth
set beyond penetration) was then added to the looks (2.1.0). That recipe was run twice (below: the
runs differ by several points), and the second run, with each frame's probabilities kept, was the
2.2.0 headline (`grouped_cv_2.2.json`), read at the fault floor of 2.2.0. Three choices made after
seeing the folds (two looks and the floor) make those figures optimistic; each is a variation real
scanners show or a rule for every source rather than for one, and the hidden external sets are the
check. Tried and not adopted (its
rule set before it ran: adopt only if the mean and the worst source improve as is and darker, no
fault's recall falls by over 2 points): a display gamma normalised with the gain (the median of the
imaged pixels brought to the clips' 51, gamma 0.7-1.4), one leave-one-source-out at the 0.5 floor,
INT8 CPU: darker (`x0.6 g1.4`) mean of sources 0.814 -> 0.887 and `site:charlotte` 0.543 -> 0.619,
shadow recall 0.831 -> 0.878, but `site:charlotte` as is 0.745 -> 0.725 and INT8 portable 1.4
points under FP32 (over the gate).

{first_run_section(out, previous, raw)}

{scanline_trial(out)}

{view_trials(out)}

Untouched frames (every {FRAME_STEP}rd decoded frame of every clip, no change; the clip's sector as
the runtime finds it on good frames) called `diagnostic`, per held-out source
(`*`: one clip, Wilson interval over its frames):

{G.untouched_table(g) if g.get("clips") else "-"}

The same frames as a darker scanner or display would show them ({variants}), INT8 CPU form:

{G.darker_table(g) if g.get("clips") else "-"}

Each class rendered on {g.get("config", {}).get("test_frames_per_clip")} evenly spaced frames of every
held-out clip (stills {g.get("config", {}).get("test_still_repeats")} times) with a random scanner look
(its own random stream, not the training samples): recall, pooled over held-out sources, and the worst
source's recall (`diagnostic` here is the share of good frames under random looks kept `diagnostic`):

{G.recall_table(g) if g.get("clips") else "-"}

| fold (held out) | clips | training samples | seconds |
| --- | ---: | ---: | ---: |
{folds}

## Intended use

Real-time frame-quality guidance for **lung point-of-care ultrasound**: on every frame it says whether the
image is `diagnostic` or why not, so the operator can fix the scan. It is **not a medical device and not
for diagnosis**: it says nothing about the patient's lungs, and a `diagnostic` frame is only one whose
quality looks acceptable. Labels in order: {", ".join(f"`{lab}`" for lab in LABELS)}; `ok_labels`:
`diagnostic`; a fault is called only at a probability (softmax of the logits) of
`thresholds.fault_min_confidence` = {FAULT_MIN_CONFIDENCE:g} or above, else the verdict is `diagnostic`.

## What changed in 3.0.0 (why the major version)

The input changed: the model sees the imaging sector **in scan lines** (manifest `input.view:
"scanlines"`, the lung detector's view: a convex fan resampled so that rows are depth and columns
beams; a rectangle cropped), so a rib shadow is a column band and a far field beyond the beam a bottom
band whatever the fan's angle and depth. In training, {RECT_CROP_P:.0%} of fans are cropped to a
rectangle inside them (a convex clip exported as a rectangle is then not new). Two fault definitions were
mended, after an earlier trial's misses were looked at: `gain_low` crushes {D.GAIN_LOW["black_frac"][0]:.0%}-
{D.GAIN_LOW["black_frac"][1]:.0%} of the sector's **echo** (on a view already half dark, a share of the
whole sector was mostly pixels with no echo, and the labelled fault looked like the good frame), and a
`shadow` leaves at least {D.SHADOW_MIN_ECHO:.0%} of the sector's echo in view (a shadow over a view
already dark everywhere is no contact to any reader). The decision rule is 2.2.0's. The runs that led
here, each with the rule it was given before it ran, are under *Tried* above.

## What changed in 2.2.0

The same weights as 2.1.0 and a decision rule: a fault is called only when more likely than not
(`thresholds.fault_min_confidence` {FAULT_MIN_CONFIDENCE:g}; 2.1.0 took the arg-max of five labels, so a
fault at 0.3 was called). The 0.5 floor is the `min_confidence` the manifest has carried since 1.0,
which the runtime never applied to a classifier; it was made to count after seeing the out-of-fold
operating points below. Its price, in the same run (INT8 CPU): {rule_price(previous)}.

## What changed in 2.1.0

Same input and classes as 2.0.0, retrained with one more scanner look: a far field the beam never
reaches (the deepest 10-40% of the sector faded to the noise floor, a depth set beyond penetration),
so that a deep view with a good near field is not called `shadow` or `gain_low`. Leave-one-source-out
against 2.0.0 (INT8 CPU): shadow recall 0.878 -> 0.911, sources at 95% 6 -> 7 of 8, but `site:charlotte`
held out 0.689 -> 0.614 (below).

## What changed in 2.0.0 (why the major version)

The input changed: the model sees the **imaging sector**, cropped from the vendor's screen layout and
intensity-normalised (manifest `input.view: "sector"`), not the whole frame. 1.x called most frames of
a darker scanner `gain_low` (0.60 of real exam frames of another scanner called `diagnostic`), because
it had learnt the dev clips' brightness as "good". In 2.0.0 a fault is defined **relative to the
normalised image**: it counts only when information is really lost, and a plausible scanner, gain,
gray-map, TGC or display difference that normalisation absorbs is a `diagnostic` look:

- `no_contact`: no tissue below the near field: noise floor, reverberation bands parallel to the face
  ({T.ranges(D.NO_CONTACT)}).
- `shadow`: a dark region from the skin or a rib down to the bottom over >= {D.SHADOW_MIN_AREA:.0%} of the
  sector (ribs, a lifted edge, poor coupling) ({T.ranges(D.SHADOW)}); since 3.0.0 it leaves at least
  {D.SHADOW_MIN_ECHO:.0%} of the sector's echo in view. Real rib shadows of an intercostal
  view are **not** a fault: every untouched real frame stands for `diagnostic` (1.x left out frames with
  natural shadows over 40%, which taught it to call good views with two rib shadows `shadow`).
- `gain_high`: far too high: {D.GAIN_HIGH["saturated_frac"][0]:.0%}-{D.GAIN_HIGH["saturated_frac"][1]:.0%}
  of the sector clipped at white, raised floor, visible noise ({T.ranges(D.GAIN_HIGH)}).
- `gain_low`: far too low: {D.GAIN_LOW["black_frac"][0]:.0%}-{D.GAIN_LOW["black_frac"][1]:.0%} of the sector
  (since 3.0.0: of the sector's echo, the pixels {D.ECHO_MARGIN:g} gray levels over its 5th percentile)
  crushed to the noise floor, optional TGC darkening ({T.ranges(D.GAIN_LOW)}).
- **Looks** (`tools/us_quality/looks.py`), given to every sample before its class's fault: receive
  gain x{LOOK["gain"][0]:g}-x{LOOK["gain"][1]:g} on the displayed levels (at most
  {MAX_CLIPPED:.0%} of the sector newly clipped, 99th percentile kept >= {MIN_P99:g}),
  gamma {LOOK["gamma"][0]:g}-{LOOK["gamma"][1]:g}, S-curve gray maps, lifted black, TGC slopes
  {LOOK["tgc_slope"][0]:g} to {LOOK["tgc_slope"][1]:g}, speckle blur sigma
  {LOOK["blur_sigma"][0]:g}-{LOOK["blur_sigma"][1]:g} px,
  noise; 1-2 rib shadows over {RIB_LOOK["coverage"][0]:.0%}-{RIB_LOOK["coverage"][1]:.0%} of the width in
  {RIB_LOOK_P:.0%} of samples; a far field beyond the beam's penetration (the deepest
  {DEPTH_LOOK["faded_area"][0]:.0%}-{DEPTH_LOOK["faded_area"][1]:.0%} of the sector fading to the noise
  floor) in
  {DEPTH_LOOK_P:.0%} of samples; and geometry: flips, crops, rescaling x0.6-1.5, black borders, synthetic
  fans and rectangles.

## Input

The runtime's `Preprocessor` with `view: "scanlines"` (`edge/inference/preprocess.py`): BGR -> gray;
the imaging area found by `edge.inference.sector.find_sector` (on the first frame, when the frame size
changes and every 300 frames; the vendor's text, colour bars and icons dropped); a convex fan resampled
to scan lines (`ScanlineMap`: one `cv2.remap` at about the source's resolution, then `area_resize` to
{SIZE}x{SIZE}; rows are depth, columns beams; shared with the lung detector's when both run on one
frame), a rectangle cropped to its box and `area_resize` stretched; one brightness gain that brings
the 99th percentile to {TARGET_P99:g}, at most x{MAX_GAIN:g} (a frame without contact stays dark; a
saturated one stays a flat plateau); float32 `(x * {SCALE} - {MEAN}) / {STD}`; tensor
`[1, 1, {SIZE}, {SIZE}]`. Training builds every input with that same `Preprocessor.fit`
(`tools/us_quality/view.py`), given the clip's sector (`find_sector` over 16 of the clip's frames)
with the fan fitted to the sample's mask (a sample's crops and flips move it): on a test fan the
arcs then sit a few pixels from where the runtime's fit on the live image puts them, a few gray levels
on average (`tests/unit/tools/us_quality/test_preprocess.py`), well inside the geometry training draws.

## Data

- **pocus_dev**: the CC BY 4.0 and CC BY 2.0 lung ultrasound clips and stills of {UPSTREAM}
  ({len(files)} files used; convex and linear probes; COVID-19, bacterial and viral pneumonia and healthy
  lungs; {log.get("decoded_frames")} decoded frames). Attribution is in [DATA_SOURCE.md](DATA_SOURCE.md).
  Clips are labelled clinically, not for quality: faults are rendered synthetically on their frames.
  **Every file trains the published model** ([split.json](split.json)); its real-data figures are the
  grouped ones above. Left out:
{excluded}
- **Phantom**: the B-mode simulator `firmware_bridge.phantom` (the virtual probe's image source),
  {FRAMES_PER_SCENE} frames per scene, labelled from its ground truth only: probe lifted -> `no_contact`;
  event shadow >= {SHADOW_MIN:.0%} -> `shadow`; gain >= +{GAIN_MIN_DB:g} dB -> `gain_high`,
  <= -{GAIN_MIN_DB:g} dB
  -> `gain_low`; shadow <= {SHADOW_DIAG_MAX:.0%} and |gain| <= 4 dB (findings included) -> `diagnostic`;
  frames in between dropped. {log.get("phantom_train_frames")} training frames (per class
  {log.get("phantom_train_per_class")}); test scenes use seeds no training scene uses.

{T.phantom_cases()}

- **Other vendors** (not used in training): phantom and **ocular** images of Butterfly, Clarius,
  Interson, Sonosite and Sonoque devices (KitwareMedical/ITKPOCUS test data, Apache-2.0). Not lung, and
  no quality truth: only the label counts are shown (*Other vendors* below).

## Recipe

- **Network**: {len(CHANNELS)} conv 3x3 layers (channels/stride {", ".join(f"{c}/{s}" for c, s in CHANNELS)}),
  BatchNorm, ReLU, global average pool, dropout 0.2, linear; {log.get("params")} parameters.
- **Training** (`tools/us_quality/train.py`, `fit.py`): every class rendered on {cfg.get("frames_per_clip")}
  evenly spaced frames of every clip (stills {cfg.get("still_repeats")} times): {log.get("train_samples")}
  samples (per class {log.get("train_per_class")}); {fit.get("steps")} steps of {fit.get("batch_size")}
  ({fit.get("phantom_per_batch")} phantom frames each), AdamW lr {fit.get("lr")} one-cycle, label smoothing
  {fit.get("label_smoothing")}, {fit.get("threads")} thread; the last step's weights (no selection).
  {log.get("train_s")} s. ONNX (opset 17, batch 1), ONNX Runtime vs torch max abs logit difference
  {log.get("onnx_max_abs_diff", float("nan")):.2e}.
- **INT8**, two forms from one MinMax calibration ({quant.get("calibration_samples")} frames,
  {quant.get("calibration_phantom_samples")} phantom; `tools.modelkit.quantize.quantize_qdq`, per-channel
  QInt8 weights): `{INT8_FILE}` (`files.int8`, symmetric, float biases, TensorRT-buildable;
  `tensorrt_qdq_problems`: {"none found" if trt == [] else trt}; float layers
  {T.float_nodes(quant, INT8_FILE)}) and
  `{INT8_CPU_FILE}` (`cpu_files.int8`, asymmetric QUInt8, int32 biases; float layers
  {T.float_nodes(quant, INT8_CPU_FILE)}). Layers stay float only if a form loses > 1 point on a check set of
  freshly rendered training-clip samples and phantom validation scenes (`quantization.json`).

## Phantom test set and the virtual probe's tour

{m.get("phantom_test_frames")} frames of {m.get("phantom_test_scenes")} test scenes; recall / precision:

{T.phantom_results(m)}

The virtual probe's default lung tour ({m.get("tour_frames")} frames at {m.get("tour_fps")} fps),
share `diagnostic`:

{T.tour(m)}

## Other vendors

{T.vendors(m)}

## Size and latency

ONNX Runtime {env.get("onnxruntime")} CPU, 1 intra-op thread, interleaved, `{env.get("processor")}`:

{T.latency(m)}

## What it has not been shown to do

- The fault classes are **synthetic**; recall on real probe-in-air, real coupling loss and real gain
  errors is unmeasured. Milder faults than the definitions above (e.g. a few percent clipped) are
  meant to be called `diagnostic`.
- **Small data**: {len(files)} files from {n_sources} sources; one site
  holds most of the clips and 24 of them are 4 patients. Intervals over so few sources are wide, and
  stills-only sources weigh little.
- Lung only, adult, B-mode; the other vendors' files are phantom and ocular, not lung, and carry no
  quality truth. Colour Doppler, M-mode and calipers were not modelled.
- Rib shadows: every untouched real frame counts as `diagnostic`, so a frame mostly covered by real rib
  shadows may be called `diagnostic`; the `shadow` class is learnt from synthetic shadows.
- The `diagnostic` probability is not calibrated.
- `shadow` recall on unseen sources is under its 90% target (the headline); {shadow_misses(g)}.
- 3.0.0's `gain_low` and `shadow` are defined otherwise than 2.x's (*What changed in 3.0.0*): its fault
  recalls are not comparable with 2.2.0's card, only with the control run beside it.
- Training fits each sample's fan to its mask; the runtime fits it to the live image. On a test fan
  the two differ by a few pixels at the arcs; how much that moves a verdict on a real stream is
  measured only through the runtime's own runs (the tour, other vendors), not per source.
- The darker renderings are a simple model of a darker scanner (a gain and a gamma on the displayed
  levels); a scanner with another dynamic range or speckle reduction may still shift the boundaries.

## Reproduce

```
{REPRODUCE}
```

Single steps: `split`, `train`, `quantize`, `grouped`, `evaluate`, `publish`, `bundle`; `--tiny` runs the
chain on a few frames into a temp folder; decoded frames are cached under `/tmp/us_quality_cache`. The
grouped run alone: `.venv/bin/python -m tools.us_quality.grouped_cv --data PATH/TO/pocus_dev --out FILE`;
the untouched frames of a published folder through the runtime's own preprocessing, per source:
`.venv/bin/python -m tools.us_quality.sources --model models/us-quality --data PATH/TO/pocus_dev`.
{f"The full run took {wall_s / 60:.1f} min wall time on a 2-core CPU." if wall_s else ""}
"""


def _no_point(g: dict) -> str:
    """Which targets no ``fault_min_confidence`` of the operating table meets, read from the run."""
    at = {t: G.at_threshold(g, t) for t in G.OPERATING_POINTS}
    best = {lab: max(G.recall(r, "int8_cpu", lab)["recall"] for r in at.values()) for lab in LABELS[1:]}
    short = {lab: b for lab, b in best.items() if b < TARGET_RECALL}
    worst = {t: G.pooled_untouched(r, "int8_cpu")["worst"] for t, r in at.items()}
    if not short:
        return "Every fault reaches its recall target at some floor."
    faults = ", ".join(f"`{lab}` (at most {b:.3f})" for lab, b in short.items())
    both = [t for t, w in worst.items() if w >= TARGET_DIAGNOSTIC]
    return (
        f"No point meets both targets: {faults} stays under {TARGET_RECALL:.0%} recall at every floor; "
        f"every source reaches {TARGET_DIAGNOSTIC:.0%} `diagnostic` from {min(both):g} on."
        if both
        else f"No point meets both targets: {faults} stays under {TARGET_RECALL:.0%} recall at every "
        f"floor, and no floor brings every source to {TARGET_DIAGNOSTIC:.0%} `diagnostic`."
    )


def shadow_misses(g: dict) -> str:
    """What the headline run calls the rendered shadows it misses (at the fault floor, INT8 CPU)."""
    if not g.get("clips"):
        return "-"
    k = LABELS.index("shadow")
    row = [sum(calls) for calls in zip(*_shadow_calls(g).values(), strict=True)]
    missed = {LABELS[j]: n for j, n in enumerate(row) if j != k and n}
    parts = ", ".join(f"{n} `{lab}`" for lab, n in sorted(missed.items(), key=lambda x: -x[1]))
    worst, on_worst = max(_shadow_misses_by_source(g).items(), key=lambda x: x[1][0])
    contact = row[k] + row[LABELS.index("no_contact")]
    return (
        f"of {sum(row)} rendered shadows it misses {sum(missed.values())}, called {parts}; "
        f"{on_worst[0]} of the misses are on {worst} ({on_worst[1]} of the renders). Called a contact "
        'fault (`shadow` or `no_contact`, shown as "shadow / poor coupling" or "no contact": either '
        f"points the operator at the probe's coupling): {contact} of {sum(row)} "
        f"({contact / max(sum(row), 1):.3f}); that is not the target's measure"
    )


def _shadow_calls(g: dict) -> dict[str, list[int]]:
    """Per source: how many rendered shadows were called each label (at the fault floor, INT8 CPU)."""
    k, n = LABELS.index("shadow"), len(LABELS)
    out: dict[str, list[int]] = {}
    for r in g["clips"].values():
        calls = r["int8_cpu"]["rendered_confusion"][k * n : (k + 1) * n]
        out[r["source"]] = [a + b for a, b in zip(out.get(r["source"], [0] * n), calls, strict=True)]
    return out


def _shadow_misses_by_source(g: dict) -> dict[str, tuple[int, int]]:
    """Per source: (rendered shadows missed, rendered shadows), at the fault floor, INT8 CPU."""
    k = LABELS.index("shadow")
    return {s: (sum(calls) - calls[k], sum(calls)) for s, calls in _shadow_calls(g).items()}
