"""The DICOM header under the PS3.15 Basic Application Level Confidentiality Profile (Table E.1-1).

Applied to every element at every sequence depth:

- listed attributes get the table's action; combined codes are resolved without the IOD's module
  tables (which we do not carry), choosing the result that is valid whatever the attribute's type:
  X/Z and X/Z/D -> Z (a zero-length value is legal for Type 2 and 3), X/D -> X, Z/D -> Z, except Patient
  ID (a keyed pseudonym, so one patient's files stay linked on this device), X/Z/U* -> kept with the
  UIDs inside remapped (references stay intact); D on a sequence -> emptied;
- UIDs (action U, and D on a UI) are remapped with the device key under 2.25; standard UIDs
  (1.2.840.10008.*) identify nothing and are kept;
- dates: with ``dates="shift"`` every DA/DT the table marks for the Modified Dates option, and every
  DA/DT the table does not list, moves by the patient's offset (TM unchanged: whole days); a value that
  cannot be shifted exactly falls back to the Basic action. With ``dates="remove"`` the Basic action
  applies and unlisted DA/DT are emptied;
- private attributes (odd groups) are removed unless their (group, creator, element) is allow-listed;
- unlisted attributes are kept (the profile lists what identifies), sequences among them are cleaned.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from edge.deid.dates import DUMMY_DA, DUMMY_DT, DUMMY_TM, shift_da, shift_dt
from edge.deid.errors import DeidError
from edge.deid.keys import date_shift_days, pseudonym, remap_uid
from edge.deid.table import ProfileTable, Rule, load_table

DateMode = Literal["shift", "remove"]
PATIENT_ID = 0x00100020
_STANDARD_UID_ROOT = "1.2.840.10008."
_TEXT_VRS = {"AE", "AS", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"}
_BYTES_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
_DUMMY: dict[str, Any] = {
    "AE": "ANON",
    "AS": "000D",
    "CS": "ANONYMIZED",
    "DS": "0",
    "IS": "0",
    "UR": "urn:anonymized",
    "DA": DUMMY_DA,
    "DT": DUMMY_DT,
    "TM": DUMMY_TM,
}
_PRIVATE_ENTRY = re.compile(r"^\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{2})\s*,(.+)$")
# (0012,0064) codes of PS3.16 CID 7050 for what was applied.
CODE_BASIC_PROFILE = ("113100", "Basic Application Confidentiality Profile")
CODE_CLEAN_PIXELS = ("113101", "Clean Pixel Data Option")
CODE_MODIFIED_DATES = ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")
CODE_SAFE_PRIVATE = ("113111", "Retain Safe Private Option")


@dataclass(frozen=True, slots=True)
class PrivateTag:
    """One allow-listed private attribute: odd group, its private creator, the element's low byte."""

    group: int
    creator: str
    element: int

    @classmethod
    def parse(cls, text: str) -> PrivateTag:
        """From ``"GGGG,EE,CREATOR"``, e.g. ``"0019,0C,SIEMENS MR HEADER"`` for (0019,xx0C)."""
        m = _PRIVATE_ENTRY.match(text)
        if m is None:
            raise DeidError(
                f"private allow-list entry {text!r}: expected GGGG,EE,CREATOR (hex group, hex byte)"
            )
        group, element, creator = int(m.group(1), 16), int(m.group(2), 16), m.group(3).strip()
        if group % 2 == 0 or group <= 0x0007 or group == 0xFFFF:
            raise DeidError(f"private allow-list entry {text!r}: group {group:04X} is not a private group")
        if not creator:
            raise DeidError(f"private allow-list entry {text!r}: the private creator is empty")
        return cls(group, creator, element)


@dataclass(frozen=True)
class DeidOptions:
    key: bytes
    dates: DateMode = "shift"
    keep_private: frozenset[PrivateTag] = frozenset()

    def __post_init__(self) -> None:
        if len(self.key) < 16:
            raise DeidError(f"the de-identification key must be at least 16 bytes, got {len(self.key)}")
        if self.dates not in ("shift", "remove"):
            raise DeidError(f"dates mode must be 'shift' or 'remove', got {self.dates!r}")


@dataclass
class HeaderReport:
    """What was done to one header: counts per kind of change, and anything worth a line in the log."""

    counts: Counter[str] = field(default_factory=Counter)
    shift_days: int | None = None
    notes: list[str] = field(default_factory=list)


def patient_key(ds: Dataset) -> str:
    """Who the date offset belongs to: Patient ID, else name and birth date, else the study."""
    pid = str(ds.get("PatientID", "") or "").strip()
    if pid:
        return "id:" + pid
    name, birth = (
        str(ds.get("PatientName", "") or "").strip(),
        str(ds.get("PatientBirthDate", "") or "").strip(),
    )
    if name or birth:
        return f"name:{name}\x00{birth}"
    return "study:" + str(ds.get("StudyInstanceUID", "") or "").strip()


