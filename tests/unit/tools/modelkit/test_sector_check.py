import gzip
from pathlib import Path

import cv2
import numpy as np
import pytest

from firmware_bridge.phantom import frames, single
from tools.modelkit.sector_check import main, read_nrrd

VENDORS = Path(__file__).parents[3] / "data" / "us_vendors"


def _clip(path: Path, n: int = 6) -> None:
    it = frames(single("lung", probe="convex", duration_s=1.0), fps=10)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (512, 512))
    for _ in range(n):
        out.write(cv2.cvtColor(next(it)[0], cv2.COLOR_GRAY2BGR))
    out.release()


def _nrrd(path: Path, img: np.ndarray) -> None:
    h, w = img.shape
    head = f"NRRD0004\ntype: unsigned char\ndimension: 3\nsizes: {w} {h} 1\nencoding: gzip\n\n"
    path.write_bytes(head.encode() + gzip.compress(img.tobytes()))


def test_sheet_and_table_for_stills_clips_and_nrrd(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "in"
    data.mkdir()
    for name in ("clarius-ocular-image.png", "sonosite-anon-eye1.png"):
        (data / name).write_bytes((VENDORS / name).read_bytes())
    _clip(data / "phantom.avi")
    still = cv2.imread(str(VENDORS / "sonivate-anechoic_1-1.png"), cv2.IMREAD_GRAYSCALE)
    _nrrd(data / "sonivate.nrrd", still)
    np.testing.assert_array_equal(read_nrrd(data / "sonivate.nrrd"), still)
    sheet = tmp_path / "out" / "sheet.png"
    assert main([str(data), "--sheet", str(sheet), "--frames", "4"]) == 0
    img = cv2.imread(str(sheet))
    assert img is not None and img.shape[1] == 6 * 256
    table = sheet.with_suffix(".md").read_text()
    assert (
        "| phantom.avi | convex |" in table
        and "| sonosite-anon-eye1.png | linear | (129, 13, 241, 213)" in table
    )
    assert "4/4 found" in capsys.readouterr().out


def test_a_file_without_an_image_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cv2.imwrite(str(tmp_path / "black.png"), np.zeros((100, 120), np.uint8))
    (tmp_path / "broken.dcm").write_bytes(b"not dicom")
    assert main([str(tmp_path), "--sheet", str(tmp_path / "s.png")]) == 1
    out = capsys.readouterr().out
    assert "| black.png | not found: all black" in out and "| broken.dcm | not found: unreadable:" in out
    assert "0/2 found" in out
