"""Scrub a result (or feedback) message before it goes over MQTT: nothing from the patient may leave.

Allow-list, not deny-list: the message is rebuilt field by field from the schema v4 layout
(``docs/result.schema.json``); every kept value has a checked type or shape, ``source_id`` (a file path or
URL that may name the patient, e.g. ``dicom:///data/DOE^JOHN/1.dcm``) becomes a keyed pseudonym, and any
field the scrubber does not know is dropped, whatever it holds. Strings that are kept (model labels and
names, device id) come from manifests and config, never from the source, and must still look like short
identifiers; a value of the wrong shape in a required field raises DeidError naming the field.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from typing import Any

from edge.clip_score import RESET_REASONS
from edge.deid.errors import DeidError
from edge.deid.keys import exam_pseudonym, pseudonym

__all__ = ["exam_pseudonym", "scrub_payload", "source_pseudonym"]

log = logging.getLogger(__name__)

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:/+()#-]{0,63}$")  # labels, model names: no ^ = \ or newlines
# An X-ray check's words (edge.xray_qa), written by the runtime from numbers and code strings.
_SENTENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.,:;()%+/'?\[\]-]{0,199}$")
_DEVICE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_EXAM = re.compile(r"^ex-[0-9a-f]{20}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_B64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]{0,15})://")
_MODALITIES = ("US", "DX", "CR", "OT")
_PRECISIONS = ("fp32", "fp16", "int8")
_TIME_INTS = ("t_acquired_ns", "t_infer_start_ns", "t_model_start_ns", "t_model_end_ns", "t_result_ns")
_TIME_MS = ("queue_ms", "pre_ms", "model_ms", "post_ms", "e2e_ms", "overhead_ms")
_unknown_logged: set[str] = set()


def source_pseudonym(key: bytes, source_id: str) -> str:
    """``<scheme>:src-<20 hex>`` (or ``src-<20 hex>``): the same source always gives the same pseudonym."""
    m = _SCHEME.match(source_id)
    name = pseudonym(key, "source", source_id, "src-")
    return f"{m.group(1)}:{name}" if m else name


# -- typed checks: each returns the clean value or raises DeidError naming the field -------------------------
def _int(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise DeidError(f"payload field {where}: expected an integer, got {type(v).__name__}")
    return int(v)


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise DeidError(f"payload field {where}: expected true/false, got {type(v).__name__}")
    return v


def _num(v: Any, where: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise DeidError(f"payload field {where}: expected a number, got {type(v).__name__}")
    return float(v) if math.isfinite(v) else None


def _match(pattern: re.Pattern[str], v: Any, where: str) -> str:
    if not isinstance(v, str) or not pattern.match(v):
        shown = repr(v) if pattern is not _TOKEN else f"a {type(v).__name__} of {len(str(v))} characters"
        raise DeidError(f"payload field {where}: not of the expected form ({shown})")
    return v


def _token(v: Any, where: str) -> str:
    return _match(_TOKEN, v, where)


def _one_of(options: tuple[str, ...]) -> Callable[[Any, str], str]:
    def check(v: Any, where: str) -> str:
        if v not in options:
            raise DeidError(f"payload field {where}: expected one of {', '.join(options)}")
        return str(v)

    return check


def _nums(n: int) -> Callable[[Any, str], list[float | None] | None]:
    def check(v: Any, where: str) -> list[float | None] | None:
        if v is None:
            return None
        if not isinstance(v, (list, tuple)) or len(v) != n:
            raise DeidError(f"payload field {where}: expected {n} numbers")
        return [_num(x, f"{where}[{i}]") for i, x in enumerate(v)]

    return check


def _size(v: Any, where: str) -> list[int] | None:
    if v is None:
        return None
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise DeidError(f"payload field {where}: expected [width, height]")
    return [_int(x, f"{where}[{i}]") for i, x in enumerate(v)]


def _object(fields: dict[str, Callable[[Any, str], Any]], v: Any, where: str) -> dict[str, Any]:
    """Rebuild a dict from the fields we know; unknown keys are dropped (logged once per name)."""
    if not isinstance(v, dict):
        raise DeidError(f"payload field {where}: expected an object, got {type(v).__name__}")
    out: dict[str, Any] = {}
    for name, value in v.items():
        check = fields.get(name)
        if check is None:
            path = f"{where}.{name}" if where else str(name)
            if path not in _unknown_logged:
                _unknown_logged.add(path)
                log.info("payload field %s is not in the schema: dropped before upload", path)
            continue
        out[name] = check(value, f"{where}.{name}" if where else name)
    return out


def _box(v: Any, where: str) -> dict[str, Any] | None:
    if v is None:
        return None
    return _object({k: _num for k in ("x0", "y0", "x1", "y1")}, v, where)


def _finding(v: Any, where: str) -> dict[str, Any]:
    fields = {
        "label": _token,
        "class_id": _int,
        "confidence": _num,
        "needs_review": _bool,
        "box": _box,
        "box_norm": _nums(4),
        "box_mm": _nums(4),
    }
    return _object(fields, v, where)


def _list(item: Callable[[Any, str], Any]) -> Callable[[Any, str], list[Any]]:
    def check(v: Any, where: str) -> list[Any]:
        if not isinstance(v, (list, tuple)):
            raise DeidError(f"payload field {where}: expected a list")
        return [item(x, f"{where}[{i}]") for i, x in enumerate(v)]

    return check


def _quality(v: Any, where: str) -> dict[str, Any] | None:
    if v is None:
        return None
    out = _object({"label": _token, "score": _num, "ok": _bool, "probabilities": _probabilities}, v, where)
    return out


def _probabilities(v: Any, where: str) -> dict[str, float | None]:
    if not isinstance(v, dict):
        raise DeidError(f"payload field {where}: expected an object")
    return {_token(k, f"{where} key"): _num(x, f"{where}.{k}") for k, x in v.items()}


def _model(v: Any, where: str) -> dict[str, Any]:
    fields = {
        "name": _token,
        "version": _token,
        "sha256": lambda x, w: _match(_SHA256, x, w),
        "precision": _one_of(_PRECISIONS),
        "backend": _token,
        "provider": _token,
    }
    return _object(fields, v, where)


def _times(v: Any, where: str) -> dict[str, Any]:
    fields: dict[str, Callable[[Any, str], Any]] = {k: _int for k in _TIME_INTS}
    fields.update({k: _num for k in _TIME_MS})
    return _object(fields, v, where)


def _clip_score(v: Any, where: str) -> dict[str, Any]:
    fields = {
        "label": _token,
        "mean": _num,
        "shown": _num,
        "frames": _int,
        "span_s": _num,
        "window_s": _num,
        "ready": _bool,
        "pattern": _bool,
        "reset": _one_of(RESET_REASONS),
    }
    return _object(fields, v, where)


def _sentence(v: Any, where: str) -> str:
    return "" if v == "" else _match(_SENTENCE, v, where)


def _maybe(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    return lambda v, where: None if v is None else check(v, where)


def _exposure(v: Any, where: str) -> dict[str, Any] | None:
    fields = {
        "ei": _num,
        "target": _num,
        "di": _num,
        "di_from": _maybe(_one_of(("computed", "file"))),
        "target_from": _maybe(_token),
        "band": _maybe(_one_of(("within", "over", "over_far", "under", "under_far"))),
        "message": _sentence,
        "repeat": _bool,
        "clipped_fraction": _num,
    }
    return None if v is None else _object(fields, v, where)


def _positioning(v: Any, where: str) -> dict[str, Any] | None:
    check: dict[str, Callable[[Any, str], Any]] = {
        "name": _token,
        "ok": _bool,
        "value": _num,
        "detail": _sentence,
    }
    fields = {
        "messages": _list(_sentence),
        "repeat": _bool,
        "skipped": _maybe(_sentence),
        "checks": _list(lambda x, w: _object(check, x, w)),
    }
    return None if v is None else _object(fields, v, where)


def _heatmap(v: Any, where: str) -> dict[str, Any] | None:
    if v is None:
        return None
    rows = v.get("values") if isinstance(v, dict) else None
    if not isinstance(rows, list) or sum(len(r) if isinstance(r, list) else 1 for r in rows) > 256:
        raise DeidError(f"payload field {where}.values: expected at most 16 x 16 numbers")
    fields = {"label": _token, "rect": _nums(4), "values": _list(_list(_num))}
    return _object(fields, v, where)


def _device(v: Any, where: str) -> dict[str, Any]:
    def site(x: Any, w: str) -> str | None:
        return None if x is None else _token(x, w)

    return _object({"id": lambda x, w: _match(_DEVICE_ID, x, w), "site": site}, v, where)


def _thumbnail(v: Any, where: str) -> dict[str, Any] | None:
    if v is None:
        return None
    fields = {
        "mime": _one_of(("image/jpeg",)),
        "width": _int,
        "height": _int,
        "data_b64": lambda x, w: _match(_B64, x, w),
    }
    return _object(fields, v, where)


def _uuid(v: Any, where: str) -> str:
    return _match(_UUID, v, where)


def _utc(v: Any, where: str) -> str:
    return _match(_UTC, v, where)


def scrub_payload(result: dict[str, Any], *, key: bytes) -> dict[str, Any]:
    """A copy of ``result`` (a result or feedback message, schema v1 to v4) that is safe to publish.

    ``source_id`` becomes a keyed pseudonym, ``exam_pseudonym`` is kept only if it already is one (any
    other value is pseudonymised), unknown fields are dropped, and every kept value is type-checked.
    """
    if not isinstance(result, dict):
        raise DeidError(f"payload: expected a JSON object, got {type(result).__name__}")
    if result.get("kind") == "feedback":
        return _object(_FEEDBACK, result, "")
    out = _object(_RESULT, result, "")
    if "source_id" in result:
        out["source_id"] = source_pseudonym(key, str(result["source_id"]))
    if "exam_pseudonym" in result:
        exam = result["exam_pseudonym"]
        if exam is not None and not (isinstance(exam, str) and _EXAM.match(exam)):
            exam = pseudonym(key, "exam-given", str(exam), "ex-")
        out["exam_pseudonym"] = exam
    return out


def _keep(v: Any, where: str) -> Any:  # replaced after the walk (source_id, exam_pseudonym)
    return None


_RESULT: dict[str, Callable[[Any, str], Any]] = {
    "schema_version": _int,
    "kind": _one_of(("result",)),
    "result_id": _uuid,
    "frame_seq": _int,
    "frame_time": _utc,
    "source_id": _keep,
    "modality": _one_of(_MODALITIES),
    "quality": _quality,
    "gated": _bool,
    "priority": _int,
    "needs_review": _bool,
    "image_size": _size,
    "pixel_spacing_mm": _nums(2),
    "findings": _list(_finding),
    "models": _list(_model),
    "times": _times,
    "no_model": _bool,
    "clip_scores": _list(_clip_score),
    "exposure": _exposure,
    "positioning": _positioning,
    "heatmap": _heatmap,
    "device": _device,
    "exam_pseudonym": _keep,
    "thumbnail": _thumbnail,
}

_FEEDBACK: dict[str, Callable[[Any, str], Any]] = {
    "schema_version": _int,
    "kind": _one_of(("feedback",)),
    "feedback_id": _uuid,
    "result_id": _uuid,
    "verdict": _one_of(("confirm", "reject")),
    "operator": lambda x, w: None if x is None else _token(x, w),
    "time": _utc,
    "device": _device,
    "priority": _int,
}
