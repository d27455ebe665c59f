"""The device key and everything derived from it with HMAC-SHA-256.

One 32-byte secret per device makes every pseudonym consistent on that device (the same study UID maps
to the same new UID in every file, the same patient gets the same date offset) and unlinkable without
the key. Each derivation has its own label, so a UID, a date offset and an exam pseudonym made from the
same input are unrelated.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat
from pathlib import Path

from edge.deid.errors import KeyFileError

log = logging.getLogger(__name__)

KEY_BYTES = 32
UID_ROOT = "2.25"  # ISO/IEC 9834-8: a UID made of one big integer, no registered root needed
# Whole-day shifts into the past, 1 to 10 years: intervals are kept, and no shifted date lands in
# the future. (Full days keep times of day and weekdays-modulo-7 unrelated to the true date only
# through the key, as PS3.15 E.3.6 allows for the Modified Dates option.)
MIN_SHIFT_DAYS = 365
MAX_SHIFT_DAYS = 3652


def derive(key: bytes, label: str, value: str) -> bytes:
    """HMAC-SHA-256 of ``value`` under ``key``, separated by purpose ``label``."""
    return hmac.new(key, label.encode("ascii") + b"\x00" + value.encode("utf-8"), hashlib.sha256).digest()


def remap_uid(key: bytes, uid: str) -> str:
    """A new UID under 2.25 for ``uid``: the first 128 bits of its keyed hash as a decimal integer.

    At most 44 characters (UI allows 64); the same input always gives the same output for one key, so
    references (Referenced SOP Instance UID, Study Instance UID across files) stay intact.
    """
    digest = derive(key, "uid", uid.strip().rstrip("\x00"))
    return f"{UID_ROOT}.{int.from_bytes(digest[:16], 'big')}"


def pseudonym(key: bytes, label: str, value: str, prefix: str, length: int = 20) -> str:
    """``prefix`` + ``length`` hex digits of the keyed hash: a stable, opaque stand-in for ``value``."""
    return prefix + derive(key, label, value).hex()[:length]


def date_shift_days(key: bytes, patient: str) -> int:
    """The per-patient date offset in days (negative: into the past), from the keyed hash of the patient."""
    n = int.from_bytes(derive(key, "date-shift", patient)[:8], "big")
    return -(MIN_SHIFT_DAYS + n % (MAX_SHIFT_DAYS - MIN_SHIFT_DAYS + 1))


def exam_pseudonym(key: bytes, patient_id: str, study_uid: str) -> str:
    """The exam pseudonym for results: ``ex-`` and 20 hex digits, unlinkable without the key."""
    return pseudonym(key, "exam", f"{patient_id}\x00{study_uid}", "ex-")


def load_key(path: Path, *, create: bool = True) -> bytes:
    """The device key from ``path``; with ``create``, a new random key is written there (mode 0600) if absent.

    A key file that others can read, or that is not exactly 32 bytes, is refused: a leaked or truncated
    key silently changes or exposes every pseudonym.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        if not create:
            raise KeyFileError(
                f"{path}: no device key file (create one with `edge deid` or set a path)"
            ) from None
        return _create_key(path)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot open the device key file: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        data = f.read(KEY_BYTES + 1)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path}: the device key file is accessible to group/others (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {path}"
        )
    if len(data) != KEY_BYTES:
        raise KeyFileError(
            f"{path}: the device key must be exactly {KEY_BYTES} bytes, the file holds {len(data)}"
        )
    return data


def _create_key(path: Path) -> bytes:
    key = os.urandom(KEY_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting at once cannot both write a key; the loser reads the winner's.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_key(path, create=False)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create the device key file: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    log.warning("created a new device key %s (mode 0600): back it up; pseudonyms depend on it", path)
    return key


def default_key_path() -> Path:
    """$EDGE_DEID_KEY, else ~/.config/scanner-edge/deid.key."""
    env = os.environ.get("EDGE_DEID_KEY")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "scanner-edge" / "deid.key"
