import cv2
import numpy as np
import pytest

from edge.inference.manifest import InputSpec, Normalize
from edge.inference.preprocess import LETTERBOX_PAD, Preprocessor, Transform, one_frame
from edge.inference.sector import Sector


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
    """The bundled model was trained through tools/us_quality/view.py (the runtime's own
    ``Preprocessor.fit`` given the clip's sector): the manifest must name that input, and the runtime
    must build the same tensor from the sector it finds."""
    from edge.inference.manifest import load_manifest
    from edge.inference.sector import find_sector
    from tests.support.paths import MODELS
    from tools.us_quality.preprocess import normalize
    from tools.us_quality.view import input_spec, to_input

    spec_ = load_manifest(MODELS / "us-quality").manifest.input
    assert spec_ == input_spec()
    rng = np.random.default_rng(1)
    for shape in ((382, 382, 3), (480, 640, 3), (300, 200)):
        h, w = shape[:2]
        tissue = cv2.GaussianBlur(rng.integers(40, 220, (h, w), dtype=np.uint8), (0, 0), 2.0)
        img = np.zeros((h, w), np.uint8)
        img[h // 8 : h - h // 10, w // 6 : w - w // 6] = tissue[h // 8 : h - h // 10, w // 6 : w - w // 6]
        if len(shape) == 3:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        tensor, _ = Preprocessor(spec_)(img)
        gray = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        expected = normalize(to_input(gray, find_sector([img]).mask > 0))
        np.testing.assert_allclose(tensor[0, 0], expected, rtol=0, atol=1e-5)


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


def _fan_frame(size: tuple[int, int] = (640, 480), level: int = 60) -> tuple[np.ndarray, Sector]:
    from edge.inference.sector import fan_mask

    w, h = size
    apex, angles, radii = (w / 2, -0.15 * h), (-0.55, 0.55), (0.3 * h, 1.1 * h)
    mask = fan_mask(w, h, apex, angles, radii)
    rng = np.random.default_rng(3)
    img = np.where(mask > 0, rng.integers(level // 2, level, (h, w)), 0).astype(np.uint8)
    cv2.putText(img, "DEPTH 12cm  GAIN 40", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)
    x, y, bw, bh = cv2.boundingRect(mask)
    return img, Sector(w, h, "convex", (x, y, x + bw, y + bh), mask, apex, angles, radii)


def test_sector_view_crops_masks_normalises_and_maps_back() -> None:
    img, truth = _fan_frame()
    pre = Preprocessor(spec(shape=(1, 1, 64, 64), view="sector", normalize=Normalize(scale=1.0)))
    out, t = pre.fit(img)
    found = pre.tracker.sector
    assert found is not None and found.kind == "convex"
    assert np.abs(np.array(found.box) - np.array(truth.box)).max() <= 12
    assert out[0, 0] == 0  # outside the fan (and the text) is black
    assert 150 <= np.percentile(out[out > 0], 99) <= 215  # dim fan brought up to the target level
    np.testing.assert_allclose(t.to_frame(np.array([[0, 0, 64, 64]], np.float32))[0], found.box, atol=1e-3)
    np.testing.assert_allclose(
        t.to_input(t.to_frame(np.array([[3, 4, 20, 30]], np.float32))), [[3, 4, 20, 30]], atol=1e-4
    )
    letter = Preprocessor(spec(shape=(1, 1, 64, 64), view="sector", resize="letterbox"))
    out2, t2 = letter.fit(img, sector=truth)
    assert (out2[0] == LETTERBOX_PAD).all() or (out2[:, 0] == LETTERBOX_PAD).all()
    np.testing.assert_allclose(t2.to_input(np.array([truth.box], np.float32))[0, [0, 2]], [0, 64], atol=0.5)


def test_scanlines_view_maps_boxes_through_the_fan() -> None:
    img, truth = _fan_frame()
    pre = Preprocessor(spec(shape=(1, 1, 64, 96), view="scanlines", normalize=Normalize(scale=1.0)))
    out, t = pre.fit(img, sector=truth)
    assert out.shape == (64, 96) and np.percentile(out, 50) > 80  # the fan fills it, normalised
    full = t.to_frame(np.array([[-0.5, -0.5, 95.5, 63.5]], np.float32))[0]
    np.testing.assert_allclose(full, truth.box, atol=2.0)  # the whole scan-line image is the fan
    box = np.array([[40.0, 10.0, 50.0, 40.0]], np.float32)
    assert t.frame_points is not None and t.input_points is not None
    corners = np.array([[40.0, 10.0], [50.0, 40.0]])
    np.testing.assert_allclose(t.input_points(t.frame_points(corners)), corners, atol=1e-6)
    framed = t.to_frame(box)[0]  # a box in scan lines is a piece of the fan: its bounding box
    mapped = t.frame_points(corners)
    assert (framed[:2] <= mapped.min(axis=0) + 1e-3).all() and (framed[2:] >= mapped.max(axis=0) - 1e-3).all()
    back = t.to_input(t.to_frame(box))[0]
    assert (back[:2] <= box[0, :2] + 1e-3).all() and (back[2:] >= box[0, 2:] - 1e-3).all()


def test_sector_is_tracked_refound_on_size_change_and_falls_back_to_the_frame() -> None:
    from edge.inference.preprocess import SectorTracker

    tracker = SectorTracker(every=5, retry=2)
    dark = np.zeros((240, 320), np.uint8)
    assert tracker.update(dark).box == (0, 0, 320, 240) and not tracker.found  # whole frame until found
    img, _ = _fan_frame((320, 240))
    tracker.update(img)  # retry not yet due
    assert not tracker.found
    tracker.update(img)
    assert tracker.found and tracker.sector is not None and tracker.sector.kind == "convex"
    first = tracker.sector
    for _ in range(6):
        tracker.update(img)
    assert tracker.sector is first  # re-found, nearly the same: kept (no jitter)
    big, _ = _fan_frame((640, 480))
    assert tracker.update(big).width == 640


def test_views_need_gray() -> None:
    with pytest.raises(ValueError, match="view 'sector' needs color gray"):
        spec(shape=(1, 3, 32, 32), color="rgb", view="sector")


def _settle(tracker: object) -> None:
    import time

    deadline = time.monotonic() + 30
    while tracker.refitting and time.monotonic() < deadline:
        time.sleep(0.01)


def test_background_refits_keep_the_old_area_until_the_new_one_is_ready() -> None:
    import threading

    from edge.inference.preprocess import SectorTracker, refit_in_background

    with refit_in_background():
        tracker = SectorTracker(every=5, retry=2)
    assert tracker.background and not SectorTracker().background, "only trackers made in the block"
    dark = np.zeros((240, 320), np.uint8)
    img, _ = _fan_frame((320, 240))
    assert tracker.update(dark).box == (0, 0, 320, 240)  # the first search waits: nothing to show
    tracker.update(img)
    tracker.update(img)  # the retry is due: searched on the worker, the whole frame meanwhile
    _settle(tracker)
    assert tracker.update(img).kind == "convex" and tracker.found
    first = tracker.sector
    tracker.reset()  # a view change: the old area stands in while the new search runs
    assert tracker.update(img) is first
    assert tracker.refitting or tracker.found is False
    _settle(tracker)
    tracker.update(img)
    assert tracker.found and tracker.sector is not None and tracker.sector.box == first.box, "found anew"
    names = [t.name for t in threading.enumerate()]
    assert any(n.startswith("sector-refit") for n in names), "the search ran on its own thread"


def test_gray_models_share_one_conversion_of_a_frame_with_the_same_inputs() -> None:
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (90, 120, 3), dtype=np.uint8) for _ in range(3)]
    specs = [
        spec(),
        spec(shape=(1, 1, 48, 64), resize="letterbox"),
        spec(shape=(1, 40, 40, 1), layout="NHWC"),
    ]
    alone = [Preprocessor(s) for s in specs]
    shared = [Preprocessor(s) for s in specs]
    for img in frames:
        want = [p(img)[0].copy() for p in alone]
        with one_frame(img):
            grays = [p._color(img) for p in shared]
            got = [p(img)[0].copy() for p in shared]
        assert all(g is grays[0] for g in grays), "converted once, shared by every gray model"
        assert np.array_equal(grays[0], cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
        assert all(np.array_equal(a, b) for a, b in zip(want, got))
        # another array (a copy of the frame) is not the frame of the block: its own conversion
        with one_frame(img):
            assert shared[0]._color(img.copy()) is not shared[1]._color(img)
    assert shared[0]._color(frames[0]) is not shared[1]._color(frames[0]), "outside the block: not shared"


def test_a_background_refit_builds_the_scan_line_map_on_the_worker_too() -> None:
    """The frame after a new area is taken only swaps the map in (building it took 6 ms there),
    and gets the same input as a model that built the map itself."""
    import threading

    from edge.inference.preprocess import refit_in_background
    from edge.inference.sector import ScanlineMap

    built_on: list[str] = []
    original = ScanlineMap.__init__

    def spy(self: ScanlineMap, *args: object, **kwargs: object) -> None:
        built_on.append(threading.current_thread().name)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    s = spec(shape=(1, 1, 48, 48), view="scanlines")
    with refit_in_background():
        live = Preprocessor(s)
    ref = Preprocessor(s)
    img, _ = _fan_frame((320, 240))
    live(img)  # the stream's first search waits, on this thread
    live.tracker.reset()  # a view change: searched anew on the worker
    ScanlineMap.__init__ = spy  # type: ignore[method-assign]
    try:
        live(img)
        _settle(live.tracker)
        live(img)
        fitted = live.fitted.copy()
    finally:
        ScanlineMap.__init__ = original  # type: ignore[method-assign]
    sector = live.tracker.sector
    assert sector is not None and live.tracker.prepared is not None
    assert live.tracker.prepared[0] is sector and live._views is not None
    assert live._views[1] is live.tracker.prepared[1], "the worker's map is the one in use"
    assert built_on and all(n.startswith("sector-refit") for n in built_on), built_on
    assert np.array_equal(fitted, ref.fit(img, sector)[0]), "the same input as a map built in place"


def test_models_with_the_same_scan_line_view_share_one_remap_of_a_frame() -> None:
    from edge.inference.sector import ScanlineMap

    img, truth = _fan_frame()
    calls: list[int] = []
    original = ScanlineMap.__call__

    def counted(self: ScanlineMap, gray: np.ndarray) -> np.ndarray:
        calls.append(id(self))
        return original(self, gray)

    same = [Preprocessor(spec(shape=(1, 1, 48, 48), view="scanlines")) for _ in range(2)]
    other = Preprocessor(spec(shape=(1, 1, 32, 32), view="scanlines"))
    alone = [p.fit(img, sector=truth)[0].copy() for p in (*same, other)]
    ScanlineMap.__call__ = counted  # type: ignore[method-assign]
    try:
        with one_frame(img):
            got = [p.fit(img, sector=truth)[0].copy() for p in (*same, other)]
        assert len(calls) == 2, "one remap for the two 48x48 models, one for the 32x32"
        with one_frame(img):  # the next frame: remapped again
            same[0].fit(img, sector=truth)
        assert len(calls) == 3
        same[0].fit(img, sector=truth)  # outside the block: not shared
        same[1].fit(img, sector=truth)
        assert len(calls) == 5
    finally:
        ScanlineMap.__call__ = original  # type: ignore[method-assign]
    assert all(np.array_equal(a, b) for a, b in zip(alone, got))