class _Cleaner:
    def __init__(
        self, options: DeidOptions, table: ProfileTable, shift_days: int, report: HeaderReport
    ) -> None:
        self.o = options
        self.table = table
        self.days = shift_days
        self.report = report
        self.kept_private = {(p.group, p.creator, p.element) for p in options.keep_private}

    # -- walking ------------------------------------------------------------------------------------------
    def dataset(self, ds: Dataset, path: str) -> None:
        for tag in list(ds.keys()):
            elem = ds[tag]  # converts a raw element, so VR and value are known
            where = f"{path}({elem.tag.group:04X},{elem.tag.element:04X})"
            if elem.tag.is_private or elem.tag.group % 2 == 1:
                self.private(ds, elem, where)
                continue
            rule = self.table.rule_for(int(elem.tag))
            if rule is None:
                self.unlisted(ds, elem, where)
            else:
                self.listed(ds, elem, rule, where)
        self.orphan_overlays(ds)

    def orphan_overlays(self, ds: Dataset) -> None:
        """An overlay group (60xx) whose Overlay Data was removed is removed whole: rows, origin and
        type without data make an invalid overlay."""
        tags = [int(e.tag) for e in ds]
        groups = {t >> 16 for t in tags if 0x6000 <= (t >> 16) <= 0x60FF and (t >> 16) % 2 == 0}
        for group in groups:
            if (group << 16 | 0x3000) not in ds:
                for tag in [t for t in tags if t >> 16 == group]:
                    del ds[tag]
                    self.report.counts["removed"] += 1

    def items(self, elem: DataElement, where: str) -> None:
        for i, item in enumerate(elem.value or []):
            self.dataset(item, f"{where}[{i}]>")

    # -- private ------------------------------------------------------------------------------------------
    def private(self, ds: Dataset, elem: DataElement, where: str) -> None:
        tag = elem.tag
        if self.kept_private and tag.element >= 0x0010:
            if tag.element <= 0x00FF:  # a private creator: kept when one of its elements is allow-listed
                creator = str(elem.value or "").strip()
                if any(g == tag.group and c == creator for g, c, _ in self.kept_private):
                    self.report.counts["private_kept"] += 1
                    return
            else:
                creator_elem = ds.get((tag.group, tag.element >> 8))
                creator = str(creator_elem.value or "").strip() if creator_elem is not None else ""
                if (tag.group, creator, tag.element & 0xFF) in self.kept_private:
                    self.report.counts["private_kept"] += 1
                    if elem.VR == "SQ":
                        self.items(elem, where)
                    return
        del ds[tag]
        self.report.counts["private_removed"] += 1

    # -- standard attributes ------------------------------------------------------------------------------
    def unlisted(self, ds: Dataset, elem: DataElement, where: str) -> None:
        if elem.tag.element == 0x0000:  # a retired group length: wrong once anything in the group changed
            del ds[elem.tag]
            self.report.counts["removed"] += 1
        elif elem.VR == "SQ":
            self.items(elem, where)
        elif elem.VR in ("DA", "DT") and not elem.is_empty:
            if self.o.dates == "shift" and self.shift(elem):
                return
            self.empty(elem)
            self.report.counts["dates_removed"] += 1

    def listed(self, ds: Dataset, elem: DataElement, rule: Rule, where: str) -> None:
        vr = elem.VR
        if self.o.dates == "shift" and rule.modified_dates_option and vr in ("DA", "DT", "TM"):
            if vr == "TM" or elem.is_empty:  # whole-day shifts leave times of day as they were
                self.report.counts["kept"] += 1
                return
            if self.shift(elem):
                return
            self.report.notes.append(f"{where} {rule.name}: {elem.value!r} is not a full date; Basic action")
        action = _resolve(rule, int(elem.tag))
        if action == "X":
            del ds[elem.tag]
            self.report.counts["removed"] += 1
        elif action == "Z":
            self.empty(elem)
            self.report.counts["emptied"] += 1
        elif action == "U" or (action == "D" and vr == "UI"):
            self.uids(elem, where)
        elif action == "D":
            self.dummy(elem)
        elif action == "K":  # X/Z/U*: the references are kept, their UIDs remapped inside
            if vr == "SQ":
                self.items(elem, where)
            elif vr == "UI":
                self.uids(elem, where)
            self.report.counts["kept"] += 1
        else:  # pragma: no cover - _resolve returns only the codes above
            raise DeidError(f"{where} {rule.name}: no handler for action {action!r}")

    # -- values -------------------------------------------------------------------------------------------
    def empty(self, elem: DataElement) -> None:
        if elem.VR == "SQ":
            elem.value = Sequence()
        elif elem.VR in _BYTES_VRS:
            elem.value = b""
        elif elem.VR in _TEXT_VRS or elem.VR in ("DA", "DT", "TM", "DS", "IS", "UI"):
            elem.value = ""
        else:
            elem.value = None

    def dummy(self, elem: DataElement) -> None:
        vr = elem.VR
        if vr == "SQ":  # a dummy sequence would still have to say something: none is safer
            elem.value = Sequence()
        elif int(elem.tag) == PATIENT_ID and not elem.is_empty:
            elem.value = pseudonym(self.o.key, "patient", str(elem.value).strip(), "PAT-", 16)
        elif vr in _DUMMY:
            elem.value = _DUMMY[vr]
        elif vr in _TEXT_VRS:
            elem.value = "ANONYMIZED"
        elif vr in _BYTES_VRS:
            elem.value = b"\x00\x00"
        elif vr in ("FL", "FD", "SL", "SS", "SV", "UL", "US", "UV"):
            elem.value = 0
        else:  # AT and anything exotic
            elem.value = None
        self.report.counts["replaced"] += 1

    def uids(self, elem: DataElement, where: str) -> None:
        if elem.VR != "UI":
            self.report.notes.append(f"{where}: UID action on VR {elem.VR}; emptied")
            self.empty(elem)
            return
        if elem.is_empty:
            return
        values = list(elem.value) if isinstance(elem.value, MultiValue) else [elem.value]
        new = [
            str(v) if str(v).startswith(_STANDARD_UID_ROOT) else remap_uid(self.o.key, str(v)) for v in values
        ]
        elem.value = new if len(new) > 1 else new[0]
        self.report.counts["uids_remapped"] += len(new)

    def shift(self, elem: DataElement) -> bool:
        """Shift every value of a DA/DT element; False (element untouched) if one cannot be shifted."""
        fn = shift_da if elem.VR == "DA" else shift_dt
        values = list(elem.value) if isinstance(elem.value, MultiValue) else [elem.value]
        shifted = [fn(str(v), self.days) for v in values]
        if any(s is None for s in shifted):
            return False
        elem.value = shifted if len(shifted) > 1 else shifted[0]
        self.report.counts["dates_shifted"] += len(shifted)
        return True


