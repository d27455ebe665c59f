"""JPEG size from the headers: real encoder output, and bad input named by byte."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.sync.jpeg import jpeg_size


@pytest.mark.parametrize("progressive", [0, 1])
@pytest.mark.parametrize("shape", [(48, 64, 3), (31, 257), (1, 1, 3)])
def test_size_of_encoder_output(shape: tuple[int, ...], progressive: int) -> None:
    image = np.random.default_rng(1).integers(0, 255, shape, np.uint8)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, progressive])
    assert ok
    assert jpeg_size(buf.tobytes()) == (shape[1], shape[0])


def test_bad_input_is_named() -> None:
    good = cv2.imencode(".jpg", np.zeros((8, 8), np.uint8))[1].tobytes()
    with pytest.raises(ValueError, match="no SOI marker"):
        jpeg_size(b"\x89PNG\r\n")
    with pytest.raises(ValueError, match=r"expected a marker \(FF\) at byte 2"):
        jpeg_size(b"\xff\xd8\x00\x00\x00\x00")
    with pytest.raises(ValueError, match="no start-of-frame"):
        jpeg_size(good[:20])
    with pytest.raises(ValueError, match="segment length 1 at byte 4"):
        jpeg_size(b"\xff\xd8\xff\xe0\x00\x01\x00\x00")
    sof = good.index(b"\xff\xc0")
    with pytest.raises(ValueError, match="start-of-frame cut short"):
        jpeg_size(good[: sof + 6])
