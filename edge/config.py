"""The runtime's configuration: one TOML file, typed and validated at start.

pydantic does the checking (types, ranges, unknown keys rejected with ``extra="forbid"``) and
reports the exact location of each error; we add the file name so every message reads
``FILE: key a.b[0].c: problem``. With no file at all, the defaults are the embedded default
run: the bundled clip, the bundled models, overlay video and report under ``runs/``.
"""

from __future__ import annotations

import re
import socket
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge.errors import ConfigError
from edge.settings.live import LiveSettings
from edge.settings.xray import XraySettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (JetPack 6)
    import tomli as tomllib

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR / "assets"
# Models live beside the package in a source checkout; EDGE_MODELS_DIR or [models] dir overrides.
DEFAULT_MODELS_DIR = PACKAGE_DIR.parent / "models"
# A CC BY convex lung clip (attribution in assets/clips/SOURCE.md) looped like a probe: `edge bench`.
DEFAULT_CLIP = ASSETS_DIR / "clips" / "Reg_Image_182106_crop.mp4"
DEFAULT_CLIP_URL = f"video://{DEFAULT_CLIP}?loop=1"
# The embedded default: the virtual probe (B-mode lung phantom) on a pty, read through the serial path.
DEFAULT_SOURCE_URL = "probe+emu://?preset=lung&fps=30"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Section):
    url: str = DEFAULT_SOURCE_URL
    read_timeout_s: float = Field(0.5, gt=0, le=10)


class PipelineConfig(_Section):
    # Back-pressure, named: the display sees every frame through a bounded queue; "block" makes
    # acquisition wait when display falls behind (every frame recorded), "drop_oldest" keeps the
    # display live and counts what it dropped. Inference always takes the newest frame.
    display_queue: int = Field(4, ge=1, le=256)
    display_policy: Literal["block", "drop_oldest"] = "block"
    # "latest": inference takes the newest frame and skips the rest (live use, bounded latency);
    # "every": every frame is inferred and acquisition waits for inference (analysing a recording);
    # "auto": "latest" for live and paced sources, "every" for a replay run as fast as possible.
    inference_policy: Literal["auto", "latest", "every"] = "auto"
    # Results are never dropped: this only bounds memory if the consumer stalls; when full, the
    # inference worker waits (and the wait shows up in its latency) rather than dropping a result.
    result_queue: int = Field(4096, ge=16)
    stop_timeout_s: float = Field(1.0, gt=0, le=10)
    # How long the display may wait for the result of the frame it is about to show. A fast model's
    # overlay then lands on its own frame rather than the next (one frame interval later); a slow
    # model is never waited for beyond this, so the display keeps the source's rate. 0 = never wait.
    display_sync_ms: float = Field(8.0, ge=0, le=100)
    # OpenCV's own worker threads (process-wide). The stages already run in parallel; on small boxes
    # OpenCV's pool only adds wake-ups (2 cores: less CPU per frame with 1). 0 = OpenCV's default.
    opencv_threads: int = Field(1, ge=0, le=64)


class HealthConfig(_Section):
    """What repeated failures do (edge/runtime/failures.py, docs/reliability.md). A stage is the
    source, inference, the overlay, each display sink or each result handler; one bad frame is
    nothing, a stage that keeps failing is an alarm, and past a limit the run stops: exit "failed"."""

    alarm_after_failures: int = Field(3, ge=1, le=10_000)  # in a row: the HUD alarm
    # In a row, any of these stops the run (0 = no such limit): 150 is 5 s of frames at 30 fps.
    max_consecutive_failures: int = Field(150, ge=0, le=10_000_000)
    failure_budget_s: float = Field(10.0, ge=0, le=86_400)  # failing in a row for this long

    @model_validator(mode="after")
    def _check(self) -> HealthConfig:
        limit = self.max_consecutive_failures
        if limit and self.alarm_after_failures > limit:
            raise ValueError(
                f"alarm_after_failures ({self.alarm_after_failures}) must not exceed "
                f"max_consecutive_failures ({limit}): the alarm comes before the stop"
            )
        return self


