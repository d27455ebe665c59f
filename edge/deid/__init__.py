"""De-identification: DICOM headers (PS3.15 Basic Profile, Table E.1-1), pixels, and MQTT payloads.

- ``header``: the profile applied at every sequence depth, keyed UID remapping, per-patient date shift.
- ``pixels``: everything outside the ultrasound regions blacked out; fail closed when it cannot be.
- ``files``: whole files and folders (``edge deid IN OUT``, ``cli``).
- ``payload``: results scrubbed of anything from the patient before they go over MQTT.
- ``keys``: the device key and the pseudonyms derived from it.

Submodules are imported on first use, so ``edge`` commands that never de-identify do not load pydicom.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DeidError": "edge.deid.errors",
    "KeyFileError": "edge.deid.errors",
    "blackout_outside": "edge.deid.pixels",
    "exam_pseudonym": "edge.deid.keys",
    "load_key": "edge.deid.keys",
    "scrub_payload": "edge.deid.payload",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edge.deid' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
