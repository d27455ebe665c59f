"""Result fixtures shared by the result, message and outbox tests."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import numpy as np

from edge.frames import Frame, Geometry
from edge.results import (
    Box,
    Finding,
    ModelInfo,
    Quality,
    Result,
    StageTimes,
    new_result_id,
    priority_for,
    result_for,
)
from tests.support.paths import DOCS

SCHEMA_PATH = DOCS / "result.schema.json"


def validator(ref: str | None = None) -> jsonschema.Draft202012Validator:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    if ref is not None:
        schema = {**schema, "$ref": f"#/$defs/{ref}"}
        del schema["oneOf"]
    return jsonschema.Draft202012Validator(schema)


def make_result(**overrides: object) -> Result:
    fields: dict[str, object] = {
        "result_id": new_result_id(),
        "frame_seq": 7,
        "frame_wall_time": 1_700_000_000.25,
        "source_id": "probe+emu://?preset=lung",
        "modality": "US",
        "quality": Quality(
            "diagnostic", np.float32(0.9), True, {"diagnostic": np.float32(0.9), "no_contact": 0.1}
        ),
        "findings": (
            Finding("b_line", np.float32(0.8), Box(10, 20, 30, 60), False, np.int64(1)),
            Finding("effusion", 0.4, Box(-5, 0, 50, 40), True, 2),
            Finding("whole_image", 0.7),
        ),
        "models": (
            ModelInfo("us-quality", "1.0.0", "ab" * 32, "int8", "onnxruntime", "CPUExecutionProvider"),
        ),
        "times": StageTimes(1_000_000, 3_000_000, 4_000_000, 9_000_000, 10_500_000),
        "image_size": (100, 80),
        "pixel_spacing_mm": (0.5, 0.25),
    }
    fields.update(overrides)
    return Result(**fields)  # type: ignore[arg-type]


def runtime_result(spacing: tuple[float, float] | None, findings: tuple[Finding, ...]) -> Result:
    geometry = Geometry(pixel_spacing_mm=spacing)
    frame = Frame(np.zeros((480, 640, 3), np.uint8), 42, 1_000, "probe+emu://?preset=lung", geometry=geometry)
    quality = Quality("diagnostic", np.float32(0.91), True, {"diagnostic": np.float32(0.91), "shadow": 0.09})
    models = (ModelInfo("us-quality", "1.0.0", "cd" * 32, "int8", "onnxruntime", "CPUExecutionProvider"),)
    times = StageTimes(1_000, 2_000, 3_000, 900_000, 1_000_000)
    return result_for(frame, quality, findings, models, times, priority=priority_for(findings, {"effusion"}))