def _resolve(rule: Rule, tag: int) -> str:
    """A combined action code reduced to one (see the module docstring for why)."""
    action = rule.action
    if action in ("X/Z", "X/Z/D"):
        return "Z"
    if action == "X/D":
        return "X"
    if action == "Z/D":
        return "D" if tag == PATIENT_ID else "Z"
    if action == "X/Z/U*":
        return "K"
    return action


def deidentify_header(
    ds: Dataset, options: DeidOptions, *, table: ProfileTable | None = None
) -> HeaderReport:
    """De-identify ``ds`` in place (not its file meta) and say what was done."""
    report = HeaderReport()
    days = date_shift_days(options.key, patient_key(ds))
    report.shift_days = days if options.dates == "shift" else None
    _Cleaner(options, table or load_table(), days, report).dataset(ds, "")
    return report


def mark_deidentified(ds: Dataset, options: DeidOptions, *, pixels_cleaned: bool) -> None:
    """Set Patient Identity Removed, the method (text, codes), Longitudinal Temporal Info Modified."""
    codes = [CODE_BASIC_PROFILE]
    if pixels_cleaned:
        codes.append(CODE_CLEAN_PIXELS)
    if options.dates == "shift":
        codes.append(CODE_MODIFIED_DATES)
    if options.keep_private:
        codes.append(CODE_SAFE_PRIVATE)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = _method_text(options, pixels_cleaned)
    ds.DeidentificationMethodCodeSequence = Sequence(_code_item(value, meaning) for value, meaning in codes)
    ds.LongitudinalTemporalInformationModified = "MODIFIED" if options.dates == "shift" else "REMOVED"


def _method_text(options: DeidOptions, pixels_cleaned: bool) -> list[str]:
    parts = ["scanner-edge PS3.15 Basic Profile", "UIDs keyed 2.25"]
    parts.append("dates shifted per patient" if options.dates == "shift" else "dates removed")
    if pixels_cleaned:
        parts.append("pixels outside US regions blanked")
    if options.keep_private:
        parts.append("allow-listed private kept")
    return parts  # LO is 64 characters a value: one short phrase per value


def _code_item(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


def parse_private_allow_list(entries: Iterable[str]) -> frozenset[PrivateTag]:
    return frozenset(PrivateTag.parse(e) for e in entries)
