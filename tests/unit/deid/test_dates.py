from __future__ import annotations

import pytest

from edge.deid.dates import shift_da, shift_dt


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("20200301", -1, "20200229"),  # leap day
        ("20200101", -366, "20181231"),
        ("2020.03.01", -1, "20200229"),  # ACR-NEMA form
        ("19991231 ", 1, "20000101"),  # padded
    ],
)
def test_shift_da(value: str, days: int, expected: str) -> None:
    assert shift_da(value, days) == expected


@pytest.mark.parametrize("value", ["2020", "202003", "20201340", "20200101-20200201", "garbage", ""])
def test_partial_or_bad_dates_cannot_be_shifted(value: str) -> None:
    assert shift_da(value, -400) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20200301101500", "20200229101500"),
        ("20200301101500.123456+0100", "20200229101500.123456+0100"),
        ("20200301", "20200229"),
    ],
)
def test_shift_dt_keeps_time_and_offset(value: str, expected: str) -> None:
    assert shift_dt(value, -1) == expected


def test_partial_datetime_cannot_be_shifted() -> None:
    assert shift_dt("202003", -1) is None


def test_intervals_are_kept() -> None:
    from datetime import date

    a, b = shift_da("20200110", -1000), shift_da("20200301", -1000)
    assert a is not None and b is not None
    da = date(int(a[:4]), int(a[4:6]), int(a[6:]))
    db = date(int(b[:4]), int(b[4:6]), int(b[6:]))
    assert (db - da).days == (date(2020, 3, 1) - date(2020, 1, 10)).days
