"""Exposure QA (IEC 62494-1) on real films: the indices a console writes, read back by the runtime's own
DICOM source, judged against targets from the file or the config; the bands at their edges."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edge.config import Config
from edge.inference.exposure import assess_exposure, band_of, clipped_fraction
from edge.settings.xray import ExposureBands, XraySettings
from edge.xray_qa import NO_EXPOSURE_INDEX
from tests.support.dicom import write_dicom
from tests.support.xray import chest_cr, film, film_dicom, frame_of

DEFAULT = XraySettings()


def settings(**sections: object) -> XraySettings:
    return XraySettings.model_validate(sections)


def test_a_chest_cr_on_its_target_is_within_and_says_so(tmp_path: Path) -> None:
    frame = frame_of(chest_cr(tmp_path / "cr.dcm", ExposureIndex=420, TargetExposureIndex=400))
    assert frame.modality == "CR" and frame.raw is not None and frame.raw.shape == (1955, 1841)
    assert frame.meta["ExposureIndex"] == 420.0 and frame.meta["BodyPartExamined"] == "CHEST"
    e = assess_exposure(frame.meta, frame.raw, DEFAULT)
    assert e.di == pytest.approx(10 * math.log10(420 / 400)) and e.di_from == "computed"
    assert (e.band, e.target, e.target_from, e.repeat) == ("within", 400.0, "file", False)
    assert e.message == "exposure on target (DI +0.2)"
    assert e.clipped_fraction is not None and e.clipped_fraction < 0.01  # a real film: not saturated


def test_underexposed_far_recommends_a_repeat_with_the_dose_it_got(tmp_path: Path) -> None:
    frame = frame_of(chest_cr(tmp_path / "cr.dcm", ExposureIndex=100, TargetExposureIndex=250))
    e = assess_exposure(frame.meta, frame.raw, DEFAULT)
    assert e.band == "under_far" and e.repeat
    assert e.message == "consider repeat: underexposed (DI -4.0, about 0.4x the target dose)"


def test_the_configured_target_of_the_body_part_is_used_when_the_file_has_none(tmp_path: Path) -> None:
    frame = frame_of(chest_cr(tmp_path / "cr.dcm", ExposureIndex=1000))
    s = settings(exposure_targets={"body_part": {"chest": 400}})  # DICOM says CHEST: case is no meaning
    e = assess_exposure(frame.meta, frame.raw, s)
    assert (e.target, e.target_from, e.band) == (400.0, "body part CHEST", "over_far")
    assert e.di == pytest.approx(3.98, abs=0.01) and not e.repeat  # not clipped: dose, not information
    assert e.message.endswith("repeat only if anatomy is burned out") and "about 2.5x" in e.message
    without = assess_exposure(frame.meta, frame.raw, DEFAULT)
    assert without.di is None and without.band is None
    assert without.message == "EI 1000: no target exposure index for CHEST (set [xray.exposure_targets])"


def test_a_detectors_target_wins_over_the_body_parts_and_the_files_over_both(tmp_path: Path) -> None:
    path = film_dicom(tmp_path / "dx.dcm", "good", ExposureIndex=300, DetectorID="DRX-7")
    frame = frame_of(path)
    s = settings(exposure_targets={"detector": {"DRX-7": 300}, "body_part": {"CHEST": 150}})
    e = assess_exposure(frame.meta, frame.raw, s)
    assert (e.target_from, e.di, e.band) == ("detector DRX-7", 0.0, "within")
    frame = frame_of(film_dicom(tmp_path / "dx2.dcm", "good", ExposureIndex=300, TargetExposureIndex=580,
                                DetectorID="DRX-7"))  # fmt: skip
    e = assess_exposure(frame.meta, frame.raw, s)
    assert e.target_from == "file" and e.band == "under" and e.di == pytest.approx(-2.86, abs=0.01)
    assert e.message == "underexposed (DI -2.9): noisier image, read with care"


def test_a_deviation_index_without_an_exposure_index_is_reported_as_the_files(tmp_path: Path) -> None:
    frame = frame_of(film_dicom(tmp_path / "dx.dcm", "pneumonia", DeviationIndex=1.8))
    e = assess_exposure(frame.meta, frame.raw, DEFAULT)
    assert (e.ei, e.di, e.di_from, e.band) == (None, 1.8, "file", "over")
    assert (
        e.message == "overexposed (DI +1.8): check the technique; DI from the file (no exposure index in it)"
    )
    frame = frame_of(film_dicom(tmp_path / "dx2.dcm", "pneumonia", ExposureIndex=250, DeviationIndex=-0.4))
    e = assess_exposure(frame.meta, frame.raw, DEFAULT)  # EI but no target: the file's DI stands
    assert e.band == "within" and e.message.endswith("DI from the file (EI 250, no target for it)")


def test_no_exposure_index_in_the_file_is_said_and_nothing_is_guessed(tmp_path: Path) -> None:
    frame = frame_of(chest_cr(tmp_path / "cr.dcm"))
    assert "ExposureIndex" not in frame.meta
    e = assess_exposure(frame.meta, frame.raw, settings(exposure_targets={"body_part": {"CHEST": 400}}))
    assert e.message == NO_EXPOSURE_INDEX == "no exposure index in the file"
    assert (e.ei, e.di, e.band, e.repeat) == (None, None, None, False)


@pytest.mark.parametrize(
    ("di", "band"),
    [(0.0, "within"), (1.0, "within"), (-1.0, "within"), (1.01, "over"), (3.0, "over"), (3.01, "over_far"),
     (-1.01, "under"), (-3.0, "under"), (-3.01, "under_far")],
)  # fmt: skip
def test_the_bands_at_their_edges(di: float, band: str) -> None:
    assert band_of(di, ExposureBands()) == band


def test_the_bands_are_overridable_in_the_config(tmp_path: Path) -> None:
    (tmp_path / "edge.toml").write_text(
        "[xray.exposure_bands]\nwithin = 0.5\nover_far = 2.0\nunder_far = -2.0\n"
    )
    from edge.config import load_config

    bands = load_config(tmp_path / "edge.toml").xray.exposure_bands
    assert [band_of(d, bands) for d in (0.4, 0.8, 2.5, -1.5, -2.5)] == [
        "within", "over", "over_far", "under", "under_far"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="under_far < -within < within < over_far"):
        Config.model_validate({"xray": {"exposure_bands": {"within": 3.5}}})
    with pytest.raises(ValueError, match="must be > 0"):
        Config.model_validate({"xray": {"exposure_targets": {"body_part": {"CHEST": 0}}}})


def test_far_over_and_clipped_at_the_detectors_top_value_recommends_a_repeat(tmp_path: Path) -> None:
    image = film("good").astype(np.uint16) * 16  # the film as a 12-bit detector's values
    rows, cols = image.shape
    image[: rows // 8] = 4095  # the top eighth saturated: burned out
    path = write_dicom(tmp_path / "dx.dcm", image.tobytes(), rows=rows, cols=cols, photometric="MONOCHROME2",
                       modality="DX", bits=16, bits_stored=12, ExposureIndex=1200,
                       TargetExposureIndex=400)  # fmt: skip
    frame = frame_of(path)
    e = assess_exposure(frame.meta, frame.raw, DEFAULT)
    assert e.band == "over_far" and e.repeat and e.clipped_fraction == pytest.approx(0.125, abs=0.01)
    assert e.message == "consider repeat: overexposed and clipped (DI +4.8, 12% of pixels saturated)"
    assert clipped_fraction(None, 12) is None and clipped_fraction(frame.raw, None) is None


def test_a_consoles_odd_codes_are_matched_as_written_and_reported_so_the_scrubber_keeps_them() -> None:
    from dataclasses import replace

    from edge.deid.payload import scrub_payload
    from edge.sync.messages import Device, result_message
    from tests.support.results import make_result

    meta = {"ExposureIndex": "800", "DetectorID": "S/N: 12,\u00e9;x", "BodyPartExamined": "Thorax, PA?"}
    s = settings(exposure_targets={"detector": {"S/N: 12,\u00e9;x": 400}})
    e = assess_exposure(meta, None, s)
    assert e.target_from == "detector S_N_ 12___x" and e.band == "over_far"
    no_target = assess_exposure({**meta, "DetectorID": None}, None, DEFAULT)
    assert no_target.message.startswith("EI 800: no target exposure index for Thorax_ PA_ ")
    for exposure in (e, no_target):
        message = result_message(replace(make_result(), modality="DX", exposure=exposure), Device("edge-a1"))
        assert scrub_payload(message, key=b"k" * 32)["exposure"] == exposure.to_dict()
