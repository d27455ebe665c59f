"""``dicom+scp://HOST:PORT?aet=EDGE&callers=CONSOLE``: a DICOM Storage SCP (pynetdicom) that receives
images from an X-ray or ultrasound console, as a PACS would, and shows each one as it arrives.

- Answers C-ECHO (Verification) and C-STORE for CR, DX (For Presentation, For Processing), Secondary
  Capture (single- and multi-frame) and US (single- and multi-frame) in every transfer syntax pydicom
  can decode here; other SOP classes are rejected at association (abstract syntax not supported).
- Only calling AE titles in ``callers`` are let in (``callers=*``: any, on a closed network only) and
  the called AE title must be ``aet``: anything else is rejected at association (A-ASSOCIATE-RJ,
  "calling AE title not recognised" / "called AE title not recognised").
- Each object is stored durably before success is answered, once per SOP Instance UID, and what
  cannot be taken gets a failure status, never a crash: ``edge.sources.dicom_store`` (statuses in
  ``STATUS_MEANINGS``, docs/dicom-network.md).

Query: ``aet`` (default EDGE), ``callers`` (comma-separated, required), ``store`` (folder for received
objects, default ``runs/dicom-in``), ``max_mb`` (largest object, default 512), ``min_free_mb`` (disk
kept free, default 256). Port 0 picks a free port: ``port`` says which once open.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from io import BytesIO
from typing import Any, cast
from urllib.parse import urlsplit

from pydantic import ValidationError
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder
from pydicom.uid import AllTransferSyntaxes
from pynetdicom import AE, evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event
from pynetdicom.transport import ThreadedAssociationServer

from edge.errors import SourceError
from edge.frames import Frame
from edge.settings.dicom_scp import DicomScpSettings
from edge.sources._common import SourceBase, check_query
from edge.sources.base import SourceInfo
from edge.sources.dicom_inbox import Inbox
from edge.sources.dicom_store import (
    PROCESSING_FAILURE,
    SOP_CLASS_NOT_SUPPORTED,
    SUCCESS,
    DicomStore,
    StoreRefused,
)
from edge.sources.registry import SourceURL

log = logging.getLogger(__name__)

VERIFICATION = "1.2.840.10008.1.1"  # C-ECHO
DEFAULT_PORT = 11112
_CLOSE_TIMEOUT_S = 2.0  # the registered DICOM port for non-privileged use (PS3.15 / IANA)
_QUERY_KEYS = ("aet", "callers", "store", "max_mb", "min_free_mb")
_QUERY_FIELDS = {"aet": "ae_title", "callers": "allowed_callers", "store": "store_dir",
                 "max_mb": "max_object_mb", "min_free_mb": "min_free_mb"}  # fmt: skip
STORAGE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.1": "CR Image Storage",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "Digital X-Ray Image Storage - For Processing",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.2": "Multi-frame Grayscale Byte Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.3": "Multi-frame Grayscale Word Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound Image Storage",
    "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame Image Storage",
    "1.2.840.10008.5.1.4.1.1.6": "Ultrasound Image Storage (Retired)",  # older consoles still send these
    "1.2.840.10008.5.1.4.1.1.3": "Ultrasound Multi-frame Image Storage (Retired)",
}


def decodable_transfer_syntaxes() -> list[str]:
    """The transfer syntaxes pydicom has a working decoder for here: the only ones offered, so a
    console falls back to one we can show rather than send what we cannot."""
    found = []
    for uid in AllTransferSyntaxes:
        try:
            if get_decoder(uid).is_available:
                found.append(str(uid))
        except NotImplementedError:
            continue
    return found


def _address(url: SourceURL) -> tuple[str, int]:
    """``HOST:PORT`` of the URL; no host: every interface, no port: 11112."""
    parts = urlsplit(url.raw)
    try:
        port = parts.port
    except ValueError as exc:
        raise SourceError(f"{url.raw}: the port must be a number from 0 to 65535 (0: any free port)") from exc
    return parts.hostname or "0.0.0.0", DEFAULT_PORT if port is None else port


def settings_from_url(url: SourceURL) -> DicomScpSettings:
    """The URL's query as validated settings; an error names the query key."""
    check_query(url, _QUERY_KEYS)
    if "callers" not in url.query:
        raise SourceError(
            f"{url.raw}: say which consoles may send: callers=AE1,AE2 (their calling AE titles), "
            "or callers=* to let any in (a closed network only)"
        )
    values: dict[str, Any] = {_QUERY_FIELDS[k]: v for k, v in url.query.items()}
    if "allowed_callers" in values:
        values["allowed_callers"] = tuple(t for t in values["allowed_callers"].split(",") if t.strip())
    try:
        return DicomScpSettings.model_validate(values)
    except ValidationError as exc:
        keys = {v: k for k, v in _QUERY_FIELDS.items()}
        problems = "; ".join(
            f"{keys.get(str(e['loc'][0]), e['loc'][0]) if e['loc'] else '?'}: {e['msg']}"
            for e in exc.errors()
        )
        raise SourceError(f"{url.raw}: {problems}") from exc


