"""``serial:///dev/ttyACM0`` and ``probe+emu://``: frames from a probe over the probe link.

``serial://PATH[?baud=N]`` opens a real probe (USB CDC-ACM) through ``firmware_bridge``.
``probe+emu://?preset=lung&fps=30&seed=0[&truth=FILE]`` starts the virtual probe as its own
process on a pty (as real firmware is a separate device) and reads it through the very same
serial path; its fault parameters (``EMULATOR_PARAMS``) are checked here, naming the parameter.
The link reconnects by itself when the device disappears and comes back; while it is down
``status_text()`` says so, for the HUD, and no frame is invented. A link that cannot recover by
itself (``ProbeLink.failed``) is a ``SourceError`` from ``read``: the run stops and says why.

Timing: ``t_acquired_ns`` is the probe's own capture time mapped onto the host's monotonic
clock with the smallest host-minus-device offset seen since the link (re)connected (the frame
that travelled fastest bounds the clock offset); ``t_received_ns`` is when the frame was whole.
"""

from __future__ import annotations

import collections
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import SourceError
from edge.frames import Frame, Geometry
from edge.sources.base import SourceInfo
from edge.sources.registry import SourceURL
from firmware_bridge.emulator import check_fps
from firmware_bridge.emulator_faults import non_negative, probability
from firmware_bridge.messages import Geometry as ProbeGeometry
from firmware_bridge.phantom import PRESETS

log = logging.getLogger(__name__)

# probe+emu:// query parameter -> its check (emulator_faults / emulator), None: a string or an int seed.
EMULATOR_PARAMS: dict[str, Callable[[str, float], float] | None] = {
    "preset": None,
    "seed": None,
    "truth": None,
    "fps": check_fps,
    "disconnect_at": non_negative,
    "reconnect_after": non_negative,
    "drop_chunk_p": probability,
    "stall_at": non_negative,
    "stall_s": non_negative,
    "corrupt_bytes_per_s": non_negative,
}
QUEUE_FRAMES = 8  # frames waiting for the pipeline; older ones are dropped (and counted) past this
EMULATOR_START_S = 15.0
_SECTORS = {g.value: g.name.lower() for g in ProbeGeometry}  # the wire's enum, as Frame words


