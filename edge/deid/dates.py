"""Date and date-time shifting by whole days (PS3.15 "Retain Longitudinal Temporal Information with
Modified Dates"): every date of one patient moves by the same offset, so intervals are kept.

A value that cannot be shifted exactly (a partial date such as ``2019`` or ``201903``, a range, garbage)
gives None: the caller then removes it as the Basic Profile says rather than keep a real date.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

DUMMY_DA = "19000101"
DUMMY_TM = "000000"
DUMMY_DT = "19000101000000"

_DA = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_DA_OLD = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})$")  # ACR-NEMA style, still found in old files
# YYYYMMDD then the optional rest: HHMMSS.FFFFFF and a UTC offset &ZZXX, kept as they are.
_DT = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{0,6}(?:\.\d{1,6})?)([+-]\d{4})?$")


def _shift(y: str, m: str, d: str, days: int) -> str | None:
    try:
        shifted = date(int(y), int(m), int(d)) + timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    if not 1 <= shifted.year <= 9999:
        return None
    return shifted.strftime("%Y%m%d").rjust(8, "0")


def shift_da(value: str, days: int) -> str | None:
    """A DA value moved by ``days``, or None when it is not one full date."""
    text = value.strip()
    m = _DA.match(text) or _DA_OLD.match(text)
    return None if m is None else _shift(m.group(1), m.group(2), m.group(3), days)


def shift_dt(value: str, days: int) -> str | None:
    """A DT value whose date part is moved by ``days`` (time and UTC offset kept), or None."""
    m = _DT.match(value.strip())
    if m is None:
        return None
    new = _shift(m.group(1), m.group(2), m.group(3), days)
    return None if new is None else new + m.group(4) + (m.group(5) or "")
