"""The outbox in a run: each Result goes in as a schema v4 message; the HUD and the report see it.

:class:`OutboxRecorder` is a pipeline result handler (called on the results-drain thread), so a
put's fsync never holds up acquisition, inference or the display. It keeps the outbox's figures
fresh once a second for the HUD line, which is read from the display thread and must not touch
the database. A thumbnail is drawn on the frame the pipeline hands over with the result: the very
frame it describes.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.config import Config
from edge.deid.keys import default_key_path, load_key
from edge.deid.payload import scrub_payload
from edge.errors import EdgeError
from edge.frames import Frame
from edge.results import PRIORITY_URGENT, Result
from edge.sync.messages import Device, result_message
from edge.sync.outbox import Outbox, OutboxStats
from edge.sync.status import outbox_text
from edge.sync.thumbnail import load_blackout, make_thumbnail

log = logging.getLogger(__name__)

Scrub = Callable[[dict[str, Any]], dict[str, Any]]


class KeepPolicy:
    """Which results go into the outbox: at 30 frames a second, every result would be half a
    gigabyte an hour and a metered link's worth of messages, most saying what the previous one said.

    ``changes`` keeps a result when what it says changed (quality label, gating, the count of
    confident findings per label, a clip score's pattern flag), when an urgent finding is in it,
    and otherwise once every ``heartbeat_s``; ``all`` keeps every result. Every result still goes
    to ``results.jsonl``.
    Under ``changes``, an image shown again (a looped still: the same ``content_id``) that says what
    it said when it was kept is not kept again, urgent or not: it is the same finding, not a new one;
    and a still not seen before (an X-ray exposure: its SOP Instance) is kept once even when it says
    what the previous one said: it is another image. An X-ray's exposure band and positioning
    messages are part of what it says.
    """

    SEEN_MAX = 4096  # images remembered; a looped folder of stills is rarely longer

    def __init__(self, mode: str = "changes", heartbeat_s: float = 1.0) -> None:
        self.mode = mode
        self.heartbeat_s = heartbeat_s
        self._last: tuple[object, ...] | None = None
        self._last_wall = -1e18
        self._seen: OrderedDict[tuple[str, tuple[object, ...]], None] = OrderedDict()
        self._stills: OrderedDict[str, None] = OrderedDict()  # content ids kept at least once

    @staticmethod
    def summary(result: Result) -> tuple[object, ...]:
        counts = Counter(f.label for f in result.findings if not f.needs_review)
        quality = None if result.quality is None else (result.quality.label, result.quality.ok)
        patterns = tuple(c.label for c in result.clip_scores if c.pattern)  # a B-pattern coming or going
        xray = (
            None if result.exposure is None else result.exposure.band,
            None if result.positioning is None else result.positioning.messages,
        )
        return (quality, result.gated, tuple(sorted(counts.items())), patterns, xray)

    def keep(self, result: Result) -> bool:
        if self.mode == "all":
            return True
        summary = self.summary(result)
        seen = None if result.content_id is None else (result.content_id, summary)
        if seen is not None and seen in self._seen:
            return False
        now = result.frame_wall_time
        new_still = result.content_id is not None and result.content_id not in self._stills
        if (
            new_still
            or summary != self._last
            or result.priority >= PRIORITY_URGENT
            or now - self._last_wall >= self.heartbeat_s
            or now < self._last_wall  # the wall clock stepped back: do not go quiet
        ):
            self._last, self._last_wall = summary, now
            if seen is not None and result.content_id is not None:
                self._seen[seen] = None
                self._stills[result.content_id] = None
                if len(self._seen) > self.SEEN_MAX:
                    self._seen.popitem(last=False)
                if len(self._stills) > self.SEEN_MAX:
                    self._stills.popitem(last=False)
            return True
        return False


@dataclass(frozen=True)
class ThumbnailPolicy:
    long_side: int = 256
    quality: int = 80
    min_priority: int = 1
    every_s: float = 1.0


class OutboxWriteError(EdgeError):
    """The outbox did not take a result (the cause is chained: its errno tells a full disk)."""


def load_scrub(config: Config) -> Scrub:
    """``scrub_payload`` bound to this device's key ([deid] key_file, else $EDGE_DEID_KEY, else
    ~/.config/scanner-edge/deid.key; made on first use, mode 0600). A bad key file stops the run."""
    key = load_key(config.deid.key_file or default_key_path())  # a new key is logged with its path
    return functools.partial(scrub_payload, key=key)


class OutboxRecorder:
    """The run's result handler: every Result into the outbox, refusals loud, figures for the HUD.

    A result the outbox cannot take (a scrubber bug, a full or damaged disk) is counted, shown on
    the HUD, and raised: the runtime counts the outbox's failures like any stage's (one traceback,
    then summaries; an alarm; the run stops past its budget). Never expendable: on a full disk the
    recordings stop to leave the outbox the room.
    """

    name = "outbox"

    def __init__(
        self,
        outbox: Outbox,
        device: Device,
        *,
        exam_pseudonym: str | None = None,
        thumbnails: ThumbnailPolicy | None = None,
        refresh_s: float = 1.0,
        keep: KeepPolicy | None = None,
    ) -> None:
        self.outbox = outbox
        self.keep = keep or KeepPolicy("all")
        self.device = device
        self.exam_pseudonym = exam_pseudonym
        self.thumbnails = thumbnails
        self.blackout = load_blackout() if thumbnails is not None else None
        self.refresh_s = refresh_s
        self.queue_on_hud = True  # the run turns it off when an uplink's sync line shows the queue
        # (label, detector) pairs the screen counts (the chain's): thumbnails draw them the same way
        self.counted: tuple[tuple[str, str], ...] = ()
        self.outcomes: Counter[str] = Counter()
        self.thumbs: Counter[str] = Counter()
        self._warned: set[str] = set()
        self._last_thumb = -1e18
        self._stats: OutboxStats | None = None
        self._stats_at = -1e18
        self._refresh()

    def __call__(self, frame: Frame | None, result: Result) -> None:
        """A result handler: ``frame`` is the one ``result`` describes (None when the runtime let it
        go because handlers fell behind: the result is kept, without a thumbnail).

        A result no model made (``no_model``: none is for the frame's modality) is not put: it says
        nothing about the image, and an empty finding list in the outbox would read as a negative."""
        if result.no_model:
            self.outcomes["no_model"] += 1
            return
        if not self.keep.keep(result):
            self.outcomes["unchanged"] += 1
            return
        message = result_message(result, self.device, exam_pseudonym=self.exam_pseudonym)
        try:
            outcome = self.outbox.put(message, thumbnail=self._thumbnail(frame, result))
        except Exception as exc:  # a message the outbox cannot take: counted, on the HUD, raised
            self.outcomes["refused"] += 1
            try:
                self._refresh()
            except Exception as stats_exc:  # the outbox is unreadable too: the HUD keeps its last
                log.debug("outbox figures: %s", stats_exc)
            raise OutboxWriteError(
                f"outbox {self.outbox.path} refused result {result.result_id}: {exc}"
            ) from exc
        self.outcomes[outcome.status] += 1
        now = time.monotonic()
        if now - self._stats_at >= self.refresh_s or not outcome.kept:
            self._refresh(now)

    def _refresh(self, now: float | None = None) -> None:
        self._stats_at = time.monotonic() if now is None else now
        try:
            self._stats = self.outbox.stats()
        except Exception as exc:  # figures only: the last ones stand, the put path reports its own
            log.error("outbox figures unavailable: %s", exc)

    def _thumbnail(self, frame: Frame | None, result: Result) -> bytes | None:
        policy = self.thumbnails
        if policy is None or result.priority < policy.min_priority:
            return None
        now = time.monotonic()
        if now - self._last_thumb < policy.every_s:
            return None
        if frame is None:
            self.thumbs["frame_gone"] += 1
            return None
        try:
            jpeg = make_thumbnail(
                frame,
                result,
                long_side=policy.long_side,
                quality=policy.quality,
                blackout=self.blackout,
                counted=self.counted,
            )
        except Exception as exc:  # masking refused, drawing failed: no thumbnail, the result stays
            self.thumbs["unavailable"] += 1
            reason = str(exc).split(":")[-1].strip()
            if reason not in self._warned:  # once per kind of reason, not once per frame
                self._warned.add(reason)
                log.warning("no thumbnail (fail closed): %s", exc)
            return None
        self._last_thumb = now
        self.thumbs["made"] += 1
        return jpeg

    def hud_text(self) -> str | None:
        """The outbox's HUD line: the quota alarm in capitals; the queue when no uplink shows it."""
        if self._stats is None:
            return None
        return outbox_text(self._stats, self.outcomes["refused"], with_queue=self.queue_on_hud)

    def report(self) -> dict[str, Any]:
        self._refresh()
        damaged = self.outbox.recovered_from
        return {
            "path": str(self.outbox.path),
            "device_id": self.device.id,
            "exam_pseudonym": self.exam_pseudonym,
            "scrubbed": self.outbox.scrub is not None,
            "puts": dict(self.outcomes),
            "thumbnails": dict(self.thumbs) if self.thumbnails is not None else None,
            # A damaged outbox met at start or in use: where it went, and what it still holds.
            "recovered_from": None if damaged is None else damaged.to_dict(),
            **(self._stats.to_dict() if self._stats is not None else {"error": "no figures"}),
        }


def open_recorder(config: Config) -> OutboxRecorder:
    """The outbox and its recorder for a run. Sent results past the retention are pruned here,
    at every start."""
    oc = config.outbox
    path = config.outbox_path()
    device = Device(config.device.id, config.device.site)
    scrub = load_scrub(config)  # nothing with patient identity enters the outbox
    outbox = Outbox(
        path,
        quota_bytes=oc.quota_bytes,
        thumbnail_fraction=oc.thumbnail_fraction,
        retention_s=oc.retention_days * 86400,
        device=device,
        scrub=scrub,
    )
    try:
        # Receipts on: only what the ingest confirmed is pruned; off: the PUBACK is final (docs/sync.md).
        pruned = outbox.prune(unconfirmed_too=not config.uplink.receipts)
        if pruned:
            log.info("outbox: pruned %d results sent more than %g days ago", pruned, oc.retention_days)
        policy = None
        if oc.thumbnails:
            policy = ThumbnailPolicy(oc.thumbnail_px, oc.thumbnail_quality, oc.thumbnail_min_priority,
                                     oc.thumbnail_every_s)  # fmt: skip
        # One run is one exam until an exam workflow gives one: a random pseudonym (the format of
        # edge.deid.keys.exam_pseudonym, so the scrubber keeps it), linked to no identity.
        exam = f"ex-{uuid.uuid4().hex[:20]}"
        keep = KeepPolicy(oc.keep, oc.heartbeat_s)
        recorder = OutboxRecorder(outbox, device, exam_pseudonym=exam, thumbnails=policy, keep=keep)
    except BaseException:
        outbox.close()
        raise
    log.info("outbox: %s (%d queued)", path, recorder.report()["queued"])
    return recorder
