from pathlib import Path

import pytest

from edge.config import DEFAULT_CLIP, DEFAULT_CLIP_URL, DEFAULT_SOURCE_URL, Config, load_config
from edge.errors import ConfigError
from tests.support.paths import REPO


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "edge.toml"
    p.write_text(text)
    return p


def test_no_file_gives_the_embedded_default() -> None:
    c = load_config(None)
    assert c.source.url == DEFAULT_SOURCE_URL == "probe+emu://?preset=lung&fps=30"
    assert f"video://{DEFAULT_CLIP}?loop=1" == DEFAULT_CLIP_URL
    assert DEFAULT_CLIP.exists(), "the bundled clip that edge bench replays is missing"
    assert [m.name for m in c.models] == ["us-quality", "lung-detector", "cxr-lungs", "cxr-finding"]
    assert all(c.model_dir(m).joinpath("manifest.json").is_file() for m in c.models), "bundled models"
    assert c.models[2].gate is None and c.models[3].gate is None  # an X-ray has no ultrasound verdict
    gate = c.models[1].gate
    assert gate is not None and gate.model == "us-quality" and gate.require_ok and not gate.labels
    assert c.pipeline.inference_policy == "auto"


def test_a_full_file_is_read(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
[source]
url = "dicom:///data/study"
[pipeline]
display_queue = 8
display_policy = "drop_oldest"
[[models]]
name = "us-quality"
[[models]]
name = "lung"
path = "models/lung"
every_n = 2
gate = { model = "us-quality" }
fault_min_confidence = 0.65
[display]
sinks = ["video", "snapshots"]
""",
    )
    c = load_config(p)
    assert c.source.url == "dicom:///data/study"
    assert c.pipeline.display_policy == "drop_oldest"
    lung = c.models[1]
    assert lung.gate is not None and lung.gate.model == "us-quality"
    assert lung.fault_min_confidence == 0.65 and c.models[0].fault_min_confidence is None
    assert lung.path == tmp_path / "models/lung", "relative paths resolve against the config file"
    assert c.display.sinks == ("video", "snapshots")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[pipeline]\ndisplay_qeue = 3\n", "key pipeline.display_qeue: unknown key"),
        (
            "[pipeline]\ndisplay_queue = 0\n",
            "key pipeline.display_queue: Input should be greater than or equal to 1",
        ),
        ("[pipeline]\ndisplay_policy = 'sometimes'\n", "key pipeline.display_policy"),
        ("[[models]]\nname = 'a'\nprecision = 'int4'\n", "key models[0].precision"),
        ("[[models]]\nname = 'a'\nfault_min_confidence = 1.5\n", "key models[0].fault_min_confidence"),
        ("[[models]]\nname = 'a'\ngate = { model = 'b' }\n", "gated on 'b', which is not configured"),
        ("[[models]]\nname = 'a'\n[[models]]\nname = 'a'\n", "repeated: a"),
        ("colour = 'blue'\n", "key colour: unknown key"),
        ("[display]\nsinks = ['video', 'video']\n", "key display.sinks"),
    ],
)
def test_errors_name_the_key_and_the_file(tmp_path: Path, text: str, needle: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value)
    assert needle in str(e.value)


def test_bad_toml_and_missing_file_name_the_file(tmp_path: Path) -> None:
    p = write(tmp_path, "[source\nurl=1")
    with pytest.raises(ConfigError, match=f"{p}: not valid TOML"):
        load_config(p)
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read config file"):
        load_config(tmp_path / "nope.toml")


def test_overrides_are_validated() -> None:
    c = Config().with_overrides(source={"url": "uvc://0"})
    assert c.source.url == "uvc://0"
    with pytest.raises(ConfigError, match=r"<command line>: key pipeline\.display_queue"):
        Config().with_overrides(pipeline={"display_queue": -1})


def test_health_limits_are_validated(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, "[health]\nmax_consecutive_failures = 0\nfailure_budget_s = 0\n"))
    assert (c.health.max_consecutive_failures, c.health.failure_budget_s) == (0, 0.0), "0: no such limit"
    assert Config().health.alarm_after_failures == 3
    for text, needle in [
        ("[health]\nalarm_after_failures = 0\n", "key health.alarm_after_failures"),
        ("[health]\nfailure_budget_s = -1\n", "key health.failure_budget_s"),
        (
            "[health]\nalarm_after_failures = 9\nmax_consecutive_failures = 5\n",
            "the alarm comes before the stop",
        ),
        ("[health]\nmax_failures = 5\n", "key health.max_failures: unknown key"),
    ]:
        with pytest.raises(ConfigError, match=needle):
            load_config(write(tmp_path, text))


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("```toml", text.index("### Configuration")) + len("```toml")
    return text[start : text.index("```", start)]


def test_the_readme_example_loads_and_makes_nothing_outside_its_folder(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, readme_example()))
    assert c.health.max_consecutive_failures == 150
    assert not c.uplink.enabled, "no broker is contacted by running the example as written"
    made = {"outbox": c.outbox_path(), "deid key": c.deid.key_file}
    for what, path in made.items():
        assert path is not None and path.is_relative_to(tmp_path), (
            f"{what}: {path} is outside the example's folder"
        )
    read = [c.uplink.password_file, c.uplink.tls.ca, c.uplink.tls.cert, c.uplink.tls.key]
    assert all(p is not None and p.is_relative_to(tmp_path) for p in read)
    assert not c.output.dir.is_absolute()


def test_the_temporal_section_has_defaults_and_named_errors(tmp_path: Path) -> None:
    t = Config().temporal
    assert (t.labels, t.window_s, t.pattern_at, t.reset_on, t.scene_change) == (
        ("b_line",),
        3.0,
        {"b_line": 3.0},
        ("no_contact",),
        0.1,
    )
    cfg = tmp_path / "edge.toml"
    cfg.write_text('[temporal]\nlabels = ["b_line", "pleural_line"]\nwindow_s = 5\npattern_at = {}\n')
    t = load_config(cfg).temporal
    assert t.labels == ("b_line", "pleural_line") and t.window_s == 5.0 and t.pattern_at == {}
    cfg.write_text("[temporal]\nwindow_s = 0\n")
    with pytest.raises(ConfigError, match=r"temporal\.window_s"):
        load_config(cfg)
    cfg.write_text("[temporal]\nwindow = 3\n")
    with pytest.raises(ConfigError, match=r"temporal\.window"):
        load_config(cfg)