class WatchdogConfig(_Section):
    """How long each stage may go without its loop going round before it counts as stuck
    (edge/runtime/health.py, docs/reliability.md): red on the HUD, and under systemd the watchdog
    pings stop so the service is restarted. Progress is the loop going round, not a frame arriving:
    an unplugged probe or a gated model is not stuck; a call that never returns is."""

    acquisition_s: float = Field(15.0, gt=0, le=3600)
    inference_s: float = Field(10.0, gt=0, le=3600)
    display_s: float = Field(10.0, gt=0, le=3600)
    results_s: float = Field(30.0, gt=0, le=3600)
    uplink_s: float = Field(120.0, gt=0, le=3600)


class GateConfig(_Section):
    """Run this model only when a quality model's latest state says the frame is usable."""

    model: str
    require_ok: bool = True
    labels: tuple[str, ...] = ()  # explicit allowed labels; empty = the quality model's ok_labels


class ModelConfig(_Section):
    name: str
    path: Path | None = None  # folder holding manifest.json; default <models dir>/<name>
    precision: Literal["fp32", "fp16", "int8", "auto"] = "auto"
    backend: Literal["auto", "onnxruntime", "tensorrt"] = "auto"
    every_n: int = Field(1, ge=1, le=1000)  # run on every Nth inferred frame, reuse the last result
    # A quality model's operating point: a fault is called only at this probability or above
    # (the model card's table of operating points); None: the manifest's thresholds.fault_min_confidence.
    fault_min_confidence: float | None = Field(None, ge=0, le=1)
    enabled: bool = True
    gate: GateConfig | None = None


class TemporalConfig(_Section):
    """Clip-level scores (``edge.inference.temporal``): per label, the mean confident count per frame
    over the last ``window_s`` at one probe position; ``pattern_at``: the score that flags a pattern
    (B-pattern: 3 or more B-lines in one view); reset on a ``reset_on`` quality label, a gate closed
    over ``gate_closed_s``, a gap over ``max_gap_s``, or a scene change over ``scene_change``."""

    labels: tuple[str, ...] = ("b_line",)  # scored where a detection model of the chain reports them
    window_s: float = Field(3.0, gt=0, le=60)
    min_window_s: float = Field(1.0, ge=0, le=60)  # shorter: shown as settling, no flag
    pattern_at: dict[str, float] = Field(default_factory=lambda: {"b_line": 3.0})
    reset_on: tuple[str, ...] = ("no_contact",)
    gate_closed_s: float = Field(0.5, ge=0, le=60)
    max_gap_s: float = Field(1.0, gt=0, le=60)
    scene_change: float = Field(0.1, gt=0, le=2)  # 1 - correlation of 32x32 thumbnails, frame to frame


class InferenceConfig(_Section):
    providers: tuple[str, ...] = ("auto",)  # ORT execution providers, in preference order
    # ORT intra-op threads. 1 by default: the frame models are small, and on a 2-6 core box the
    # decode and display threads need the other cores; measured p99 0.9 ms with 1 thread against
    # 8 ms with ORT's default on 2 cores. 0 = ORT's choice (one per core), for big models.
    threads: int = Field(1, ge=0, le=64)
    warmup_runs: int = Field(3, ge=0, le=100)
    models_dir: Path = Field(default_factory=lambda: DEFAULT_MODELS_DIR)


class DisplayConfig(_Section):
    sinks: tuple[Literal["window", "video", "snapshots", "null"], ...] = ("window",)
    title: str = "scanner edge"
    video_codec: str = Field("mp4v", min_length=4, max_length=4)
    snapshot_every_s: float = Field(5.0, gt=0)
    review_below: float = Field(0.5, ge=0, le=1)  # findings under this confidence are "review"

    @field_validator("sinks")
    @classmethod
    def _no_duplicate_sinks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError("each sink may appear once")
        return v


class OutputConfig(_Section):
    dir: Path = Path("runs")
    results_jsonl: bool = True


def default_device_id() -> str:
    """A stable id for this box when none is configured: its host name, reduced to [a-z0-9-]."""
    name = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().lower()).strip("-")
    return f"edge-{name or 'unnamed'}"[:64]


