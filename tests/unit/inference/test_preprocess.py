import cv2
import numpy as np
import pytest

from edge.inference.manifest import InputSpec, Normalize
from edge.inference.preprocess import LETTERBOX_PAD, Preprocessor, Transform


def spec(**kw: object) -> InputSpec:
    base: dict[str, object] = {"name": "x", "shape": (1, 1, 32, 32), "color": "gray"}
    base.update(kw)
    return InputSpec.model_validate(base)


def test_gray_stretch_matches_the_reference_formula() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    pre = Preprocessor(spec(normalize=Normalize(scale=1 / 255, mean=(0.5,), std=(0.25,))))
    tensor, t = pre(img)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    up = cv2.resize(gray, (128, 96), interpolation=cv2.INTER_LINEAR)  # to 4x and 3x of 32
    ref = (cv2.resize(up, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32) / 255 - 0.5) / 0.25
    np.testing.assert_allclose(tensor[0, 0], ref, atol=1e-5)
    assert tensor.shape == (1, 1, 32, 32) and tensor.dtype == np.float32
    assert (t.scale_x, t.scale_y) == (32 / 120, 32 / 90)


def test_buffers_are_reused_between_frames() -> None:
    pre = Preprocessor(spec())
    a, _ = pre(np.zeros((50, 50), np.uint8))
    b, _ = pre(np.full((70, 40), 255, np.uint8))
    assert a is b, "the tensor buffer is allocated once per model"
    assert float(b.max()) == pytest.approx(1.0)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_rgb_channels_and_layouts(layout: str) -> None:
    shape = (1, 3, 16, 16) if layout == "NCHW" else (1, 16, 16, 3)
    pre = Preprocessor(
        spec(
            shape=shape,
            layout=layout,
            color="rgb",
            normalize=Normalize(scale=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 2.0, 4.0)),
        )
    )
    img = np.zeros((16, 16, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 10, 20, 40  # B, G, R
    tensor, _ = pre(img)
    per_channel = tensor[0, :, 0, 0] if layout == "NCHW" else tensor[0, 0, 0, :]
    np.testing.assert_allclose(per_channel, [40 / 1, 20 / 2, 10 / 4])  # R, G, B after BGR->RGB


def test_letterbox_pads_and_maps_back() -> None:
    pre = Preprocessor(
        spec(shape=(1, 3, 64, 64), color="rgb", resize="letterbox", normalize=Normalize(scale=1.0))
    )
    img = np.full((32, 128, 3), 200, np.uint8)  # wide: scale 0.5 -> 64x16, 24 px pad top and bottom
    tensor, t = pre(img)
    assert tensor[0, 0, 0, 0] == LETTERBOX_PAD and tensor[0, 0, 32, 32] == 200
    boxes = t.to_frame(np.array([[0, 24, 64, 40]], np.float32))
    np.testing.assert_allclose(boxes[0], [0, 0, 128, 32])


def test_runtime_matches_the_training_preprocessing_of_us_quality() -> None:
    """The bundled model was trained through tools/us_quality/preprocess.py: the runtime must agree."""
    from edge.inference.manifest import load_manifest
    from tests.support.paths import MODELS
    from tools.us_quality.preprocess import preprocess

    spec_ = load_manifest(MODELS / "us-quality").manifest.input
    rng = np.random.default_rng(1)
    for shape in ((382, 382, 3), (480, 640, 3), (300, 200)):
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        tensor, _ = Preprocessor(spec_)(img)
        np.testing.assert_allclose(tensor, preprocess(img), rtol=0, atol=1e-5)


@pytest.mark.parametrize("shape", [(382, 382), (480, 640), (128, 128), (256, 384), (90, 60)])
def test_area_resize_is_within_one_level_of_inter_area(shape: tuple[int, int]) -> None:
    from edge.inference.preprocess import area_resize

    rng = np.random.default_rng(2)
    img = cv2.GaussianBlur(rng.integers(0, 256, shape, dtype=np.uint8), (0, 0), 1.5)
    ours = area_resize(img, (128, 128)).astype(int)
    ref = cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA).astype(int)
    assert ours.shape == (128, 128)
    assert np.abs(ours - ref).max() <= 1 if shape[0] >= 128 else np.abs(ours - ref).mean() < 2


def test_transform_to_input_inverts_to_frame() -> None:
    t = Transform(scale_x=0.5, scale_y=0.25, pad_x=3.0, pad_y=7.0)
    boxes = np.array([[10.0, 20.0, 50.0, 90.0], [0.0, 0.0, 1.0, 1.0]], np.float32)
    assert np.allclose(t.to_frame(t.to_input(boxes)), boxes)
    assert t.to_input(boxes)[0].tolist() == [8.0, 12.0, 28.0, 29.5]
