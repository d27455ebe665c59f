"""De-identification: DICOM headers (PS3.15 Basic Profile, Table E.1-1), pixels, and MQTT payloads.

- ``header``: the profile applied at every sequence depth, keyed UID remapping, per-patient date shift.
- ``pixels``: everything outside the ultrasound regions blacked out; fail closed when it cannot be.
- ``files``: whole files and folders (``edge deid IN OUT``).
- ``payload``: results scrubbed of anything from the patient before they go over MQTT.
- ``keys``: the device key and the pseudonyms derived from it.
"""

from __future__ import annotations

from edge.deid.errors import DeidError, KeyFileError
from edge.deid.keys import exam_pseudonym, load_key
from edge.deid.pixels import blackout_outside

__all__ = ["DeidError", "KeyFileError", "blackout_outside", "exam_pseudonym", "load_key"]