class DeviceConfig(_Section):
    """Who this box is on the wire: every result and feedback message carries it."""

    id: str = Field(default_factory=default_device_id, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    site: str | None = Field(None, max_length=128)  # e.g. "ambulance-12", "clinic-north"


class OutboxConfig(_Section):
    """The durable result store (edge/sync/outbox.py): results are kept here until the broker has them."""

    enabled: bool = True
    path: Path | None = None  # default <output.dir>/outbox.sqlite3, shared by every run
    quota_bytes: int = Field(2 * 1024**3, ge=1024**2)
    thumbnail_fraction: float = Field(0.8, gt=0, le=1)  # past this share of the quota: no thumbnails
    retention_days: float = Field(7.0, gt=0)  # sent results are pruned this long after their PUBACK
    thumbnails: bool = False  # a small masked JPEG of the overlay in each result with findings
    thumbnail_px: int = Field(256, ge=32, le=1024)  # long side
    thumbnail_quality: int = Field(80, ge=10, le=100)
    thumbnail_min_priority: int = Field(1, ge=0, le=2)  # 1: results with findings; 0: every result
    thumbnail_every_s: float = Field(1.0, ge=0)  # at most one thumbnail per this many seconds
    # "changes": keep a result when its quality, gating or finding counts change, urgent findings
    # always, else one per heartbeat_s (30 fps of identical results is 0.5 GB/h); "all": every one.
    keep: Literal["changes", "all"] = "changes"
    heartbeat_s: float = Field(1.0, gt=0, le=3600)


class LogConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class UplinkTlsConfig(_Section):
    ca: Path | None = None  # CA that signed the broker's certificate; None = no TLS (plain TCP)
    cert: Path | None = None  # this device's client certificate (the broker requires one)
    key: Path | None = None


class UplinkConfig(_Section):
    """MQTT uplink of the outbox (docs/sync.md). The device id and site come from [device]."""

    enabled: bool = False
    host: str = "localhost"
    port: int = Field(8883, ge=1, le=65535)
    tls: UplinkTlsConfig = Field(default_factory=UplinkTlsConfig)
    username: str | None = None  # default: the device id
    password_file: Path | None = None  # first line is the password; never inline, never logged
    protocol: Literal["5", "3.1.1"] = "5"  # "5" falls back to 3.1.1 when the broker refuses v5
    keepalive_s: int = Field(30, ge=5, le=3600)
    inflight_window: int = Field(64, ge=1, le=65535)
    backoff_min_s: float = Field(0.5, gt=0, le=60)
    backoff_max_s: float = Field(60.0, gt=0, le=3600)
    site: str | None = None  # overrides [device] site for the topic
    topic_prefix: str = Field("scanners", min_length=1)
    live_window_s: float = Field(10.0, ge=0)  # results this young count as live while a backlog drains
    live_share: float = Field(0.5, ge=0, le=1)  # share of each claim reserved for live results
    # Receipts (docs/sync.md): the ingest confirms what it committed on <base>/receipts; a sent
    # result with no receipt within confirm_timeout_s is sent again. false: the PUBACK is final.
    receipts: bool = True
    confirm_timeout_s: float = Field(30.0, gt=0, le=86400)
    # Only with receipts = false: trust a PUBACK once the connection has outlived it this long (a
    # heuristic against a broker that acks before it saves, then dies). Receipts make it moot.
    ack_settle_s: float = Field(0.0, ge=0, le=60)

    @model_validator(mode="after")
    def _check(self) -> UplinkConfig:
        if self.backoff_max_s < self.backoff_min_s:
            raise ValueError("backoff_max_s must be at least backoff_min_s")
        if (self.tls.cert is None) != (self.tls.key is None):
            raise ValueError("tls.cert and tls.key go together")
        return self


class DeidConfig(_Section):
    """De-identification (docs/deid.md): device key, dates, private allow-list, pixel rectangles."""

    key_file: Path | None = None  # 32-byte secret, mode 0600; None: $EDGE_DEID_KEY, else ~/.config/...
    dates: Literal["shift", "remove"] = "shift"  # shift: per-patient whole-day offset; remove: Basic Profile
    keep_private: tuple[str, ...] = ()  # allow-listed private attributes, "GGGG,EE,CREATOR"
    # Imaging area per probe (Manufacturer's Model Name): [[x0, y0, x1, y1], ...], inclusive pixel corners;
    # used instead of the file's ultrasound regions, and to clean images of any modality from that model.
    probe_rects: dict[str, tuple[tuple[int, int, int, int], ...]] = Field(default_factory=dict)

    @field_validator("keep_private")
    @classmethod
    def _check_private(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from edge.deid.header import parse_private_allow_list
        from edge.errors import EdgeError

        try:
            parse_private_allow_list(v)
        except EdgeError as exc:  # as ValueError, so the message gets the file and key in front
            raise ValueError(str(exc)) from None
        return v

    @field_validator("probe_rects")
    @classmethod
    def _check_rects(
        cls, v: dict[str, tuple[tuple[int, int, int, int], ...]]
    ) -> dict[str, tuple[tuple[int, int, int, int], ...]]:
        for model, rects in v.items():
            for r in rects:
                x0, y0, x1, y1 = r
                if min(x0, y0) < 0 or x1 < x0 or y1 < y0:
                    raise ValueError(f"{model!r}: rectangle {list(r)} needs 0 <= x0 <= x1 and 0 <= y0 <= y1")
        return v


def _default_models() -> tuple[ModelConfig, ...]:
    # A mixed box, routed by the manifests' modality: US (the detector on frames called diagnostic), CR/DX.
    return (
        ModelConfig(name="us-quality"),
        ModelConfig(name="lung-detector", gate=GateConfig(model="us-quality")),
        ModelConfig(name="cxr-lungs"),
        ModelConfig(name="cxr-finding"),
    )


class Config(_Section):
    source: SourceConfig = Field(default_factory=SourceConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    watchdog: WatchdogConfig = Field(default_factory=WatchdogConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    models: tuple[ModelConfig, ...] = Field(default_factory=_default_models)
    temporal: TemporalConfig = Field(default_factory=TemporalConfig)
    display: DisplayConfig = Field(default_factory=DisplayConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    device: DeviceConfig = Field(default_factory=DeviceConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    uplink: UplinkConfig = Field(default_factory=UplinkConfig)
    deid: DeidConfig = Field(default_factory=DeidConfig)
    xray: XraySettings = Field(default_factory=XraySettings)  # exposure and positioning checks
    live: LiveSettings = Field(default_factory=LiveSettings)  # how old a shown frame may be

    @model_validator(mode="after")
    def _check_models(self) -> Config:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
        for m in self.models:
            if m.gate is not None:
                if m.gate.model not in names:
                    raise ValueError(
                        f"model {m.name!r} is gated on {m.gate.model!r}, which is not configured"
                    )
                if m.gate.model == m.name:
                    raise ValueError(f"model {m.name!r} cannot gate itself")
        return self

    def model_dir(self, model: ModelConfig) -> Path:
        return model.path if model.path is not None else self.inference.models_dir / model.name

    def outbox_path(self) -> Path:
        return self.outbox.path if self.outbox.path is not None else self.output.dir / "outbox.sqlite3"

    def with_overrides(self, **sections: dict[str, Any]) -> Config:
        """A copy with some fields of some sections replaced, validated again."""
        data = self.model_dump()
        for section, values in sections.items():
            data[section] = {**data[section], **values}
        return _validate(data, "<command line>")


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _validate(data: dict[str, Any], origin: str) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = _format_loc(tuple(err["loc"]))
            msg = "unknown key (not a setting)" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"{origin}: key {where}: {msg}")
        raise ConfigError("\n".join(lines)) from None


def _resolve_uplink_paths(config: Config, base: Path) -> Config:
    """[uplink] password_file and tls.ca/cert/key, relative to the config file's folder."""
    up = config.uplink

    def rel(p: Path | None) -> Path | None:
        return base / p if p is not None and not p.is_absolute() else p

    tls = {k: rel(getattr(up.tls, k)) for k in ("ca", "cert", "key")}
    password = rel(up.password_file)
    if password == up.password_file and all(tls[k] == getattr(up.tls, k) for k in tls):
        return config
    return config.with_overrides(uplink={"password_file": password, "tls": tls})


def load_config(path: Path | None) -> Config:
    """Read and validate ``path``; None gives the embedded default."""
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    config = _validate(data, str(path))
    # Relative paths in a config file are relative to the file, as a user reading it expects.
    base = path.resolve().parent
    inference = config.inference
    if "inference" in data and "models_dir" in data["inference"] and not inference.models_dir.is_absolute():
        config = config.with_overrides(inference={"models_dir": base / inference.models_dir})
    if config.outbox.path is not None and not config.outbox.path.is_absolute():
        config = config.with_overrides(outbox={"path": base / config.outbox.path})
    if config.deid.key_file is not None and not config.deid.key_file.is_absolute():
        config = config.with_overrides(deid={"key_file": base / config.deid.key_file})
    config = _resolve_uplink_paths(config, base)
    models = [
        m.model_copy(update={"path": base / m.path}) if m.path is not None and not m.path.is_absolute() else m
        for m in config.models
    ]
    return config.model_copy(update={"models": tuple(models)})
