"""Real chest films for the X-ray tests, as DICOM files with the exposure indices a console writes.

- ``chest_cr``: pydicom-data's RG1_UNCR.dcm (a real 15-bit chest CR, MONOCHROME1, 1955 x 1841) with
  ExposureIndex / TargetExposureIndex / DeviationIndex and other attributes written onto it;
- ``film_dicom``: one of the three attributed cxr_dev films in tests/data/cxr_dev (SOURCE.md: good,
  cut off, pneumonia; 8-bit, long side 512) wrapped into a DX or CR file;
- ``frame_of``: the one frame the runtime's own ``dicom://`` source makes of such a file (meta, raw).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom

from edge.frames import Frame
from edge.results import Box, Finding
from edge.sources import open_source
from tests.support.dicom import installed_dicom, write_dicom

FILMS = Path(__file__).resolve().parents[1] / "data" / "cxr_dev"


def chest_cr(path: Path, **attributes: Any) -> Path:
    """RG1_UNCR.dcm with ``attributes`` set (None deletes one), saved at ``path``."""
    ds = pydicom.dcmread(installed_dicom("RG1_UNCR.dcm"))
    for key, value in attributes.items():
        if value is None:
            if key in ds:
                delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(path)
    return path


def film(name: str) -> np.ndarray:
    """A cxr_dev film (gray uint8) by name: "good", "cut_off", "pneumonia"."""
    image = cv2.imread(str(FILMS / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
    assert image is not None, f"{FILMS / name}.png is missing"
    return image


def radiologist_boxes(name: str) -> list[Finding]:
    """The film's radiologist lung boxes as the lung-field detector reports them (confidence 1)."""
    record = json.loads((FILMS / "lung_boxes.json").read_text())[f"{name}.png"]
    labels = {"Right Lung": "lung_right", "Left Lung": "lung_left"}
    out = []
    for source_label, (x, y, w, h) in record["boxes_xywh"].items():
        label = labels[source_label]
        out.append(Finding(label, 1.0, Box(x, y, x + w, y + h), class_id=int(label == "lung_left")))
    return out


def film_dicom(path: Path, name: str, modality: str = "DX", **attributes: Any) -> Path:
    """A cxr_dev film as an 8-bit MONOCHROME2 DX (or CR) file with ``attributes``."""
    image = film(name)
    rows, cols = image.shape
    attributes.setdefault("BodyPartExamined", "CHEST")
    attributes.setdefault("ViewPosition", "PA")
    return write_dicom(
        path,
        image.tobytes(),
        rows=rows,
        cols=cols,
        photometric="MONOCHROME2",
        modality=modality,
        **attributes,
    )


def frame_of(path: Path) -> Frame:
    """The frame the ``dicom://`` source makes of a single-image file."""
    with open_source(f"dicom://{path}?realtime=0") as src:
        frame = src.read(5.0)
    assert frame is not None, f"{path}: the source gave no frame"
    return frame
