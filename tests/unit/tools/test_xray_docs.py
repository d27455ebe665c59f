"""tools.xray_docs: a real film through `edge run` with the published X-ray models, as the docs show it."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pydicom
import pytest

from tools.xray_docs import DOC_WIDTH, Film, main, parse_film, write_cr

FILMS = Path(__file__).resolve().parents[2] / "data" / "cxr_dev"  # attributed, see its SOURCE.md


def test_film_spec_with_and_without_exposure_indices() -> None:
    assert parse_film("good=a/b.png:410:400") == Film("good", Path("a/b.png"), 410.0, 400.0)
    assert parse_film("x=c:/films/b.png") == Film("x", Path("c:/films/b.png"))
    with pytest.raises(Exception, match="NAME=IMAGE"):
        parse_film("no-name.png")


def test_the_wrapped_film_is_a_chest_cr_with_its_indices(tmp_path: Path) -> None:
    path = write_cr(Film("good", FILMS / "good.png", 410.0, 400.0, scale=2.0), tmp_path / "f.dcm")
    ds = pydicom.dcmread(path)
    image = cv2.imread(str(FILMS / "good.png"), cv2.IMREAD_GRAYSCALE)
    assert (ds.Modality, ds.BodyPartExamined, ds.BurnedInAnnotation) == ("CR", "CHEST", "NO")
    assert image is not None
    assert (float(ds.ExposureIndex), float(ds.TargetExposureIndex)) == (410.0, 400.0)
    assert ds.pixel_array.shape == (image.shape[0] * 2, image.shape[1] * 2)


def test_a_film_through_the_runtime(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default config's models box both lung fields and the panel's exposure line is computed."""
    assert (
        main(["--out", str(tmp_path), "--film", f"good={FILMS / 'good.png'}:410:400", "--scale", "good=2.5"])
        == 0
    )
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])
    figure = cv2.imread(str(tmp_path / "good.jpg"))
    assert figure is not None and figure.shape[1] == DOC_WIDTH  # 1280 px of film, shrunk
    assert printed["exposure"]["band"] == "within" and printed["exposure"]["di_from"] == "computed"
    labels = {f["label"] for f in printed["findings"]}
    assert {"lung_right", "lung_left"} <= labels
    assert printed["positioning"]["skipped"] is None
