"""Host side of the probe link (wire protocol, transports, virtual probe).

Wire protocol v1 (specified in ``PROTOCOL.md``): ``framing`` (COBS + CRC-32 packets, the resynchronising
``Deframer``, ``SequenceTracker``), ``messages`` (typed messages, ``encode``/``decode``, version
negotiation) and ``reassembly`` (``FrameAssembler``: FRAME_CHUNKs to numpy frames). Transports and the
virtual probe build on these.
"""

from typing import Any

from firmware_bridge.link import CommandRejected, CommandTimeout, ProbeLink
from firmware_bridge.messages import VersionMismatchError
from firmware_bridge.transport import (
    LinkDownError,
    LinkError,
    Transport,
    loop_pair,
    open_transport,
    register_transport,
)


def open(url: str, **kw: Any) -> ProbeLink:
    """Open, start and negotiate a probe link (``ProbeLink(url, **kw)``, ``start()``, ``hello()``)."""
    link = ProbeLink(url, **kw)
    link.start()
    try:
        link.hello()
    except BaseException:
        link.stop()
        raise
    return link


__all__ = [
    "CommandRejected",
    "CommandTimeout",
    "LinkDownError",
    "LinkError",
    "ProbeLink",
    "Transport",
    "VersionMismatchError",
    "loop_pair",
    "open",
    "open_transport",
    "register_transport",
]
