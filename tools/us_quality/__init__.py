"""Offline toolchain for the bundled ``us-quality`` model: ultrasound frame-quality classification.

One module per step: ``data`` (clips' sector masks and shadows, split by clip), ``degrade``
(synthetic, labelled degradations), ``phantom`` and ``samples`` (labelled sets), ``model`` (the
CNN), ``train``, ``quantize``, ``evaluate``, ``publish`` (with ``card``, the model card). What it
shares with the other recipes (clip loading, seeding, export, INT8 forms, manifest) is
``tools.modelkit``'s. Run everything with ``python -m tools.us_quality --data /work/shared/data/pocus_dev``.
"""

LABELS: tuple[str, ...] = ("diagnostic", "no_contact", "shadow", "gain_high", "gain_low")
MODEL_NAME = "us-quality"
MODEL_VERSION = "1.1.0"
