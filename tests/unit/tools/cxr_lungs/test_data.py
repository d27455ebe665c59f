"""Loading the cxr_dev layout: COCO lung names mapped to the labels, patients, a swapped film counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.tools.cxr_standins import write_cxr_dev_standin
from tools.cxr_lungs.data import LABELS, load


def test_boxes_follow_the_labels_and_the_patients_are_read(tmp_path: Path) -> None:
    data = write_cxr_dev_standin(tmp_path / "cxr_dev", films=6, patients=3)
    films = load(data, tmp_path / "cache")
    assert LABELS == ("lung_right", "lung_left")
    assert len(films) == 6 and sorted(set(films.patients)) == ["0", "1", "2"]
    for b in films.boxes:
        assert (b[0, 0] + b[0, 2]) / 2 < (b[1, 0] + b[1, 2]) / 2, (
            "the patient's right lung is on the image left"
        )
    assert films.side_swaps == []
    again = load(data, tmp_path / "cache")  # from the cache
    assert all((a == b).all() for a, b in zip(films.images, again.images))


def test_a_film_whose_right_lung_box_lies_right_is_counted(tmp_path: Path) -> None:
    data = write_cxr_dev_standin(tmp_path / "cxr_dev", films=4, patients=2)
    coco = json.loads((data / "lungs_coco.json").read_text())
    for a in coco["annotations"]:
        if a["image_id"] == 1:
            a["category_id"] = 3 - a["category_id"]
    (data / "lungs_coco.json").write_text(json.dumps(coco))
    assert load(data, tmp_path / "cache").side_swaps == ["film001.png"]


def test_an_unknown_category_is_refused_by_name(tmp_path: Path) -> None:
    data = write_cxr_dev_standin(tmp_path / "cxr_dev", films=2, patients=1)
    coco = json.loads((data / "lungs_coco.json").read_text())
    coco["categories"][0]["name"] = "Heart"
    (data / "lungs_coco.json").write_text(json.dumps(coco))
    with pytest.raises(ValueError, match="'Heart'"):
        load(data, tmp_path / "cache")


def test_a_missing_metadata_file_is_named(tmp_path: Path) -> None:
    data = write_cxr_dev_standin(tmp_path / "cxr_dev", films=2, patients=1)
    (data / "metadata.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"metadata\.csv"):
        load(data, tmp_path / "cache")
