from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edge.deid.errors import KeyFileError
from edge.deid.keys import (
    MAX_SHIFT_DAYS,
    MIN_SHIFT_DAYS,
    date_shift_days,
    exam_pseudonym,
    load_key,
    remap_uid,
)

KEY = bytes(range(32))


def test_key_is_created_private_and_read_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "sub" / "deid.key"
    key = load_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "created a new device key" in caplog.text
    assert load_key(path) == key


def test_missing_key_without_create_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no device key file"):
        load_key(tmp_path / "none.key", create=False)


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_bytes(KEY)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key(path)


def test_key_of_wrong_length_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_bytes(b"short")
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match="exactly 32 bytes, the file holds 5"):
        load_key(path)


def test_uid_remap_is_consistent_keyed_and_valid() -> None:
    uid = "1.2.840.113619.2.1.1.322987881.621.736170080.681"
    new = remap_uid(KEY, uid)
    assert new == remap_uid(KEY, uid + "\x00")  # padding does not change the mapping
    assert new != remap_uid(bytes(32), uid)  # another device, another UID
    assert new != remap_uid(KEY, uid + "1")
    assert new.startswith("2.25.") and len(new) <= 64
    assert all(part.isdigit() and (part == "0" or not part.startswith("0")) for part in new.split("."))


def test_date_shift_is_per_patient_and_in_range() -> None:
    shifts = {date_shift_days(KEY, f"id:{i}") for i in range(200)}
    assert all(-MAX_SHIFT_DAYS <= s <= -MIN_SHIFT_DAYS for s in shifts)
    assert len(shifts) > 150  # spread, not a constant
    assert date_shift_days(KEY, "id:7") == date_shift_days(KEY, "id:7")


def test_exam_pseudonym_has_no_trace_of_its_inputs() -> None:
    p = exam_pseudonym(KEY, "DOE123", "1.2.3.4")
    assert p.startswith("ex-") and len(p) == 23
    assert "DOE" not in p and p == exam_pseudonym(KEY, "DOE123", "1.2.3.4")
    assert p != exam_pseudonym(KEY, "DOE123", "1.2.3.5")
