"""Looks of a chest film from another hospital, applied at the cached film size before the runtime's
``Preprocessor`` builds the input.

- a horizontal flip, with the labels swapped (image left stays ``lung_right``, as on a PA/AP film);
- rotation (+-10 degrees: a rotated patient), scale and shift;
- collimation: the film cropped at one or two edges, or the field outside a shutter rectangle burnt
  white or black, with the boxes clipped to what is still visible (a field cut to under a quarter of
  its height or width has no box: the runtime then reports it missing);
- exposure and processing: gamma, contrast, brightness, noise, blur, local contrast (CLAHE);
- burnt-in side markers and text in the corners, which a model must not rely on.
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_VISIBLE = 0.25  # share of a field's width and height that must remain for it to keep its box


def _affine(gray: np.ndarray, boxes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = gray.shape
    angle = rng.uniform(-10, 10)
    scale = rng.uniform(0.85, 1.2)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] = m[:, 2] + rng.uniform(-0.08, 0.08, 2) * np.array([w, h], np.float64)
    border = int(rng.choice([0, 0, 255, int(rng.integers(0, 256))]))
    out = cv2.warpAffine(gray, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=border)
    corners = np.stack(
        [boxes[:, [0, 1]], boxes[:, [2, 1]], boxes[:, [0, 3]], boxes[:, [2, 3]]], axis=1
    )  # [n, 4, 2]
    moved = corners @ m[:, :2].T + m[:, 2]
    # a rotated box's bounding box is larger than the field: shrink it by half the growth
    grown = np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)
    centre = (grown[:, :2] + grown[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) * scale / 2
    mix = (grown[:, 2:] - grown[:, :2]) / 2 * 0.5 + half * 0.5
    return out, np.concatenate([centre - mix, centre + mix], axis=1).astype(np.float32)


def _collimate(
    gray: np.ndarray, boxes: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """Returns the film, its boxes and the visible rectangle (x0, y0, x1, y1)."""
    h, w = gray.shape
    x0, y0, x1, y1 = 0, 0, w, h
    for _ in range(int(rng.integers(1, 3))):
        side = int(rng.integers(0, 4))
        cut = rng.uniform(0.05, 0.3)
        if side == 0:
            x0 = max(x0, int(cut * w))
        elif side == 1:
            x1 = min(x1, int((1 - cut) * w))
        elif side == 2:
            y0 = max(y0, int(cut * h))
        else:
            y1 = min(y1, int((1 - cut) * h))
    if rng.random() < 0.5:  # cropped away
        return (
            gray[y0:y1, x0:x1].copy(),
            boxes - np.array([x0, y0, x0, y0], np.float32),
            (0, 0, x1 - x0, y1 - y0),
        )
    out = np.full_like(gray, int(rng.choice([int(rng.integers(220, 256)), int(rng.integers(0, 30))])))
    out[y0:y1, x0:x1] = gray[y0:y1, x0:x1]  # a shutter: the field outside it unexposed or blanked
    return out, boxes, (x0, y0, x1, y1)


def _clip(
    boxes: np.ndarray, keep: np.ndarray, rect: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    x0, y0, x1, y1 = rect
    out = boxes.copy()
    out[:, [0, 2]] = out[:, [0, 2]].clip(x0, x1)
    out[:, [1, 3]] = out[:, [1, 3]].clip(y0, y1)
    full = np.maximum(boxes[:, 2:] - boxes[:, :2], 1e-3)
    seen = (out[:, 2:] - out[:, :2]) / full
    return keep & (seen >= MIN_VISIBLE).all(axis=1), out


def _exposure(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = gray.astype(np.float32) / 255.0
    x = x ** rng.uniform(0.5, 2.0)
    x = (x - x.mean()) * rng.uniform(0.7, 1.4) + x.mean() + rng.uniform(-0.12, 0.12)
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 2.0))
    x = x + rng.normal(0, rng.uniform(0, 0.03), x.shape).astype(np.float32)
    out = (x.clip(0, 1) * 255).astype(np.uint8)
    if rng.random() < 0.2:
        out = cv2.createCLAHE(clipLimit=float(rng.uniform(1.5, 3.0)), tileGridSize=(8, 8)).apply(out)
    return out


def _markers(gray: np.ndarray, rng: np.random.Generator) -> None:
    h, w = gray.shape
    for _ in range(int(rng.integers(1, 4))):
        text = str(rng.choice(["L", "R", "AP", "PA", "SUPINE", "PORTABLE", "12:04"]))
        x = int(rng.choice([rng.uniform(0.02, 0.15), rng.uniform(0.75, 0.9)]) * w)
        y = int(rng.choice([rng.uniform(0.05, 0.15), rng.uniform(0.88, 0.98)]) * h)
        scale = rng.uniform(0.4, 1.2) * w / 512
        cv2.putText(gray, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, max(1, int(2 * scale)))


def augment(
    gray: np.ndarray, boxes: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(film, boxes [2, 4] xyxy, present [2] bool), rows in the labels' order."""
    boxes = boxes.astype(np.float32).copy()
    keep = np.ones(len(boxes), bool)
    if rng.random() < 0.5:
        w = gray.shape[1]
        gray = gray[:, ::-1].copy()
        boxes = np.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], axis=1)[::-1].copy()
    if rng.random() < 0.8:
        gray, boxes = _affine(gray, boxes, rng)
    rect = (0, 0, gray.shape[1], gray.shape[0])
    if rng.random() < 0.4:
        gray, boxes, rect = _collimate(gray, boxes, rng)
    keep, boxes = _clip(boxes, keep, rect)
    keep, boxes = _clip(boxes, keep, (0, 0, gray.shape[1], gray.shape[0]))
    gray = _exposure(gray, rng)
    if rng.random() < 0.4:
        _markers(gray, rng)
    return gray, boxes, keep