class ProbeSource:
    def __init__(self, url: SourceURL, *, emulate: bool) -> None:
        self._url = url
        self._emulate = emulate
        self._fps = _check_emulator_url(url) if emulate else None
        self._link: Any = None
        self._emulator: subprocess.Popen[str] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._frames: collections.deque[Frame] = collections.deque(maxlen=QUEUE_FRAMES)
        self._cond = threading.Condition()
        self._seq = 0
        self._offset_ns: int | None = None
        self._state = "disconnected"
        self._status: dict[str, Any] = {}
        self.dropped = 0
        self.frame_id_gaps = 0  # frame ids never received: dropped in the probe, or by the link
        self._last_frame_id: int | None = None
        self.disconnects = 0
        self._closing = False

    # -- opening -----------------------------------------------------------------------------
    def _link_url(self) -> str:
        if not self._emulate:
            return self._url.raw
        q = self._url.query
        self._tmp = tempfile.TemporaryDirectory(prefix="edge-probe-")
        link = Path(self._tmp.name) / "probe"
        cmd = [
            sys.executable,
            "-m",
            "firmware_bridge.emulator",
            "--link",
            str(link),
            "--preset",
            q.get("preset", "lung"),
            "--fps",
            str(self._fps),
            "--seed",
            q.get("seed", "0"),
            "--parent",  # the probe process ends with us, even if we are killed
            str(os.getpid()),
        ]
        if "truth" in q:
            cmd += ["--truth", q["truth"]]
        # Fault injection for soak and cable-pull tests (firmware_bridge/EMULATOR.md).
        for key, check in EMULATOR_PARAMS.items():
            if check is not None and key != "fps" and key in q:
                cmd += [f"--{key.replace('_', '-')}", q[key]]
        self._emulator = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + EMULATOR_START_S
        while not link.exists():
            if self._emulator.poll() is not None or time.monotonic() > deadline:
                self._stop_emulator()
                raise SourceError(f"{self._url.raw}: the virtual probe did not start ({' '.join(cmd)})")
            time.sleep(0.02)
        return f"serial://{link}"

    def open(self) -> None:
        import firmware_bridge

        self._closing = False
        url = self._link_url()
        try:
            self._link = firmware_bridge.open(
                url, on_frame=self._on_frame, on_status=self._on_status, on_event=self._on_event
            )
            self._link.start_streaming()
        except (firmware_bridge.LinkError, OSError) as exc:
            self.close()
            raise SourceError(f"{self._url.raw}: cannot open the probe: {exc}") from exc
        self._state = "connected"
        caps = self._link.capabilities
        log.info("probe %s %s, protocol v%s, on %s", caps.model, caps.serial, self._link.version, url)

    # -- link callbacks (reader thread) ------------------------------------------------------
    def _on_event(self, state: str, detail: str) -> None:
        if self._closing:
            return
        if state == "failed":
            log.error("probe link failed: %s", detail)
            with self._cond:
                self._cond.notify_all()  # read() raises at once instead of sitting out its timeout
        if state != "connected" and self._state == "connected":
            self.disconnects += 1
            log.warning("probe disconnected (%s); reconnecting", detail)
        elif state == "connected" and self._state != "connected":
            log.info("probe connected (%s)", detail)
            self._offset_ns = None  # a replugged probe may restart its clock
        self._state = state

    def _on_status(self, status: Any) -> None:
        self._status = {
            "battery_pct": status.battery_pct,
            "temperature_c": status.temperature_dc / 10,
            "buttons": status.buttons,
            "fault": status.fault,
        }

    def _on_frame(self, af: Any) -> None:
        now = time.monotonic_ns()
        device_ns = int(af.timestamp_us) * 1000
        offset = now - device_ns
        if self._offset_ns is None or offset < self._offset_ns:
            self._offset_ns = offset
        image, raw = af.image, None
        if image.dtype != np.uint8:  # deeper than 8 bits: display the top 8, keep the rest
            raw = image
            image = (image >> max(0, int(af.bit_depth) - 8)).astype(np.uint8)
        fid, last = int(af.frame_id), self._last_frame_id
        if last is not None and 0 < (ahead := (fid - last) & 0xFFFFFFFF) < 2**31:
            # Frames the probe captured but the host never got (dropped in the probe or on the link)
            # leave a gap in seq as well, so results show where frames are missing.
            self.frame_id_gaps += ahead - 1
            self._seq += ahead - 1
        self._last_frame_id = fid
        frame = Frame(
            image=image,
            seq=self._seq,
            t_acquired_ns=device_ns + self._offset_ns,
            t_received_ns=now,
            source_id=self._source_id(),
            modality="US",
            geometry=Geometry(
                pixel_spacing_mm=(float(af.spacing_y_mm), float(af.spacing_x_mm)),
                depth_mm=float(af.depth_mm),
                sector=_SECTORS.get(int(af.geometry), "unknown"),  # type: ignore[arg-type]
            ),
            raw=raw,
            meta={"frame_id": int(af.frame_id), "device_time_us": int(af.timestamp_us)},
        )
        self._seq += 1
        with self._cond:
            if len(self._frames) == self._frames.maxlen:
                self.dropped += 1
            self._frames.append(frame)
            self._cond.notify()

    def _source_id(self) -> str:
        caps = self._link.capabilities if self._link is not None else None
        return f"{caps.model} {caps.serial}" if caps is not None else "probe"

    # -- Source protocol ---------------------------------------------------------------------
    def read(self, timeout: float | None = None) -> Frame | None:
        link = self._link
        why = link.failed if link is not None else None
        if why is not None:
            raise SourceError(f"{self._url.raw}: the probe link failed and cannot recover: {why}")
        with self._cond:
            if not self._frames:
                self._cond.wait(timeout)
            return self._frames.popleft() if self._frames else None

    @property
    def eof(self) -> bool:
        return False  # a probe is live: while unplugged it is reconnecting, not finished

    def status_text(self) -> str | None:
        """What the HUD shows in red: None while all is well."""
        if self._link is None:
            return None
        if self._state != "connected":
            return "probe disconnected"
        battery = self._status.get("battery_pct")
        if battery is not None and battery < 15:
            return f"probe battery {battery}%"
        return None

    def hud_text(self) -> str | None:
        """Battery and temperature for the HUD line."""
        s = self._status
        if not s:
            return None
        return f"probe {s['battery_pct']}% {s['temperature_c']:.1f}C"

    @property
    def info(self) -> SourceInfo:
        link = self._link
        caps = link.capabilities if link is not None else None
        # A frame id never received that the link did not drop (frames_dropped: a lost or damaged
        # chunk) was dropped in the probe, which sends the newest frame when the host falls behind.
        stats = _plain(link.stats()) if link is not None else {}
        return SourceInfo(
            url=self._url.raw,
            kind="probe+emu" if self._emulate else "serial",
            fps=self._fps,
            realtime=True,
            extra={
                "probe_model": caps.model if caps else None,
                "probe_serial": caps.serial if caps else None,
                "protocol_version": link.version if link else None,
                "link_state": self._state,
                "disconnects": self.disconnects,
                "host_dropped_frames": self.dropped,
                "probe_dropped_frames": max(0, self.frame_id_gaps - stats.get("frames_dropped_total", 0)),
                "status": dict(self._status),
                "link": stats,
            },
        )

    def close(self) -> None:
        self._closing = True
        link, self._link = self._link, None
        if link is not None:
            try:
                link.stop_streaming(attempts=1)  # the probe may be gone: do not retry on the way out
            except Exception as exc:  # the probe may already be gone; closing must not fail
                log.debug("stop streaming: %s", exc)
            link.stop()
        self._stop_emulator()
        with self._cond:
            self._cond.notify_all()

    def _stop_emulator(self) -> None:
        proc, self._emulator = self._emulator, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _plain(value: Any) -> Any:
    """Link stats as JSON types (Counters and nested dicts become plain dicts)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def _check_emulator_url(url: SourceURL) -> float:
    """Refuse unknown or out-of-range ``probe+emu://`` parameters, naming them; returns the fps."""
    unknown = sorted(set(url.query) - set(EMULATOR_PARAMS))
    if unknown:
        raise SourceError(f"{url.raw}: unknown parameter(s) {unknown}; known: {', '.join(EMULATOR_PARAMS)}")
    preset = url.query.get("preset", "lung")
    if preset not in PRESETS:
        raise SourceError(f"{url.raw}: preset={preset!r} is not one of {', '.join(PRESETS)}")
    seed = url.query.get("seed", "0")
    if not seed.lstrip("-").isdigit():
        raise SourceError(f"{url.raw}: seed={seed!r} must be a whole number")
    for key, check in EMULATOR_PARAMS.items():
        value = url.number(key, None) if check is not None else None
        if value is not None and check is not None:
            try:
                check(key, value)
            except ValueError as exc:
                raise SourceError(f"{url.raw}: query parameter {exc}") from None
    fps = url.number("fps", 30.0)
    assert fps is not None
    return fps


def open_serial(url: SourceURL) -> ProbeSource:
    if not (url.netloc or url.path):
        raise SourceError(f"{url.raw}: expected serial:///dev/ttyACM0")
    return ProbeSource(url, emulate=False)


def open_emulated(url: SourceURL) -> ProbeSource:
    return ProbeSource(url, emulate=True)