def _comment(text: str) -> str:
    """An Error Comment (LO): at most 64 characters, no backslash or control characters."""
    clean = "".join(c if 0x20 <= ord(c) < 0x7F and c != "\\" else " " for c in text)
    return clean[:64]


class DicomScpSource(SourceBase):
    """Receives images over DICOM and yields each as a Frame (a cine frame by frame)."""

    def __init__(self, url: SourceURL, settings: DicomScpSettings | None = None) -> None:
        self._url = url
        self.host, self._port = _address(url)
        self.settings = settings or settings_from_url(url)
        s = self.settings
        self.store = DicomStore(s.store_dir, int(s.max_object_mb * 1e6), int(s.min_free_mb * 1e6))
        self._inbox = Inbox(source_id=f"{s.ae_title}@{self.host}")
        self._server: ThreadedAssociationServer | None = None
        self._lock = threading.Lock()
        self.received = 0
        self.duplicates = 0
        self.refused = 0
        self.rejected_associations = 0
        self.echoes = 0
        self.last_refusal: str | None = None
        self._out_of_space: str | None = None
        self._last_wall: float | None = None

    # -- Source protocol ------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The port listened on (the one port 0 picked, once open)."""
        return self._port

    @property
    def eof(self) -> bool:
        return False  # a console may send again at any time

    def open(self) -> None:
        if self._server is not None:
            return
        pynetdicom_log = logging.getLogger("pynetdicom")
        if pynetdicom_log.level == logging.NOTSET:  # one line per PDU at INFO: our own lines say enough
            pynetdicom_log.setLevel(logging.WARNING)
        self.store.open()
        ae = AE(ae_title=self.settings.ae_title)
        ae.require_called_aet = True
        ae.require_calling_aet = [] if self.settings.any_caller else list(self.settings.allowed_callers)
        ae.add_supported_context(VERIFICATION)
        syntaxes = decodable_transfer_syntaxes()
        for uid in STORAGE_CLASSES:
            ae.add_supported_context(uid, syntaxes)
        handlers: list[Any] = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_ACCEPTED, self._on_accepted),
        ]
        try:
            server = ae.start_server((self.host, self._port), block=False, evt_handlers=handlers)
        except OSError as exc:
            raise SourceError(
                f"{self._url.raw}: cannot listen on {self.host}:{self._port}: {exc.strerror or exc}"
                + (" (another DICOM node on this port?)" if exc.errno == errno.EADDRINUSE else "")
            ) from exc
        assert server is not None
        self._server = server
        self._port = int(server.server_address[1])
        callers = "any" if self.settings.any_caller else ", ".join(self.settings.allowed_callers)
        log.info(
            "DICOM Storage SCP %s listening on %s:%d; callers: %s; store: %s",
            self.settings.ae_title, self.host, self._port, callers, self.store.folder,
        )  # fmt: skip

    def read(self, timeout: float | None = None) -> Frame | None:
        if self._server is None:
            raise SourceError(f"{self._url.raw}: read() on a source that is not open")
        return self._inbox.read(timeout)

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()  # stops listening; the associations still open are aborted here
            open_associations = list(server.active_associations)
            for assoc in open_associations:
                assoc.abort()
            deadline = time.monotonic() + _CLOSE_TIMEOUT_S
            for assoc in open_associations:
                assoc.join(max(0.0, deadline - time.monotonic()))
                if assoc.is_alive():
                    log.error("an association with %s did not end on close", assoc.requestor.address)
        self._inbox.close()

    # -- what the console sees ------------------------------------------------------------------------
    def _on_store(self, event: Event) -> int | Dataset:
        req = cast(C_STORE, event.request)
        uid = str(getattr(req, "AffectedSOPInstanceUID", "") or "")
        sop = str(getattr(req, "AffectedSOPClassUID", "") or "")
        caller = str(event.assoc.requestor.ae_title).strip()
        t0 = time.monotonic()
        try:
            if sop not in STORAGE_CLASSES:  # negotiation keeps these out; a peer may still claim one
                raise StoreRefused(SOP_CLASS_NOT_SUPPORTED, f"SOP class {sop} is not taken here")
            with cast(BytesIO, req.DataSet).getbuffer() as view:
                size = view.nbytes
            arrival = self.store.put(uid, size, lambda fh: fh.write(event.encoded_dataset()))
        except StoreRefused as exc:
            return self._refuse(caller, uid, exc.status, exc.reason)
        except Exception as exc:  # a bug of ours must not take the SCP down: the console hears 0x0110
            log.exception("storing %s from %s failed", uid, caller)
            return self._refuse(caller, uid, PROCESSING_FAILURE, f"{type(exc).__name__}: {exc}")
        with self._lock:
            self._out_of_space = None
            if arrival is None:
                self.duplicates += 1
            else:
                self.received += 1
                self._last_wall = time.time()
        if arrival is None:
            log.info("%s from %s: already stored, answered success again (shown once)", uid, caller)
            return SUCCESS
        log.info(
            "received %s %s from %s (%.1f MB) in %.0f ms",
            arrival.image.meta.get("Modality", "?"), uid, caller, size / 1e6, (time.monotonic() - t0) * 1e3,
        )  # fmt: skip
        arrival.t_arrived_ns = time.monotonic_ns()  # success is answered right after this
        arrival.wall_time = time.time()
        self._inbox.put(arrival)
        return SUCCESS

    def _refuse(self, caller: str, uid: str, status: int, reason: str) -> Dataset:
        log.warning("refused %s from %s: status 0x%04X: %s", uid or "(no UID)", caller, status, reason)
        with self._lock:
            self.refused += 1
            self.last_refusal = f"0x{status:04X} {reason}"
            if 0xA700 <= status <= 0xA7FF and status != 0xA701:
                self._out_of_space = reason
        rsp = Dataset()
        rsp.Status = status
        rsp.ErrorComment = _comment(reason)
        return rsp

    def _on_echo(self, event: Event) -> int:
        with self._lock:
            self.echoes += 1
        log.info("C-ECHO from %s", str(event.assoc.requestor.ae_title).strip())
        return SUCCESS

    def _on_accepted(self, event: Event) -> None:
        requestor = event.assoc.requestor
        log.debug("association from %s at %s:%s", requestor.ae_title, requestor.address, requestor.port)

    def _on_rejected(self, event: Event) -> None:
        requestor, acceptor = event.assoc.requestor, event.assoc.acceptor
        calling, called = str(requestor.ae_title).strip(), str(acceptor.ae_title).strip()
        if not self.settings.any_caller and calling not in self.settings.allowed_callers:
            why = f"calling AE title {calling!r} is not in callers"
        elif called != self.settings.ae_title:
            why = f"called AE title {called!r} is not this node's {self.settings.ae_title!r}"
        else:
            why = "no presentation context could be accepted"
        with self._lock:
            self.rejected_associations += 1
        log.warning("rejected an association from %s: %s", requestor.address, why)

    # -- what the runtime shows -----------------------------------------------------------------------
    def hud_text(self) -> str | None:
        with self._lock:
            parts = [
                f"DICOM {self.settings.ae_title}:{self._port} listening",
                f"{self.received} received",
            ]
            if self._last_wall is not None:
                parts[-1] += f" {time.strftime('%H:%M:%S', time.localtime(self._last_wall))}"
            if self.refused:
                parts.append(f"{self.refused} refused")
            if self.rejected_associations:
                parts.append(f"{self.rejected_associations} rejected")
        return ", ".join(parts)

    def status_text(self) -> str | None:
        """Red on the HUD while the store refuses for want of disk (until an object is stored again)."""
        with self._lock:
            reason = self._out_of_space
        return None if reason is None else f"DICOM store full: refusing images ({reason})"

    @property
    def info(self) -> SourceInfo:
        with self._lock:
            counts = {
                "received": self.received,
                "duplicates": self.duplicates,
                "refused": self.refused,
                "rejected_associations": self.rejected_associations,
                "echoes": self.echoes,
            }
        return SourceInfo(
            url=self._url.raw,
            kind="dicom+scp",
            realtime=True,
            extra={
                "ae_title": self.settings.ae_title,
                "host": self.host,
                "port": self._port,
                "store": str(self.store.folder),
                "shown": self._inbox.shown,
                **counts,
            },
        )
