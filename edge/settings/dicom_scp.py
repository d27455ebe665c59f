"""What the DICOM Storage SCP (``dicom+scp://``) accepts: its AE title, the consoles allowed to
call it, where received objects are kept and how much it will take.

The source builds these from its URL's query (``?aet=EDGE&callers=CONSOLE1,CONSOLE2&store=...``);
the same model validates them wherever they come from, so an AE title is checked by one rule.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from edge.settings import Section

ANY_CALLER = "*"  # callers=* lets any calling AE title in: only on a closed network
DEFAULT_STORE_DIR = Path("runs") / "dicom-in"  # beside the runs, relative to the working folder


def check_ae_title(value: str) -> str:
    """An AE title as PS3.5 allows it: 1-16 characters of printable ASCII, no backslash, not only
    spaces; leading and trailing spaces are not significant (PS3.8 9.3.2)."""
    title = value.strip()
    if not title:
        raise ValueError("an AE title must not be empty or only spaces")
    if len(title) > 16:
        raise ValueError(f"AE title {title!r} is longer than 16 characters")
    if any(not (0x20 <= ord(c) < 0x7F) or c == "\\" for c in title):
        raise ValueError(f"AE title {title!r} may hold only printable ASCII without a backslash")
    return title


class DicomScpSettings(Section):
    ae_title: str = "EDGE"  # the called AE title a console must use
    allowed_callers: tuple[str, ...] = Field(min_length=1)  # calling AE titles let in; ("*",): any
    store_dir: Path = DEFAULT_STORE_DIR  # received objects, one file per SOP Instance UID
    max_object_mb: float = Field(512.0, gt=0, le=4096)  # a larger object is refused (0xA701)
    min_free_mb: float = Field(256.0, ge=0)  # the store keeps this much disk free (0xA700)

    @field_validator("ae_title")
    @classmethod
    def _check_own(cls, v: str) -> str:
        return check_ae_title(v)

    @field_validator("allowed_callers")
    @classmethod
    def _check_callers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if ANY_CALLER in v:
            if len(v) > 1:
                raise ValueError("'*' (any caller) cannot be combined with named AE titles")
            return v
        return tuple(check_ae_title(t) for t in v)

    @property
    def any_caller(self) -> bool:
        return self.allowed_callers == (ANY_CALLER,)
