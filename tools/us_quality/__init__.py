"""Offline toolchain for the bundled ``us-quality`` model: ultrasound frame-quality classification.

Modules: ``data`` (clips and their sector masks), ``view`` (what the model sees: the normalised
sector, or its scan lines for comparison), ``looks`` (scanner looks and geometry) and ``degrade``
(faults, defined relative to the normalised image), ``phantom`` and ``samples`` (labelled sets),
``model`` (the CNN), ``fit`` (the training loop), ``train``, ``quantize``, ``grouped_cv`` and
``grouped_report`` (leave-one-source-out figures), ``adoption`` (the rule a recipe change must
pass), ``sources`` (a published folder per source, through the runtime), ``evaluate``, ``publish``
(with ``card``, the model card, and ``card_trials``, the recipe trials it quotes). What it shares
with the other recipes (clip loading, seeding, export, INT8 forms, manifest) is
``tools.modelkit``'s. Run everything with ``python -m tools.us_quality --data PATH/TO/pocus_dev``.
"""

LABELS: tuple[str, ...] = ("diagnostic", "no_contact", "shadow", "gain_high", "gain_low")
MODEL_NAME = "us-quality"
MODEL_VERSION = "3.0.0"
# The manifest's thresholds.fault_min_confidence: a fault is called only when more likely than not
# (the 0.5 floor the manifest carried as min_confidence since 1.0, which the runtime never applied to
# a classifier). Set after seeing the card's out-of-fold operating points; see the card.
FAULT_MIN_CONFIDENCE = 0.5
