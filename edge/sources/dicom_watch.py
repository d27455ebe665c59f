"""``dicom+watch:///path/to/share``: images a console exports to a folder (a network share), each shown
once as it arrives.

- A file is taken once it is complete: its size and modification time unchanged for ``settle_s``
  (default 2 s) and not a name a copier uses while writing (hidden ``.name``, ``*.part``, ``*.tmp``,
  ``*.partial``, ``*.filepart``): a half-copied file is never read.
- Each file is read once, across restarts: what was done with it (shown, bad, a duplicate of a SOP
  Instance UID already shown) is appended to a small state file, ``.edge-watch-state.jsonl`` in
  the folder or ``state=PATH``. A file changed since (same name, new size or time) is read again.
- A bad file (not DICOM, truncated, no image, a pixel format that cannot be shown) is logged by name
  with the reason, counted on the HUD and remembered: never re-read until it changes. The share
  itself is never written to, except for the state file when it lives there.

Query: ``settle_s`` (0.2-600), ``poll_s`` (how often the folder is listed, 0.1-60, default 0.5),
``state`` (the state file). Subfolders are watched too; hidden ones are not.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge.atomic_file import atomic_write
from edge.errors import SourceError
from edge.frames import Frame
from edge.sources._common import SourceBase, check_query, check_readable, url_path
from edge.sources.base import SourceInfo
from edge.sources.dicom_inbox import Inbox
from edge.sources.dicom_store import Arrival, check_image
from edge.sources.registry import SourceURL

log = logging.getLogger(__name__)

STATE_NAME = ".edge-watch-state.jsonl"
_QUERY_KEYS = ("settle_s", "poll_s", "state")
_WRITING_SUFFIXES = (".part", ".tmp", ".partial", ".filepart", ".crdownload")


@dataclass(frozen=True, slots=True)
class _Seen:
    size: int
    mtime_ns: int
    status: str  # "shown" | "bad" | "duplicate"
    uid: str | None = None


def _number(url: SourceURL, key: str, default: float, low: float, high: float) -> float:
    value = url.number(key, default)
    if value is None or not low <= value <= high:
        raise SourceError(
            f"{url.raw}: query parameter {key}={url.query.get(key)!r} must be from {low:g} to {high:g}"
        )
    return value


class DicomWatchSource(SourceBase):
    """New complete DICOM files in a folder, each shown once (a cine frame by frame)."""

    def __init__(self, url: SourceURL) -> None:
        check_query(url, _QUERY_KEYS)
        self._url = url
        self.folder = url_path(url, "dicom+watch:///path/to/share")
        self.settle_s = _number(url, "settle_s", 2.0, 0.2, 600.0)
        self.poll_s = _number(url, "poll_s", 0.5, 0.1, 60.0)
        state = url.query.get("state")
        self.state_path = Path(state).expanduser() if state else self.folder / STATE_NAME
        self._inbox = Inbox(source_id=self.folder.name or str(self.folder))
        self._seen: dict[str, _Seen] = {}
        self._uids: set[str] = set()
        self._watching: dict[str, tuple[int, int, float]] = {}  # rel -> (size, mtime_ns, unchanged since)
        self._queued: dict[str, tuple[int, int, str]] = {}  # file path -> (size, mtime_ns, uid), until shown
        self._next_scan = 0.0
        self._opened = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.shown = 0
        self.bad = 0
        self.duplicates = 0
        self.last_bad: str | None = None

    # -- Source protocol ------------------------------------------------------------------------------
    @property
    def eof(self) -> bool:
        return False

    def open(self) -> None:
        if self._opened:
            return
        check_readable(self.folder, folders=True)
        if not self.folder.is_dir():
            raise SourceError(f"{self.folder}: not a folder; dicom+watch:// watches a folder")
        self._load_state()
        self._stop.clear()
        self._opened = True
        log.info("watching %s for DICOM files (state: %s)", self.folder, self.state_path)

    def close(self) -> None:
        self._stop.set()
        self._opened = False
        self._inbox.close()

    def read(self, timeout: float | None = None) -> Frame | None:
        if not self._opened:
            raise SourceError(f"{self._url.raw}: read() on a source that is not open")
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set():
            if self._inbox.pending():
                left = 0.0 if deadline is None else max(0.0, deadline - time.monotonic())
                frame = self._inbox.read(left)
                if frame is not None:
                    self._handed_over(frame)
                    return frame
            if time.monotonic() >= self._next_scan:
                self._scan()
                self._next_scan = time.monotonic() + self.poll_s
                if self._inbox.pending():
                    continue
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            wait = min(self.poll_s, self._next_scan - time.monotonic())
            self._stop.wait(max(0.0, wait if remaining is None else min(wait, remaining)))
        return None

    # -- finding complete files -----------------------------------------------------------------------
    def _scan(self) -> None:
        now = time.monotonic()
        ready: list[tuple[int, str, int]] = []
        present: set[str] = set()
        for path in self._files():
            rel = path.relative_to(self.folder).as_posix()
            try:
                st = path.stat()
            except OSError:
                continue  # gone between listing and looking: the next scan decides
            present.add(rel)
            seen = self._seen.get(rel)
            if seen is not None and (seen.size, seen.mtime_ns) == (st.st_size, st.st_mtime_ns):
                continue
            if str(path) in self._queued or st.st_size == 0:
                continue
            watch = self._watching.get(rel)
            if watch is None or (watch[0], watch[1]) != (st.st_size, st.st_mtime_ns):
                self._watching[rel] = (st.st_size, st.st_mtime_ns, now)  # new or still growing
            elif now - watch[2] >= self.settle_s:
                ready.append((st.st_mtime_ns, rel, st.st_size))
        for rel in set(self._watching) - present:
            del self._watching[rel]
        for mtime_ns, rel, size in sorted(ready):
            del self._watching[rel]
            self._take(self.folder / rel, rel, size, mtime_ns)

    def _files(self) -> list[Path]:
        found: list[Path] = []

        def on_error(exc: OSError) -> None:
            log.warning("cannot list %s: %s", exc.filename, exc.strerror or exc)

        for folder, dirs, names in os.walk(self.folder, onerror=on_error):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in names:
                if name.startswith(".") or name.lower().endswith(_WRITING_SUFFIXES) or name == "DICOMDIR":
                    continue
                found.append(Path(folder, name))
        return found

    def _take(self, path: Path, rel: str, size: int, mtime_ns: int) -> None:
        try:
            image, first = check_image(path)
        except SourceError as exc:
            reason = str(exc).replace(f"{path}: ", "")
            log.warning("%s: bad DICOM file, skipped: %s", rel, reason)
            with self._lock:
                self.bad += 1
                self.last_bad = f"{rel}: {reason}"
            self._remember(rel, _Seen(size, mtime_ns, "bad"), reason)
            return
        uid = str(image.meta.get("SOPInstanceUID") or f"file:{rel}")
        if uid in self._uids:
            log.info("%s: SOP Instance UID %s was shown already; not shown again", rel, uid)
            with self._lock:
                self.duplicates += 1
            self._remember(rel, _Seen(size, mtime_ns, "duplicate", uid))
            return
        self._uids.add(uid)
        self._queued[str(path)] = (size, mtime_ns, uid)
        now_ns = time.monotonic_ns()
        self._inbox.put(
            Arrival(image=image, first=first, uid=uid, t_arrived_ns=now_ns, wall_time=time.time())
        )

    def _handed_over(self, frame: Frame) -> None:
        """Remembered as shown once its first frame is handed over (a crash before: read again)."""
        file = str(frame.meta.get("file", ""))
        queued = self._queued.pop(file, None) if frame.meta.get("frame_index") == 0 else None
        if queued is None:
            return
        size, mtime_ns, uid = queued
        with self._lock:
            self.shown += 1
        self._remember(Path(file).relative_to(self.folder).as_posix(), _Seen(size, mtime_ns, "shown", uid))

    # -- the state file -------------------------------------------------------------------------------
    def _remember(self, rel: str, seen: _Seen, reason: str | None = None) -> None:
        self._seen[rel] = seen
        record = {"file": rel, "size": seen.size, "mtime_ns": seen.mtime_ns, "status": seen.status}
        if seen.uid:
            record["uid"] = seen.uid
        if reason:
            record["reason"] = reason[:300]
        try:
            with self.state_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:  # the run goes on; after a restart this file may be read again
            log.error("%s: cannot record %s: %s", self.state_path, rel, exc.strerror or exc)

    def _load_state(self) -> None:
        self._seen, self._uids = {}, set()
        lines: list[str] = []
        try:
            lines = self.state_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise SourceError(
                f"{self.state_path}: cannot read the watch state: {exc.strerror or exc}"
            ) from exc
        for number, line in enumerate(lines, 1):
            try:
                rec = json.loads(line)
                seen = _Seen(int(rec["size"]), int(rec["mtime_ns"]), str(rec["status"]), rec.get("uid"))
                self._seen[str(rec["file"])] = seen
            except (ValueError, KeyError, TypeError):  # a line torn by a crash: that file is read again
                log.warning("%s: line %d unreadable, ignored", self.state_path, number)
        self._uids = {s.uid for s in self._seen.values() if s.uid and s.status == "shown"}
        # files deleted from the share are forgotten, except those shown: their UIDs stay known
        gone = [
            rel for rel, s in self._seen.items() if s.status != "shown" and not (self.folder / rel).exists()
        ]
        for rel in gone:
            del self._seen[rel]
        if gone or len(lines) > len(self._seen):
            self._rewrite_state()
        try:
            with self.state_path.open("a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise SourceError(
                f"{self.state_path}: cannot write the watch state ({exc.strerror or exc}); "
                "give a writable place with state=PATH"
            ) from exc

    def _rewrite_state(self) -> None:
        text = "".join(
            json.dumps({"file": rel, "size": s.size, "mtime_ns": s.mtime_ns, "status": s.status,
                        **({"uid": s.uid} if s.uid else {})}) + "\n"
            for rel, s in self._seen.items()
        )  # fmt: skip
        try:
            atomic_write(self.state_path, text.encode())
        except OSError as exc:
            raise SourceError(
                f"{self.state_path}: cannot write the watch state: {exc.strerror or exc}"
            ) from exc

    # -- what the runtime shows -----------------------------------------------------------------------
    def hud_text(self) -> str | None:
        with self._lock:
            text = f"watching {self.folder.name}: {self.shown} shown"
            if self.bad:
                text += f", {self.bad} bad (last {self.last_bad})"
        return text

    @property
    def info(self) -> SourceInfo:
        with self._lock:
            counts = {"shown": self.shown, "bad": self.bad, "duplicates": self.duplicates}
        return SourceInfo(
            url=self._url.raw,
            kind="dicom+watch",
            realtime=True,
            extra={"folder": str(self.folder), "state": str(self.state_path), **counts},
        )
