"""``[xray]``: the exposure and positioning checks run on every CR/DX image (docs/xray.md).

Exposure (IEC 62494-1): the deviation index DI = 10 log10(EI / EI_T) of the image's exposure index
EI against its target EI_T. The target is the file's TargetExposureIndex when the console wrote one,
else the configured target for the image's DetectorID, else for its BodyPartExamined. The bands are
the action levels of AAPM Report 116 (2009), the usual reading of IEC 62494-1 DI values:

=================  ===================================================================
DI                 what the radiographer reads
=================  ===================================================================
> over_far (3)     overexposed (dose about 2x target): repeat only if detector clipped
over_far .. within overexposed: check the technique
|DI| <= within (1) on target
-within .. under_far  underexposed: noisier, acceptable if the noise allows the reading
< under_far (-3)   underexposed (dose about half): consider repeat
=================  ===================================================================

Positioning: rules on the lung-field detector's boxes (``lung_right``, ``lung_left``), applied to
chest images only (BodyPartExamined absent or among ``chest_body_parts``).
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from edge.settings import Section


def _upper_keys(value: dict[str, float]) -> dict[str, float]:
    """DICOM code strings are upper case (CHEST); a config written "chest" means the same."""
    return {str(k).strip().upper(): float(v) for k, v in value.items()}


class ExposureTargets(Section):
    """Target exposure indices (EI_T) by DetectorID and by BodyPartExamined, for consoles that do not
    write TargetExposureIndex; a detector's target wins over a body part's."""

    detector: dict[str, float] = Field(default_factory=dict)
    body_part: dict[str, float] = Field(default_factory=dict)

    @field_validator("detector", "body_part")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if not v > 0]
        if bad:
            raise ValueError(f"target exposure index must be > 0 (for {', '.join(map(str, bad))})")
        return value

    @field_validator("body_part")
    @classmethod
    def _upper(cls, value: dict[str, float]) -> dict[str, float]:
        return _upper_keys(value)


class ExposureBands(Section):
    """DI band edges (AAPM Report 116 action levels; IEC 62494-1 DI units)."""

    within: float = Field(1.0, gt=0)  # |DI| <= within: on target
    over_far: float = Field(3.0, gt=0)  # DI > over_far: far over (repeat only if clipped)
    under_far: float = Field(-3.0, lt=0)  # DI < under_far: far under (consider repeat)
    # Share of the stored pixels at the top of the detector's range above which a far-over image is
    # called clipped (saturated): then the repeat is recommended (information is lost there).
    clipped_fraction: float = Field(0.02, gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> ExposureBands:
        if not (self.under_far < -self.within and self.within < self.over_far):
            raise ValueError(
                f"bands must satisfy under_far < -within < within < over_far "
                f"(got {self.under_far}, {self.within}, {self.over_far})"
            )
        return self


class PositioningRules(Section):
    """Thresholds of the positioning rules; defaults and why in docs/xray.md."""

    # A lung box closer to an image edge than this share of the image's size is cut off there.
    edge_margin: float = Field(0.01, ge=0, lt=0.5)
    # Narrower lung field's width over the wider one's below this: rotated (marked asymmetry).
    # Radiologist boxes of the cxr_dev films: median 0.91, 5th percentile 0.75.
    min_width_ratio: float = Field(0.7, gt=0, le=1)
    # Same for the boxes' areas (median 0.90, 5th percentile 0.70 on the same films).
    min_area_ratio: float = Field(0.6, gt=0, le=1)
    # A lung box below this confidence is not taken as the lung field (the detector's review band).
    min_confidence: float = Field(0.3, ge=0, le=1)
    chest_body_parts: tuple[str, ...] = ("CHEST", "THORAX", "LUNG")

    @field_validator("chest_body_parts")
    @classmethod
    def _upper(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(v).strip().upper() for v in value)


class XraySettings(Section):
    exposure_targets: ExposureTargets = Field(default_factory=ExposureTargets)
    exposure_bands: ExposureBands = Field(default_factory=ExposureBands)
    positioning: PositioningRules = Field(default_factory=PositioningRules)
